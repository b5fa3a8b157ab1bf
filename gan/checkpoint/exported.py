"""This project's exports read back as networks: ONNX through onnxruntime behind the same call as a PyTorch
generator, TorchScript through torch.jit.load; each with the record it carries (EXPORT_META: kind, run,
direction, pad rule, description), checked against the direction asked for. Both are `exported` (gan.runtime:
they compute in fp32, as exported). Used by gan.checkpoint.source and by the export's numerical check."""

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

    exported = True  # computes in the precision it was exported in (gan.runtime.is_exported)

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
        self.record = parse_record(self.metadata.get(EXPORT_META))
        pad = self.record.get("pad", [4, 8])
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


def load_torchscript(path: Path, device) -> tuple[torch.nn.Module, dict]:
    """(the module, its record) of this project's TorchScript export (torch.jit.load runs TorchScript code, not
    pickled Python); a TorchScript file without the record is refused."""
    import warnings

    extra = {EXPORT_META: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as e:
        raise GanError(f"cannot load TorchScript model {path}: {str(e).splitlines()[0]}") from None
    if not extra[EXPORT_META]:
        raise GanError(f"{path} is a TorchScript model not exported by this project (no {EXPORT_META} inside); "
                       "pass the checkpoint or run directory instead")
    return net.eval(), parse_record(extra[EXPORT_META])


def parse_record(text: str | None) -> dict:
    """The EXPORT_META JSON of an export ({} when missing or unreadable)."""
    import json

    try:
        meta = json.loads(text) if text else {}
    except ValueError:
        meta = {}
    return meta if isinstance(meta, dict) else {}


def check_direction(path: Path, meta: dict, direction: str, one_image: bool) -> None:
    """An export holds one generator: the other direction is refused. An export without a recorded direction
    (another tool's, or an older version's) runs as it is, with a warning (one-image models only)."""
    import logging

    if not meta.get("direction"):
        if one_image:
            logging.getLogger("gan").warning("%s records no direction: it runs as exported, whatever --direction "
                                             "says", path)
        return
    if meta["direction"] != direction:
        raise GanError(f"{path} was exported for {meta['direction']}; pass --direction {meta['direction']} "
                       f"or export the {direction} generator")
