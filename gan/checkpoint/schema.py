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

Version 1 files (before model kinds) are migrated on load (`migrate`). Inference reads them through
gan.checkpoint.source. A file that lacks what is asked of it gives a GanError naming the missing key.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import torch

from gan import GanError

FORMAT = "gan-checkpoint"
VERSION = 2


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


def reference_generator(path: str | Path):
    """(generator, its GeneratorConfig) of a reference CycleGAN generator file (junyanz/pytorch-CycleGAN-and-pix2pix
    `latest_net_G*.pth`: a plain state dict; the architecture is read from its keys), or a GanError. What
    gan.checkpoint.source opens such files with, and what the zoo checks a download with."""
    from gan.nn.networks import load_reference_generator

    obj = safe_load(path)
    if not is_tensor_dict(obj):
        raise GanError(f"{path}: not a state dict of tensors")
    return load_reference_generator(obj)


def is_tensor_dict(obj) -> bool:
    """A non-empty dict of tensors: what a reference generator file holds (a plain state dict)."""
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())
