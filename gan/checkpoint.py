"""Checkpoints: one self-contained file per save, written atomically, read with weights_only=True.

File contents (plain containers and tensors only):
    format "gan-checkpoint", version, config (plain dict), step, epoch,
    nets {g_ab, g_ba, d_a, d_b}, optimizers {g, d}, schedulers {g, d}, scalers {g, d},
    position {epoch, in_epoch, steps_per_epoch, batch_size, world_size}, pools [per rank {a, b}],
    rng [per rank {torch, cuda, numpy, python}], wandb_run_id, best {metric, value, step} or None

`load_any` also accepts a run directory (its latest.pt) and reference CycleGAN generator files.
"""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from pathlib import Path

import torch

from gan import GanError

FORMAT = "gan-checkpoint"
VERSION = 1


def step_name(step: int) -> str:
    return f"step_{step:07d}.pt"


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
    atomic_save({"format": FORMAT, "version": VERSION, **state}, path)
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


def safe_load(path: str | Path) -> object:
    """torch.load(weights_only=True): refuses anything that would run code while unpickling."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
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


def load_checkpoint(path: str | Path) -> dict:
    """One of this project's checkpoints (file or run dir), validated."""
    path = resolve(path)
    obj = safe_load(path)
    if not is_gan_checkpoint(obj):
        raise GanError(f"{path} is not a checkpoint of this project (no format tag {FORMAT!r})")
    if obj.get("version", 0) > VERSION:
        raise GanError(f"{path} has checkpoint version {obj['version']}; this version reads up to {VERSION}")
    obj["path"] = str(path)
    return obj
