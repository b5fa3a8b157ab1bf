"""Checkpoints: the file format's only owner. One self-contained file per save, written atomically, read
with `torch.load(weights_only=True)` (plain containers and tensors only: nothing in it can run code).

Schema, version 2 (every key always present; None where a feature is off):

    format        "gan-checkpoint"
    version       2
    kind          model kind ("cyclegan", ...), as config.model.kind
    config        the run's full config as a plain dict (gan.config.to_dict)
    step          optimizer steps taken (one step = every update of the kind once)
    epoch         whole epochs done
    position      {epoch, in_epoch, steps_per_epoch, batch_size, world_size}: where the data order resumes
    nets          {net name: state_dict} of every trained net of the kind (cyclegan: g_ab, g_ba, d_a, d_b)
    ema           {net name: state_dict} of the generators' exponential moving average, or None
    optimizers    {optimizer name: Adam state_dict} (cyclegan: g, d)
    scalers       {optimizer name: GradScaler state_dict} (empty dicts unless fp16)
    schedule      {policy, base_lr, lr: {optimizer name: lr at this step}}: for reading only; the LR is a
                  pure function of the position
    rank_state    [one dict per process]: the kind's per-process state (cyclegan: {pool_a, pool_b})
    rng           [one dict per process]: {torch, numpy, python[, cuda]} generator states
    wandb_run_id  str or None
    best          {metric, value, step} of best.pt, or None

Version 1 files (before model kinds) are migrated on load (`migrate`). Inference (`load_generator`) reads only
`kind`, `config.model` and the generator it needs, so a checkpoint stays loadable when training-only config
keys change. A file that lacks what is asked of it gives a GanError naming the missing key.

`load_generator` also accepts a run directory (its latest.pt), reference CycleGAN generator files
(junyanz/pytorch-CycleGAN-and-pix2pix `latest_net_G*.pth` state_dicts), and this project's own ONNX and
TorchScript exports.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gan import GanError

FORMAT = "gan-checkpoint"
VERSION = 2
EXPORT_META = "gan_export.json"  # the extra file TorchScript exports carry (direction, source)


# ------------------------------------------------------------------------------------------- writing


def step_name(step: int) -> str:
    return f"step_{step:07d}.pt"


def pack(*, kind: str, config: dict, step: int, epoch: int, position: dict, nets: dict, ema: dict | None,
         optimizers: dict, scalers: dict, schedule: dict, rank_state: list, rng: list,
         wandb_run_id: str | None, best: dict | None) -> dict:
    """The checkpoint dict, every key of the schema by name (keyword-only: nothing is left out by accident)."""
    return {"format": FORMAT, "version": VERSION, "kind": kind, "config": config, "step": step, "epoch": epoch,
            "position": position, "nets": nets, "ema": ema, "optimizers": optimizers, "scalers": scalers,
            "schedule": schedule, "rank_state": rank_state, "rng": rng, "wandb_run_id": wandb_run_id,
            "best": best}


def atomic_save(obj: dict, path: Path) -> None:
    """torch.save to a temp file in the same folder, fsync, then os.replace: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(state: dict, run_dir: Path, keep_last: int) -> Path:
    """Write checkpoints/step_XXXXXXX.pt, point latest.pt at it, keep the newest `keep_last` step files."""
    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / step_name(state["step"])
    atomic_save(state, path)
    link(path, run_dir / "latest.pt")
    prune(run_dir / "checkpoints", keep_last)
    return path


def link(path: Path, name: Path) -> None:
    """Point `name` (latest.pt, best.pt) at a checkpoint file: a hard link (no second copy on disk, survives
    pruning of the step file), a copy where links are not possible; replaced atomically."""
    tmp = name.with_name(f".{name.name}.tmp-{os.getpid()}")
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, name)


def prune(folder: Path, keep_last: int) -> None:
    files = sorted(Path(folder).glob("step_*.pt"))
    for old in files[:-keep_last]:
        old.unlink()


# ------------------------------------------------------------------------------------------- reading


def resolve(path: str | Path) -> Path:
    """A checkpoint file, or a run directory -> its latest.pt (or newest step file)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "latest.pt", path / "checkpoints" / "latest.pt"):
            if candidate.is_file():
                return candidate
        steps = sorted(path.glob("checkpoints/step_*.pt")) or sorted(path.glob("step_*.pt"))
        if steps:
            return steps[-1]
        raise GanError(f"no checkpoint in {path} (expected latest.pt or checkpoints/step_*.pt)")
    if not path.exists():
        raise GanError(f"checkpoint not found: {path}")
    return path


def run_dir_of(ckpt: Path) -> Path:
    """runs/x/latest.pt -> runs/x; runs/x/checkpoints/step_1.pt -> runs/x."""
    ckpt = Path(ckpt)
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive (torch.jit.save): a zip with a code/ folder, which torch.load refuses."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in name for name in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def safe_load(path: str | Path, mmap: bool = False) -> object:
    """torch.load(weights_only=True): refuses anything that would run code while unpickling. `mmap`: tensors
    stay in the file, mapped, and are read only when touched (reading a checkpoint's kind or step costs
    neither its optimizer state nor its weights in memory)."""
    path = Path(path)
    if is_torchscript(path):  # torch.load would only point at an unsafe workaround
        raise GanError(f"{path} is a TorchScript model, not a checkpoint: test.py --checkpoint runs it; for "
                       "anything else give the run directory or checkpoint it was exported from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "global" in text.lower():  # "Unsupported global: GLOBAL posix.mkdir" and the like
            first = next((line.strip() for line in text.splitlines() if "global" in line.lower()), "")
            raise GanError(f"refusing to load {path}: it holds Python objects that would need arbitrary code "
                           f"to unpickle (only tensors and plain containers are accepted). {first}") from None
        raise GanError(f"cannot read {path} as a PyTorch checkpoint (not a torch.save file)") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, OSError, ValueError) as e:
        size = path.stat().st_size if path.exists() else 0
        what = "empty file" if size == 0 else f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise GanError(f"cannot read {path} as a PyTorch checkpoint ({what})") from None


def is_gan_checkpoint(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def migrate(obj: dict, path: Path) -> dict:
    """Bring an older checkpoint dict to VERSION (in place); refuse newer ones."""
    version = obj.get("version", 1)
    if not isinstance(version, int) or version > VERSION:
        raise GanError(f"{path} has checkpoint version {version}; this version of gan reads up to {VERSION}")
    if version == 1:
        # v1: CycleGAN only; pools [{a, b}] per rank, `schedulers` instead of `schedule`, no EMA.
        obj["kind"] = "cyclegan"
        pools = obj.pop("pools", None)
        obj["rank_state"] = [{"pool_a": p["a"], "pool_b": p["b"]} for p in pools] if pools is not None else []
        old = obj.pop("schedulers", None) or {}
        obj["schedule"] = {"policy": old.get("policy"), "base_lr": old.get("base_lr"),
                           "lr": {"g": old.get("lr_g"), "d": old.get("lr_d")}}
        obj.setdefault("ema", None)
        if isinstance(obj.get("config"), dict) and isinstance(obj["config"].get("model"), dict):
            obj["config"]["model"].setdefault("kind", "cyclegan")
        obj["version"] = 2
    return obj


def require(obj: dict, dotted: str, path: Path, types: type | tuple = object):
    """obj[a][b]... for "a.b", or a GanError that names the missing or malformed key."""
    node = obj
    for i, part in enumerate(dotted.split(".")):
        if not isinstance(node, dict) or part not in node:
            raise GanError(f"{path} is incomplete: it has no {'.'.join(dotted.split('.')[:i + 1])} "
                           "(a truncated file, or not written by this program?)")
        node = node[part]
    if not isinstance(node, types):
        raise GanError(f"{path}: {dotted} is a {type(node).__name__}, not what a checkpoint holds there")
    return node


TRAINING_KEYS = (("kind", str), ("config", dict), ("step", int), ("epoch", int), ("position", dict),
                 ("nets", dict), ("optimizers", dict), ("scalers", dict), ("rank_state", list), ("rng", list))


def load_checkpoint(path: str | Path) -> dict:
    """One of this project's checkpoints (file or run dir), migrated to VERSION and checked for everything a
    resumed run needs. `path` in the result is the file read."""
    path = resolve(path)
    obj = safe_load(path)
    if not is_gan_checkpoint(obj):
        raise GanError(f"{path} is not a checkpoint of this project (no format tag {FORMAT!r})")
    obj = migrate(obj, path)
    for key, types in TRAINING_KEYS:
        require(obj, key, path, types)
    for key in ("epoch", "in_epoch", "steps_per_epoch", "batch_size", "world_size"):
        require(obj, f"position.{key}", path, int)
    obj["path"] = str(path)
    return obj


# ------------------------------------------------------------------------------ RNG state (plain data)


def rng_state() -> dict:
    """Every global generator's state as tensors and plain values."""
    np_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------- inference


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
        from gan.onnx_runtime import OnnxGenerator

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
        from gan.networks import load_reference_generator

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
