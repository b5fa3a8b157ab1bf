"""Training-step throughput against the machine's own matmul throughput, in one process.

    python benchmarks/train_step.py [--size 128] [--batch 1] [--ngf 64] [--blocks 9] [--precision fp32]

Runs the real Trainer.train_step (G update, then D update on pooled fakes) on a generated dataset and prints
one JSON line: median seconds per step, FLOPs of one step (torch.utils.flop_counter), achieved GFLOP/s, the
GFLOP/s of a large fp32 matmul measured in the same run, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.config import load_config  # noqa: E402
from gan.trainer import Trainer, prepare_run_dir  # noqa: E402


def make_data(root: Path, size: int, n: int = 4) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for d in ("trainA", "trainB"):
        (root / d).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / d / f"{i}.png")


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--blocks", type=int, default=9)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_data(tmp / "data", args.size, max(4, args.batch))
        cfg = load_config(None, [
            f"data.root={tmp / 'data'}", "data.preprocess=none", f"data.batch_size={args.batch}",
            "data.num_workers=0", "data.flip=false", f"model.generator.ngf={args.ngf}",
            f"model.generator.n_blocks={args.blocks}", f"train.precision={args.precision}",
            f"train.device={args.device}", f"train.output_dir={tmp / 'runs'}", "name=bench",
            "tracking.wandb.mode=disabled", *(["data.preprocess=resize_and_crop", f"data.load_size={args.size}",
                                               f"data.crop_size={args.size}"] if args.batch > 1 else []),
        ])
        trainer = Trainer(cfg, prepare_run_dir(cfg))
        batch = next(iter(trainer.data.loader))
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
        for _ in range(args.warmup):
            trainer.train_step(batch)
        times = []
        for _ in range(args.steps):
            sync()
            t = time.perf_counter()
            trainer.train_step(batch)
            sync()
            times.append(time.perf_counter() - t)
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            trainer.train_step(batch)
        flops = counter.get_total_flops()

    step_s = statistics.median(times)
    achieved = flops / step_s / 1e9
    peak = matmul_gflops()
    print(json.dumps({
        "benchmark": "train_step", "device": str(trainer.device), "threads": torch.get_num_threads(),
        "size": args.size, "batch": args.batch, "ngf": args.ngf, "blocks": args.blocks,
        "precision": args.precision, "median_step_s": round(step_s, 4), "step_gflop": round(flops / 1e9, 2),
        "achieved_gflops": round(achieved, 1), "matmul_gflops": round(peak, 1),
        "ratio_to_matmul": round(achieved / peak, 3),
    }))


if __name__ == "__main__":
    main()
