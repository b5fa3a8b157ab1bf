"""Export a generator to ONNX or TorchScript, and check the export numerically against PyTorch.

    python -m gan.export --checkpoint CKPT --format onnx|torchscript --output FILE [--direction AtoB|BtoA]

Both exports take any batch, height and width. The TorchScript module includes the pad-to-a-multiple-of-4
and crop-back of our generator. The ONNX graph is the network proper and needs H and W divisible by 4:
`OnnxGenerator` (used by `test.py --checkpoint model.onnx`) pads and crops around it, as the PyTorch
generator does. After writing, the file is loaded back and run on a random input (onnxruntime for ONNX);
the largest absolute difference from PyTorch is reported and must stay below 1e-3.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gan import GanError
from gan.checkpoint import EXPORT_META
from gan.onnx_runtime import OnnxGenerator

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


def export_onnx(net: nn.Module, path: Path, in_channels: int, record: dict) -> None:
    """The ONNX graph of the generator proper, with `record` (EXPORT_META) in its metadata."""
    core = _Core(net)
    example = torch.randn(1, in_channels, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on constant folding are not for users
        torch.onnx.export(
            core, (example,), str(path), input_names=["image"], output_names=["translated"], opset_version=17,
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                          "translated": {0: "batch", 2: "height", 3: "width"}},
            dynamo=False,
        )
    stamp_onnx(path, record)


def export_torchscript(net: nn.Module, path: Path, meta: dict | None = None) -> None:
    """Scripted module; `meta` (direction, description, in_channels) rides along as an extra file, so
    test.py can run the export and refuse the wrong direction."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream but still loads everywhere
        torch.jit.save(torch.jit.script(net), str(path), _extra_files={EXPORT_META: json.dumps(meta or {})})


def check_export(net: nn.Module, path: Path, fmt: str, in_channels: int, seed: int = 0) -> float:
    """Max |exported(x) - net(x)| on a random input of an odd size (37 x 53, batch 2)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, in_channels, 37, 53, generator=g) * 2 - 1
    with torch.no_grad():
        ref = net(x)
        if fmt == "onnx":
            got = OnnxGenerator(path)(x)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                got = torch.jit.load(str(path))(x)
    return float((got - ref).abs().max())


def export(net: nn.Module, fmt: str, output: str | Path, in_channels: int = 3, meta: dict | None = None) -> float:
    """Write the export, run it back, return the max abs difference (GanError if above TOLERANCE)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    net = net.cpu().eval()
    record = {"in_channels": in_channels, **(meta or {})}  # what the file says about itself (EXPORT_META)
    if fmt == "onnx":
        export_onnx(net, output, in_channels, record)
    elif fmt == "torchscript":
        export_torchscript(net, output, record)
    else:
        raise GanError(f"--format must be onnx or torchscript, got {fmt!r}")
    diff = check_export(net, output, fmt, in_channels)
    if not np.isfinite(diff) or diff > TOLERANCE:
        raise GanError(f"the exported model differs from PyTorch by {diff:.2e} (max abs) > {TOLERANCE}: "
                       f"{output} is not trustworthy")
    return diff


# ------------------------------------------------------------------------------- content + style (AdaIN)


class AdaINCore(nn.Module):
    """The AdaIN network with two image inputs and the trade-off as a third: (content, style, alpha) ->
    stylized content. Content H and W must be multiples of 8 (callers pad and crop, as for generators)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.encoder, self.decoder = net.encoder, net.decoder

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        from gan.models.adain import adain

        fc = self.encoder(content)["relu4_1"]
        fs = self.encoder(style)["relu4_1"]
        return self.decoder(alpha * adain(fc, fs) + (1 - alpha) * fc)


def export_adain(net: nn.Module, fmt: str, output: str | Path, meta: dict | None = None) -> float:
    """ONNX (inputs content, style, alpha; dynamic sizes) or TorchScript (traced: shape-generic, no Python
    control flow in the core); run back on other sizes than the example and compared with PyTorch."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    core = AdaINCore(net.cpu().eval()).eval()
    record = {"kind": "adain", **(meta or {})}  # what the file says about itself (EXPORT_META)
    example = (torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 3, 48, 48) * 2 - 1, torch.tensor(1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            torch.onnx.export(core, example, str(output), input_names=["content", "style", "alpha"],
                              output_names=["stylized"], opset_version=17, dynamo=False,
                              dynamic_axes={"content": {2: "height", 3: "width"}, "style": {2: "sh", 3: "sw"},
                                            "stylized": {2: "height", 3: "width"}})
            stamp_onnx(output, record)
        elif fmt == "torchscript":
            with torch.no_grad():
                traced = torch.jit.trace(core, example, check_trace=False)
            torch.jit.save(traced, str(output), _extra_files={EXPORT_META: json.dumps(record)})
        else:
            raise GanError(f"--format must be onnx or torchscript, got {fmt!r}")
    g = torch.Generator().manual_seed(0)
    c, s, a = torch.rand(1, 3, 40, 56, generator=g) * 2 - 1, torch.rand(1, 3, 32, 24, generator=g) * 2 - 1, 0.7
    with torch.no_grad():
        ref = core(c, s, torch.tensor(a))
        if fmt == "onnx":
            import onnxruntime as ort

            sess = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(sess.run(None, {"content": c.numpy(), "style": s.numpy(),
                                                   "alpha": np.array(a, dtype=np.float32)})[0])
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                got = torch.jit.load(str(output))(c, s, torch.tensor(a))
    diff = float((got - ref).abs().max())
    if not np.isfinite(diff) or diff > TOLERANCE * max(1.0, float(ref.abs().max())):
        raise GanError(f"the exported model differs from PyTorch by {diff:.2e} (max abs): {output} is not trustworthy")
    return diff


def main(argv: list[str] | None = None) -> int:
    from gan.cli import add_threads_option, run

    parser = argparse.ArgumentParser(prog="python -m gan.export", description="Export a generator.")
    parser.add_argument("--checkpoint", required=True, help="checkpoint file, run directory or latest_net_G*.pth")
    parser.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    parser.add_argument("--output", required=True, help="file to write (.onnx / .pt)")
    parser.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    parser.add_argument("--weights", default="ema", choices=["ema", "raw"],
                        help="ema: the generator's moving average when the run kept one (default); raw: trained weights")
    add_threads_option(parser)
    args = parser.parse_args(argv)

    def go() -> int:
        import logging

        from gan.checkpoint import checkpoint_kind, load_generator, load_style_network

        if checkpoint_kind(args.checkpoint) == "adain":
            net, info = load_style_network(args.checkpoint, "cpu")
            diff = export_adain(net, args.format, args.output, {"description": info.description})
            logging.getLogger("gan").info("exported %s to %s (inputs content, style, alpha); check: max abs "
                                          "difference %.2e", info.description, args.output, diff)
            return 0
        net, info = load_generator(args.checkpoint, args.direction, "cpu", args.weights)
        if info.source in ("onnx", "torchscript"):
            raise GanError(f"--checkpoint is already an exported ({info.source}) model")
        meta = {"kind": info.kind, "name": info.name, "direction": args.direction, "description": info.description}
        diff = export(net, args.format, args.output, info.in_channels, meta)
        logging.getLogger("gan").info("exported %s (%s) to %s; check: max abs difference %.2e (< %g)",
                                      info.description, args.direction, args.output, diff, TOLERANCE)
        return 0

    return run(go, args.threads)


if __name__ == "__main__":
    sys.exit(main())
