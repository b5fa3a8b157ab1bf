"""Style transfer speed and memory: gan.stylize.optimise against a plain single-scale Gatys loop written the way the
PyTorch tutorial does it (same VGG19 layers, Adam, target features computed once in the loss modules).

    python benchmarks/stylize.py [--sizes 256,512] [--iterations 10]

Each variant runs in its own process (so peak RSS is its own) at one scale of the given size, with random
VGG weights (speed does not depend on them). Prints one JSON line per size: seconds per iteration and peak
RSS of the plain loop, of gan.stylize.optimise in fp32 and with its default precision (bf16 autocast where the CPU or
GPU runs it natively), and the ratios to the plain loop.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def images(size: int):
    import numpy as np

    rng = np.random.default_rng(0)
    h = size * 3 // 4
    content = rng.integers(0, 256, (h, size, 3), dtype=np.uint8)
    style = rng.integers(0, 256, (h, size, 3), dtype=np.uint8)  # the tutorial's loop needs equal sizes
    return content, style


def plain_loop(size: int, iterations: int, warmup: int) -> float:
    """The tutorial's structure: a Sequential of VGG layers with loss modules inserted after the chosen
    layers, trimmed after the last one; targets captured at construction; Adam on the input image."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from gan.nn.losses import _VGG_INDEX, _vgg19_features

    def gram(x):
        a, b, c, d = x.size()
        f = x.view(a * b, c * d)
        return torch.mm(f, f.t()).div(a * b * c * d)

    class ContentLoss(nn.Module):
        def __init__(self, target):
            super().__init__()
            self.target = target.detach()

        def forward(self, x):
            self.loss = F.mse_loss(x, self.target)
            return x

    class StyleLoss(nn.Module):
        def __init__(self, target):
            super().__init__()
            self.target = gram(target).detach()

        def forward(self, x):
            self.loss = F.mse_loss(gram(x), self.target)
            return x

    class Normalization(nn.Module):
        def __init__(self):
            super().__init__()
            self.mean = torch.tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
            self.std = torch.tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)

        def forward(self, img):
            return (img - self.mean) / self.std

    content_np, style_np = images(size)
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    content, style = to_t(content_np), to_t(style_np)
    cnn = _vgg19_features().eval()
    names = {idx: name for name, idx in _VGG_INDEX.items()}
    model = nn.Sequential(Normalization())
    content_losses, style_losses = [], []
    for i, layer in enumerate(cnn):
        model.add_module(str(i), layer)
        name = names.get(i)
        if name in CONTENT_LAYERS:
            cl = ContentLoss(model(content))
            model.add_module(f"content_{i}", cl)
            content_losses.append(cl)
        if name in STYLE_LAYERS:
            sl = StyleLoss(model(style))
            model.add_module(f"style_{i}", sl)
            style_losses.append(sl)
        if len(style_losses) == len(STYLE_LAYERS) and len(content_losses) == len(CONTENT_LAYERS):
            break
    model.eval()
    model.requires_grad_(False)
    x = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.01)
    times = []
    for it in range(warmup + iterations):
        t = time.perf_counter()
        with torch.no_grad():
            x.clamp_(0, 1)
        opt.zero_grad()
        model(x)
        loss = 1e6 * sum(sl.loss for sl in style_losses) + sum(cl.loss for cl in content_losses)
        loss.backward()
        opt.step()
        if it >= warmup:
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def ours(size: int, iterations: int, warmup: int, precision: str) -> float:
    import torch

    from gan.runtime import Runtime
    from gan.stylize.optimise import load_vgg, stylize
    from gan.stylize.options import StylizeOptions

    content, style = images(size)
    opts = StylizeOptions(size=size, min_size=size, iterations=warmup + iterations,
                          content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS)
    stamps = []
    vgg = load_vgg(opts, "none", torch.device("cpu"))
    stylize(content, [style], opts, vgg, Runtime.resolve("cpu", precision), progress=False,
            should_stop=lambda: stamps.append(time.perf_counter()) and False)
    gaps = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1:])]
    return sorted(gaps)[len(gaps) // 2]


def worker(args) -> None:
    if args.worker == "plain":
        s = plain_loop(args.size, args.iterations, args.warmup)
    else:
        s = ours(args.size, args.iterations, args.warmup, args.worker.split("-")[1])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"s_per_it": s, "peak_rss_mb": round(peak_mb)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    import torch

    from gan.runtime import Runtime

    default = Runtime.resolve("cpu", "auto").precision.name
    for size in (int(s) for s in args.sizes.split(",")):
        row = {"benchmark": "stylize", "size": size, "iterations": args.iterations,
               "default_precision": default, "threads": torch.get_num_threads()}
        for key, variant in (("plain", "plain"), ("ours_fp32", "ours-fp32"), ("ours_default", f"ours-{default}")):
            out = subprocess.run([sys.executable, __file__, "--worker", variant, "--size", str(size),
                                  "--iterations", str(args.iterations), "--warmup", str(args.warmup)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            row[f"{key}_s_per_it"] = round(r["s_per_it"], 4)
            row[f"{key}_peak_rss_mb"] = r["peak_rss_mb"]
        row["ratio_fp32"] = round(row["ours_fp32_s_per_it"] / row["plain_s_per_it"], 3)
        row["ratio_default"] = round(row["ours_default_s_per_it"] / row["plain_s_per_it"], 3)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
