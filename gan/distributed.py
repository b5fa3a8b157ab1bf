"""Rank/world helpers that are harmless outside torch.distributed: one code path for 1 or N processes."""

from __future__ import annotations

import torch
import torch.distributed as dist

from gan import GanError


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    """True on the process that does every once-only side effect (files, console, W&B)."""
    return get_rank() == 0


def barrier() -> None:
    if is_dist():
        dist.barrier()


def resolve_device(name: str, what: str = "train.device") -> torch.device:
    """auto -> CUDA when available, else CPU; an explicit cuda device without CUDA is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GanError(f"{what}={name}, but CUDA is not available here (torch.cuda.is_available() is False); "
                       f"use auto or cpu")
    return torch.device(name)
