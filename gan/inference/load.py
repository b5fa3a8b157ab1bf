"""A generator from any file or name a user may give (`--checkpoint`): one of this project's checkpoints or a run
directory (its latest.pt; the EMA weights when the run kept them), a reference CycleGAN generator file
(junyanz/pytorch-CycleGAN-and-pix2pix `latest_net_G*.pth` state_dicts, architecture read from the keys), or
this project's own ONNX and TorchScript exports (with the record they carry: kind, run, direction, pad rule).
Only `kind`, `config.model` and the net needed are read from a checkpoint, so it stays loadable when
training-only config keys change. A kind whose network takes a style image too is built by the kind
(`load_style_network`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gan import GanError
from gan.training.checkpoint import (is_gan_checkpoint, is_torchscript, migrate, require, resolve,
                                     safe_load)

from gan.inference.onnx_runtime import EXPORT_META


@dataclass
class GeneratorInfo:
    source: str  # "checkpoint" | "reference" | "onnx" | "torchscript"
    path: Path
    description: str
    in_channels: int = 3
    kind: str | None = None  # the model kind (an export: the kind it was exported from, when it says)
    name: str | None = None  # the run's name (a reference file: its name; an export: what it records)


def load_generator(path: str | Path, direction: str = "AtoB", device: torch.device | str = "cpu",
                   weights: str = "ema") -> tuple[nn.Module, GeneratorInfo]:
    """A generator in eval mode, frozen, on `device`, from:
    one of this project's checkpoints or a run directory (`weights`: "ema" = the moving average when the
    run kept one, else the trained weights; "raw" = always the trained weights), a reference CycleGAN
    generator file (latest_net_G*.pth; architecture inferred from its keys), or this project's ONNX or
    TorchScript export."""
    if direction not in ("AtoB", "BtoA"):
        raise GanError(f"--direction must be AtoB or BtoA, got {direction!r}")
    if weights not in ("ema", "raw"):
        raise GanError(f"weights must be ema or raw, got {weights!r}")
    path = resolve(path)
    if path.suffix.lower() == ".onnx":
        from gan.inference.onnx_runtime import OnnxGenerator

        net = OnnxGenerator(path)
        meta = export_meta(path, net.metadata.get(EXPORT_META), direction)
        desc = f"ONNX model {path.name} ({meta.get('description', 'onnxruntime')})"
        return net, GeneratorInfo("onnx", path, desc, in_channels=net.in_channels, kind=meta.get("kind"),
                                  name=meta.get("name"))
    if is_torchscript(path):
        return _load_torchscript(path, direction, device)
    obj = safe_load(path)
    if is_gan_checkpoint(obj):
        net, info = _generator_from_checkpoint(migrate(obj, path), path, direction, weights)
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        from gan.nn.networks import load_reference_generator

        net, gcfg = load_reference_generator(obj)
        desc = f"{path} (reference CycleGAN generator: ngf {gcfg.ngf}, {gcfg.n_blocks} blocks)"
        info = GeneratorInfo("reference", path, desc, net.model[1].in_channels, "cyclegan", path.stem)
    else:
        raise GanError(f"{path}: neither a checkpoint of this project nor a reference CycleGAN generator "
                       "state_dict (latest_net_G*.pth), nor an ONNX/TorchScript export")
    return net.to(device).eval().requires_grad_(False), info


def model_config(obj: dict, path: Path):
    """The ModelConfig of a checkpoint, read from its `config.model` section alone (training-only keys of
    other sections do not matter to inference)."""
    from gan.config import ModelConfig, build_section

    section = require(obj, "config.model", path, dict)
    try:
        return build_section(ModelConfig, section, "model.")
    except GanError as e:
        raise GanError(f"{path}: its model configuration does not fit this version: {e}") from None


def _generator_from_checkpoint(obj: dict, path: Path, direction: str, weights: str) -> tuple[nn.Module, GeneratorInfo]:
    from gan.models import kind_class

    kind = kind_class(require(obj, "kind", path, str))
    m = model_config(obj, path)
    if direction not in kind.generators:
        article = "an" if obj["kind"][:1] in "aeiou" else "a"
        has = ", ".join(kind.generators) or (f"none: it takes {' and '.join(kind.inputs)} images, see stylize.py "
                                             "--model")
        raise GanError(f"{path}: {article} {obj['kind']} model has no {direction} generator (it has: {has})")
    name = kind.generators[direction]
    ema = obj.get("ema") or {}
    use_ema = weights == "ema" and name in ema
    state = ema[name] if use_ema else require(obj, f"nets.{name}", path, dict)
    net = kind.inference_net(m, name)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise GanError(f"{path}: the weights of {name} do not fit its configured architecture: "
                       f"{str(e).splitlines()[0]}") from None
    g = m.generator
    run = obj.get("config", {}).get("name", "?")
    desc = (f"{path} (run {run}, step {obj.get('step', '?')}, {name}{' EMA' if use_ema else ''}: "
            f"ngf {g.ngf}, {g.n_blocks} blocks)")
    cin = m.in_channels if direction == "AtoB" else m.out_channels
    return net, GeneratorInfo("checkpoint", path, desc, cin, obj["kind"], run)


def checkpoint_header(path: str | Path) -> dict | None:
    """{kind, step, name} of one of this project's checkpoints (or run directory), read with its tensors left
    in the file; None for any other file."""
    path = resolve(path)
    if path.suffix.lower() == ".onnx" or is_torchscript(path):
        return None
    obj = safe_load(path, mmap=True)
    if not is_gan_checkpoint(obj):
        return None
    obj = migrate(obj, path)
    return {"kind": obj.get("kind"), "step": obj.get("step"), "name": (obj.get("config") or {}).get("name")}


def checkpoint_kind(path: str | Path) -> str | None:
    """The model kind of one of this project's checkpoints (or run directory); None for any other file."""
    header = checkpoint_header(path)
    return header["kind"] if header else None


def load_style_network(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, GeneratorInfo]:
    """The network of a run or checkpoint of a kind that takes a content and a style image (its `inputs`),
    built by the kind from the file's nets (`load_inference`), eval mode, frozen, on `device`."""
    from gan.models import kind_class

    path = resolve(path)
    obj = safe_load(path)
    if not is_gan_checkpoint(obj):
        raise GanError(f"{path} is not a checkpoint of this project (--model takes the run directory or "
                       "checkpoint of a content + style model, e.g. model kind adain)")
    obj = migrate(obj, path)
    kind = require(obj, "kind", path, str)
    cls = kind_class(kind)
    if cls.inputs == ("image",):
        raise GanError(f"{path} is a {kind} model: stylize.py --model takes a content + style model, e.g. adain "
                       f"(a {kind} model translates one image at a time: use test.py --checkpoint)")
    m = model_config(obj, path)
    net = cls.load_inference(m, lambda name: require(obj, f"nets.{name}", path, dict), path)
    desc = f"{path} (run {obj.get('config', {}).get('name', '?')}, step {obj.get('step', '?')}, {kind})"
    return net.to(device).eval().requires_grad_(False), GeneratorInfo("checkpoint", path, desc, kind=kind)


def _load_torchscript(path: Path, direction: str, device) -> tuple[nn.Module, GeneratorInfo]:
    """This project's TorchScript export (torch.jit.load runs TorchScript code, not pickled Python)."""
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
    meta = export_meta(path, extra[EXPORT_META], direction)
    desc = f"TorchScript model {path.name} ({meta.get('description', 'exported generator')})"
    return net.eval(), GeneratorInfo("torchscript", path, desc, in_channels=int(meta.get("in_channels", 3)),
                                     kind=meta.get("kind"), name=meta.get("name"))


def export_meta(path: Path, text: str | None, direction: str) -> dict:
    """The EXPORT_META record of an ONNX or TorchScript export (kind, name, direction, description), checked
    against the direction asked for: an export holds one generator, so the other direction is refused. An
    export without a record (made by another tool or an older version) runs as it is, with a warning."""
    import logging

    try:
        meta = json.loads(text) if text else {}
    except ValueError:
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    if not meta.get("direction"):
        from gan.models import KINDS

        kind = KINDS.get(meta.get("kind") or "")
        if meta.get("inputs") is None and (kind is None or kind.inputs == ("image",)):  # one image: a direction
            logging.getLogger("gan").warning("%s records no direction: it runs as exported, whatever --direction "
                                             "says", path)
        return meta
    if meta["direction"] != direction:
        raise GanError(f"{path} was exported for {meta['direction']}; pass --direction {meta['direction']} "
                       f"or export the {direction} generator")
    return meta
