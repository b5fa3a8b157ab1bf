"""A generator from any file or name a user may give (`--checkpoint`): one of this project's checkpoints or a run
directory (its latest.pt; the EMA weights when the run kept them), a reference CycleGAN generator file
(junyanz/pytorch-CycleGAN-and-pix2pix `latest_net_G*.pth` state_dicts, architecture read from the keys), this
project's own ONNX and TorchScript exports (with the record they carry: kind, run, direction, pad rule), a
saved folder (`python -m gan.hub save`: config.json + model.safetensors, read without pickle), and the names
gan.inference.sources resolves: `zoo:NAME` and `hf:user/repo[@revision]`.
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
from gan.inference.sources import locate
from gan.training.checkpoint import (is_gan_checkpoint, is_torchscript, migrate, require, resolve,
                                     safe_load)

from gan.inference.onnx_runtime import EXPORT_META


@dataclass
class GeneratorInfo:
    source: str  # "checkpoint" | "folder" | "reference" | "onnx" | "torchscript"
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
    path = locate(path)
    if is_saved_folder(path):
        config, state_of = read_saved_folder(path)
        run = config.get("name", "?")
        net, info = _generator(config["kind"], model_config(config, path), direction, state_of, path,
                               f"{run}, step {config.get('step', '?')}", "folder", run)
        return net.to(device).eval().requires_grad_(False), info
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
    """The ModelConfig of a checkpoint (or a saved folder's config.json), read from its `config.model` section
    alone (training-only keys of other sections do not matter to inference)."""
    from gan.config import ModelConfig, build_section

    section = require(obj, "config.model", path, dict)
    try:
        return build_section(ModelConfig, section, "model.")
    except GanError as e:
        raise GanError(f"{path}: its model configuration does not fit this version: {e}") from None


def _generator_from_checkpoint(obj: dict, path: Path, direction: str, weights: str) -> tuple[nn.Module, GeneratorInfo]:
    ema = obj.get("ema") or {}

    def state_of(name: str) -> dict:
        if weights == "ema" and name in ema:
            return ema[name]
        return require(obj, f"nets.{name}", path, dict)

    run = obj.get("config", {}).get("name", "?")
    return _generator(require(obj, "kind", path, str), model_config(obj, path), direction, state_of, path,
                      f"run {run}, step {obj.get('step', '?')}", "checkpoint", run,
                      lambda name: " EMA" if weights == "ema" and name in ema else "")


def _generator(kind_name: str, m, direction: str, state_of, path: Path, what: str, source: str, run: str,
               note=lambda name: "") -> tuple[nn.Module, GeneratorInfo]:
    """The `direction` generator of a model of kind `kind_name` (config `m`), its weights from `state_of(name)`."""
    from gan.models import kind_class

    kind = kind_class(kind_name)
    if direction not in kind.generators:
        article = "an" if kind_name[:1] in "aeiou" else "a"
        has = ", ".join(kind.generators) or (f"none: it takes {' and '.join(kind.inputs)} images, see stylize.py "
                                             "--model")
        raise GanError(f"{path}: {article} {kind_name} model has no {direction} generator (it has: {has})")
    name = kind.generators[direction]
    net = kind.inference_net(m, name)
    try:
        net.load_state_dict(state_of(name))
    except RuntimeError as e:
        raise GanError(f"{path}: the weights of {name} do not fit its configured architecture: "
                       f"{str(e).splitlines()[0]}") from None
    g = m.generator
    desc = f"{path} ({what}, {name}{note(name)}: ngf {g.ngf}, {g.n_blocks} blocks)"
    cin = m.in_channels if direction == "AtoB" else m.out_channels
    return net, GeneratorInfo(source, path, desc, cin, kind_name, run)


# ------------------------------------------------------------------------ saved folders (python -m gan.hub)

FOLDER_FORMAT = "gan"  # config.json's "format"
FOLDER_CONFIG, FOLDER_WEIGHTS = "config.json", "model.safetensors"


def is_saved_folder(path: Path) -> bool:
    """A folder written by `python -m gan.hub save` (config.json + model.safetensors)."""
    return Path(path).is_dir() and (Path(path) / FOLDER_CONFIG).is_file() and (Path(path) / FOLDER_WEIGHTS).is_file()


def read_saved_folder(path: Path) -> tuple[dict, object]:
    """(config.json, state_of(net name) -> its state dict) of a saved folder; safetensors only, no pickle."""
    try:
        config = json.loads((path / FOLDER_CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise GanError(f"{path / FOLDER_CONFIG}: not readable as JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FOLDER_FORMAT or not isinstance(config.get("kind"), str):
        raise GanError(f"{path}: its config.json is not one this project wrote (no \"format\": \"gan\" and kind); "
                       "a folder of another library cannot be loaded here")
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise GanError("saved folders need the safetensors package: pip install safetensors") from None
    try:
        tensors = load_file(path / FOLDER_WEIGHTS)
    except (SafetensorError, OSError) as e:
        raise GanError(f"{path / FOLDER_WEIGHTS}: not a readable safetensors file ({e})") from None

    def state_of(name: str) -> dict:
        state = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        if not state:
            raise GanError(f"{path}: {FOLDER_WEIGHTS} holds no weights of {name}")
        return state

    return config, state_of


def checkpoint_header(path: str | Path) -> dict | None:
    """{kind, step, name} of one of this project's checkpoints (or run directory), read with its tensors left
    in the file (a saved folder: from its config.json); None for any other file."""
    path = locate(path)
    if is_saved_folder(path):
        config, _ = read_saved_folder(path)
        return {"kind": config["kind"], "step": config.get("step"), "name": config.get("name")}
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

    path = locate(path)
    if is_saved_folder(path):
        config, state_of = read_saved_folder(path)
        return _style_network(config, state_of, path, config.get("name", "?"), config.get("step", "?"), device)
    path = resolve(path)
    obj = safe_load(path)
    if not is_gan_checkpoint(obj):
        raise GanError(f"{path} is not a checkpoint of this project (--model takes the run directory or "
                       "checkpoint of a content + style model, e.g. model kind adain)")
    obj = migrate(obj, path)
    require(obj, "kind", path, str)
    return _style_network(obj, lambda name: require(obj, f"nets.{name}", path, dict), path,
                          obj.get("config", {}).get("name", "?"), obj.get("step", "?"), device)


def _style_network(obj: dict, state_of, path: Path, run, step, device) -> tuple[nn.Module, GeneratorInfo]:
    from gan.models import kind_class

    kind = obj["kind"]
    cls = kind_class(kind)
    if cls.inputs == ("image",):
        raise GanError(f"{path} is a {kind} model: stylize.py --model takes a content + style model, e.g. adain "
                       f"(a {kind} model translates one image at a time: use test.py --checkpoint)")
    net = cls.load_inference(model_config(obj, path), state_of, path)
    desc = f"{path} (run {run}, step {step}, {kind})"
    source = "folder" if is_saved_folder(path) else "checkpoint"
    return net.to(device).eval().requires_grad_(False), GeneratorInfo(source, path, desc, kind=kind, name=run)


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
