"""Training-step throughput against the machine's own matmul throughput, in one process.

    python benchmarks/train_step.py [--size 128] [--batch 1] [--ngf 64] [--blocks 9] [--precision fp32]
    python benchmarks/train_step.py --size 64 --ngf 32 --blocks 6 --threads-vs-load   # a shared machine

Runs the real Trainer.train_step (G update, then D update on pooled fakes) on a generated dataset and prints
one JSON line: median seconds per step, FLOPs of one step (torch.utils.flop_counter), achieved GFLOP/s, the
GFLOP/s of a large fp32 matmul measured in the same run, and their ratio.

--threads-vs-load instead prints one line per (compute threads, competing programs): PyTorch's own default
(one thread per physical core of the machine), the automatic choice of gan.cpus, and 1 thread, each on a quiet
machine and beside `--busy` single-threaded CPU-bound programs (as when something else runs on a laptop),
with each time's ratio to the automatic choice on a quiet machine.
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
from gan.training.trainer import Trainer, prepare_run_dir  # noqa: E402


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
    p.add_argument("--config", help="time this config's own model, crop and batch instead (random VGG weights, "
                                    "generated images); also prints the whole run's time for --images per domain")
    p.add_argument("--images", type=int, default=1000, help="with --config: images per domain, for epoch-based "
                                                             "configs (default %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="compute threads (0: automatic, gan.cpus)")
    p.add_argument("--threads-vs-load", action="store_true", help="the threads x competing-programs table")
    p.add_argument("--busy", type=int, default=1, help="competing programs for --threads-vs-load")
    args = p.parse_args()
    from gan.cpus import available_cpus, use_threads

    torch_default = torch.get_num_threads()  # PyTorch's choice, before ours
    use_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.config:
            from gan.config import read_yaml

            raw = read_yaml(args.config)
            crop = raw.get("data", {}).get("crop_size", 256)
            batch = raw.get("data", {}).get("batch_size", 1)
            make_data(tmp / "data", crop, max(4, batch))
            cfg = load_config(args.config, [
                f"data.root={tmp / 'data'}", "data.train_a=trainA", "data.train_b=trainB", "data.preprocess=crop",
                f"data.load_size={crop}", f"data.crop_size={crop}", f"train.precision={args.precision}",
                "data.num_workers=0", "data.flip=false", f"train.device={args.device}", "loss.vgg.weights=none",
                f"train.output_dir={tmp / 'runs'}", "name=bench", "tracking.wandb.mode=disabled", "eval.every=0"])
            args.size, args.batch = crop, batch
            args.ngf, args.blocks = cfg.model.generator.ngf, cfg.model.generator.n_blocks
        else:
            make_data(tmp / "data", args.size, max(4, args.batch))
        cfg = cfg if args.config else load_config(None, [
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

        def step_time(steps: int, warmup: int) -> float:
            for _ in range(warmup):
                trainer.train_step(batch)
            times = []
            for _ in range(steps):
                sync()
                t = time.perf_counter()
                trainer.train_step(batch)
                sync()
                times.append(time.perf_counter() - t)
            return statistics.median(times)

        if args.threads_vs_load:
            threads_vs_load(step_time, args, torch_default, available_cpus())
            return
        step_s = step_time(args.steps, args.warmup)
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            trainer.train_step(batch)
        flops = counter.get_total_flops()

    achieved = flops / step_s / 1e9
    peak = matmul_gflops()
    run = {}
    if args.config:
        t = cfg.train
        steps = t.max_steps or (t.epochs + t.epochs_decay) * (args.images // args.batch)
        run = {"config": args.config, "kind": cfg.model.kind, "run_steps": steps,
               **({} if t.max_steps else {"images_per_domain": args.images}),
               "run_hours": round(steps * step_s / 3600, 2)}
    print(json.dumps({
        "benchmark": "train_step", **run, "device": str(trainer.device), "threads": torch.get_num_threads(),
        "size": args.size, "batch": args.batch, "ngf": args.ngf, "blocks": args.blocks,
        "precision": args.precision, "median_step_s": round(step_s, 4), "step_gflop": round(flops / 1e9, 2),
        "achieved_gflops": round(achieved, 1), "matmul_gflops": round(peak, 1),
        "ratio_to_matmul": round(achieved / peak, 3),
    }))


def threads_vs_load(step_time, args, torch_default: int, auto: int) -> None:
    import subprocess

    settings = {"pytorch_default": torch_default, "auto": auto, "one": 1}
    rows = []
    for busy in (0, args.busy):
        # Pure-Python spinning programs: each keeps one core busy, as any CPU-bound program would.
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            for name, n in settings.items():
                torch.set_num_threads(n)
                s = step_time(args.steps, args.warmup)
                rows.append({"threads": name, "n_threads": n, "busy_programs": busy, "median_step_s": round(s, 4)})
        finally:
            for p in procs:
                p.kill()
    base = next(r["median_step_s"] for r in rows if r["threads"] == "auto" and r["busy_programs"] == 0)
    for r in rows:
        print(json.dumps({"benchmark": "train_step_threads", "size": args.size, "ngf": args.ngf, "blocks": args.blocks,
                          "available_cpus": auto, **r, "vs_auto_quiet": round(r["median_step_s"] / base, 2)}))


if __name__ == "__main__":
    main()
