"""Time per 512 px image on this machine for each way to put a painting's look on a photo:

    python benchmarks/feedforward.py [--size 512] [--repeats 3] [--stylize-iterations 5]

CycleGAN generator (ngf 64, 9 blocks, the paper's), per-style network (configs/style_feedforward.yaml's
generator), AdaIN (VGG19 encoder to relu4_1 + decoder), each one forward pass in fp32 and with the default
inference precision; and optimisation (stylize.py's defaults: 5 scales x 200 iterations), whose total is
measured per iteration at every scale (--stylize-iterations each) and multiplied out. Random weights: the
time does not depend on them. One JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--stylize-iterations", type=int, default=5)
    args = p.parse_args()

    import numpy as np
    import torch

    from gan.nn import losses
    from gan.config import load_config
    from gan.models.adain import ENCODER_LAYERS, AdaINNet, Decoder
    from gan.nn.networks import build_generator
    from gan.runtime import Runtime
    from gan.stylize.optimise import stylize
    from gan.stylize.options import StylizeOptions, fit_long_side, scale_sizes

    h, w = fit_long_side(384, 512, args.size)
    x = torch.rand(1, 3, h, w) * 2 - 1
    s = torch.rand(1, 3, args.size, args.size) * 2 - 1
    runtime = Runtime.resolve("cpu", "auto")
    default = runtime.precision.name
    nets = {
        "cyclegan": build_generator(load_config(ROOT / "configs" / "photo2monet.yaml").model).eval(),
        "style": build_generator(load_config(ROOT / "configs" / "style_feedforward.yaml").model).eval(),
    }
    adain = AdaINNet(losses.VGGFeatures(ENCODER_LAYERS, "none"), Decoder()).eval()
    row = {"benchmark": "feedforward", "size": [w, h], "threads": torch.get_num_threads(),
           "default_precision": default}
    with torch.no_grad():
        for precision in ("fp32", default):
            ctx = Runtime.resolve("cpu", precision).autocast
            for name, net in nets.items():
                def run(net=net):
                    with ctx():
                        net(x)
                row[f"{name}_{precision}_s"] = round(timed(run, args.repeats), 3)

            def run_adain():
                with ctx():
                    adain(x, s)
            row[f"adain_{precision}_s"] = round(timed(run_adain, args.repeats), 3)

    # Optimisation: seconds per iteration at every scale of the defaults, times 200 iterations each.
    content = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    style = np.random.default_rng(1).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    defaults = StylizeOptions(size=args.size)
    vgg = losses.VGGFeatures(defaults.content_layers + defaults.style_layers, "none")
    total = 0.0
    per_scale = {}
    for long_side in scale_sizes(defaults.size, defaults.min_size):
        opts = StylizeOptions(size=long_side, min_size=long_side, iterations=args.stylize_iterations + 1)
        stamps = []
        stylize(content, [style], opts, vgg, runtime, progress=False,
                should_stop=lambda: stamps.append(time.perf_counter()) and False)
        per_it = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
        per_scale[long_side] = round(per_it, 3)
        total += per_it * defaults.iterations
    row["stylize_s_per_it_by_scale"] = per_scale
    row["stylize_default_total_s"] = round(total, 1)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
