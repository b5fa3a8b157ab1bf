"""Export a generator to ONNX or TorchScript, and check the export numerically against PyTorch.

    python -m gan.export --checkpoint CKPT --format onnx|torchscript --output FILE [--direction AtoB|BtoA]

Both exports take any batch, height and width. The TorchScript module includes the pad-to-a-multiple-of-4
and crop-back of our generator. The ONNX graph is the network proper and needs H and W divisible by 4:
`OnnxGenerator` (used by `test.py --checkpoint model.onnx`) pads and crops around it, as the PyTorch
generator does. After writing, the file is loaded back and run on a random input (onnxruntime for ONNX);
the largest absolute difference from PyTorch is reported and must stay below 1e-3.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gan import GanError
from gan.checkpoint.exported import EXPORT_META, OnnxGenerator, load_torchscript
from gan.models.base import ExportSpec

TOLERANCE = 1e-3


class _Core(nn.Module):
    """The generator without its pad/crop wrapper, so ONNX gets a shape-agnostic graph."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.core(x)


def stamp_onnx(path: Path, meta: dict) -> None:
    """Store `meta` (kind, direction, description, ...) in the ONNX file's metadata_props under EXPORT_META, the
    same JSON the TorchScript export carries, so test.py knows the direction and refuses the other one."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = EXPORT_META, json.dumps(meta)
    onnx.save(model, str(path))


def generator_spec(net: nn.Module, in_channels: int) -> ExportSpec:
    """The export of a one-image generator: ONNX holds the network proper (`core`; OnnxGenerator pads and crops
    around it by the net's `pad_rule`, (multiple, minimum), recorded in the file), TorchScript the scripted
    generator with its own pad and crop."""
    g = torch.Generator().manual_seed(0)
    return ExportSpec(_Core(net), (torch.randn(1, in_channels, 64, 64),), ["image"], ["translated"],
                      {"image": {0: "batch", 2: "height", 3: "width"},
                       "translated": {0: "batch", 2: "height", 3: "width"}},
                      (torch.rand(2, in_channels, 37, 53, generator=g) * 2 - 1,), script=True,
                      record={"in_channels": in_channels, "pad": list(getattr(net, "pad_rule", (4, 8)))})


def export(net: nn.Module, fmt: str, output: str | Path, in_channels: int = 3, meta: dict | None = None) -> float:
    """Export a one-image generator (see write_export)."""
    return write_export(generator_spec(net, in_channels), fmt, output, net, meta)


def write_export(spec: ExportSpec, fmt: str, output: str | Path, full: nn.Module | None = None,
                 meta: dict | None = None) -> float:
    """Write `spec` as ONNX or TorchScript, run the file back on the check inputs and return the max abs
    difference from PyTorch (GanError above TOLERANCE, relative to the output's range). `full`: the module
    users call (a generator with its pad/crop), which TorchScript scripts and both checks compare with; by
    default the spec's module."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    full = (full if full is not None else spec.module).cpu().eval()
    record = {**spec.record, **(meta or {})}  # what the file says about itself (EXPORT_META)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' notes (constant folding, deprecation) are not for users
        if fmt == "onnx":
            torch.onnx.export(spec.module.cpu().eval(), spec.example, str(output), input_names=spec.input_names,
                              output_names=spec.output_names, dynamic_axes=spec.dynamic_axes, opset_version=17,
                              dynamo=False)
            stamp_onnx(output, record)
        elif fmt == "torchscript":
            with torch.no_grad():
                ts = torch.jit.script(full) if spec.script else torch.jit.trace(full, spec.example, check_trace=False)
            torch.jit.save(ts, str(output), _extra_files={EXPORT_META: json.dumps(record)})
        else:
            raise GanError(f"--format must be onnx or torchscript, got {fmt!r}")
        with torch.no_grad():
            ref = full(*spec.check)
            if fmt == "onnx" and spec.input_names == ["image"]:
                got = OnnxGenerator(output)(*spec.check)  # the pad/crop test.py puts around the graph
            elif fmt == "onnx":
                import onnxruntime as ort

                sess = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
                got = torch.from_numpy(sess.run(None, {n: np.asarray(t.numpy(), dtype=np.float32)
                                                       for n, t in zip(spec.input_names, spec.check)})[0])
            else:
                scripted, written = load_torchscript(output, "cpu")  # as test.py will read it, record included
                if written != record:
                    raise GanError(f"{output}: the record read back differs from the one written")
                got = scripted(*spec.check)
    diff = float((got - ref).abs().max())
    if not np.isfinite(diff) or diff > TOLERANCE * max(1.0, float(ref.abs().max())):
        raise GanError(f"the exported model differs from PyTorch by {diff:.2e} (max abs) > {TOLERANCE}: "
                       f"{output} is not trustworthy")
    return diff
