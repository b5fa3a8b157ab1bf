"""How many CPU cores this process really has, and the threads and worker processes that follow from it.

PyTorch's default is one compute thread per physical core of the machine, whatever this process may use: in a
container limited to 2 of 64 cores, under `taskset`, or beside another busy program, its OpenMP threads then
wait on each other for cores they do not get (measured: 9x slower steps; README, "Threads"). Every entry point
calls `use_threads` once; data loaders ask `worker_count`.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

log = logging.getLogger("gan")


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """Cores allowed by the cgroup CPU quota (Docker's --cpus, Kubernetes limits), or None when unlimited."""
    try:  # cgroup v2: "max 100000" or "200000 100000"
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """Cores this process may run on: its CPU affinity (taskset, cpusets, SLURM) within the cgroup quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def auto_threads() -> int:
    """Compute threads for one process: the available cores shared among the processes of this machine
    (torchrun's LOCAL_WORLD_SIZE), at least 1."""
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, available_cpus() // local)


def use_threads(threads: int = 0) -> int:
    """Set PyTorch's intra-op threads: `threads` > 0 as given; 0 = automatic, which keeps an OMP_NUM_THREADS
    the user set and otherwise takes `auto_threads()`. Returns the number in use."""
    import torch

    if threads < 0:
        from gan import GanError

        raise GanError(f"threads must be >= 0 (0 = automatic), got {threads}")
    if threads == 0 and os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads()
    n = threads or auto_threads()
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n


def worker_count(requested: int, what: str, announce: bool = True) -> int:
    """Data-loading processes: `requested`, but never more than the cores available (more only queue for the
    same cores, and PyTorch warns); the log says when it is lowered (if `announce`)."""
    cpus = available_cpus()
    if requested > cpus and announce:
        log.info("%s=%d: %d CPU core(s) available to this process, using %d worker(s)", what, requested, cpus, cpus)
    return min(requested, cpus)
