"""Rank/world helpers that are harmless outside torch.distributed: one code path for 1 or N processes.

Launched by torchrun (RANK, WORLD_SIZE, LOCAL_RANK in the environment), `init()` joins the process group:
NCCL when the run uses CUDA, gloo on the CPU. Without those variables everything here is a no-op.
"""

from __future__ import annotations

import datetime
import os

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


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device_name: str) -> None:
    """Join the process group when started by torchrun (no-op otherwise, or if already joined)."""
    if not launched_by_torchrun() or is_dist():
        return
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=30))


def shutdown() -> None:
    if is_dist():
        dist.destroy_process_group()


def resolve_device(name: str, what: str = "train.device") -> torch.device:
    """auto -> CUDA when available, else CPU; under torchrun, CUDA means this process's LOCAL_RANK GPU.
    An explicit cuda device without CUDA is a clear error, and so is cuda:N under torchrun (each process
    takes its LOCAL_RANK's GPU; which GPUs a job sees is CUDA_VISIBLE_DEVICES' business)."""
    if name.startswith("cuda:") and launched_by_torchrun():
        raise GanError(f"{what}={name} under torchrun: each process uses the GPU of its LOCAL_RANK, so a fixed "
                       f"GPU index would put every process on one GPU. Use {what.split('=')[0]}=cuda (or auto) and "
                       "choose the GPUs with CUDA_VISIBLE_DEVICES, e.g. CUDA_VISIBLE_DEVICES=2,3 torchrun ...")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GanError(f"{what}={name}, but CUDA is not available here (torch.cuda.is_available() is False); "
                       f"use auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and is_dist():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def all_gather_object(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...]; [obj] outside DDP."""
    if not is_dist():
        return [obj]
    out = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool, device: torch.device) -> bool:
    """True if `flag` is set on any rank (a collective: every rank must call it at the same point)."""
    if not is_dist():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def max_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """Element-wise max of a tensor over ranks (one all-reduce); the tensor itself outside DDP."""
    if is_dist():
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average logged scalars over ranks (a collective)."""
    if not is_dist() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return {k: v / get_world_size() for k, v in zip(keys, t.tolist())}
