"""Run an exported ONNX generator behind the same call as a PyTorch one (used by inference and by the
export's numerical check)."""

from __future__ import annotations

from pathlib import Path

import torch

from gan import GanError
from gan.nn.networks import pad_to_multiple

EXPORT_META = "gan_export.json"  # the record exports carry (kind, run, direction, pad rule, description)


class OnnxGenerator:
    """(N, C, H, W) in [-1, 1] -> the same, through onnxruntime. The graph holds the network proper: inputs
    are padded (to the multiple and minimum size the export records as "pad", [4, 8] for the ResNet
    generator and files without a record) and outputs cropped back here, as the PyTorch generator does."""

    supports_autocast = False

    def __init__(self, path: str | Path):
        try:
            import onnxruntime as ort
        except ImportError:
            raise GanError("running .onnx models needs onnxruntime: pip install onnxruntime") from None
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as e:
            raise GanError(f"cannot load ONNX model {path}: {e}") from None
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.in_channels = first.shape[1] if isinstance(first.shape[1], int) else 3
        import json

        try:
            record = json.loads(self.metadata.get(EXPORT_META, "") or "{}")
        except ValueError:
            record = {}
        pad = record.get("pad", [4, 8]) if isinstance(record, dict) else [4, 8]
        self.pad = (int(pad[0]), int(pad[1])) if isinstance(pad, list) and len(pad) == 2 else (4, 8)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x.float(), self.pad[0], minimum=self.pad[1])
        out = self.session.run(None, {self.input_name: x.cpu().numpy()})[0]
        return torch.from_numpy(out)[..., :h, :w]

    def eval(self) -> "OnnxGenerator":
        return self

    def to(self, *args, **kwargs) -> "OnnxGenerator":
        return self

    def requires_grad_(self, flag: bool = True) -> "OnnxGenerator":
        return self
