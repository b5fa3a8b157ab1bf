"""An AdaIN model on a big photo through stylize.py, as a user runs it: time and peak memory of the process.

    python benchmarks/adain_big.py [--width 4000] [--height 3000] [--style 96]

Trains a throwaway AdaIN run for one step (random VGG weights: the cost does not depend on them), then runs
`stylize.py --model RUN --content big.png --style STYLE --size 0` (the photo's own size, so it goes in bands)
in its own process and prints one JSON line: wall seconds and the child's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=4000)
    p.add_argument("--height", type=int, default=3000)
    p.add_argument("--style", type=int, default=96, help="side of the square style image")
    p.add_argument("--precision", default="auto")
    args = p.parse_args()

    import numpy as np
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        for split in ("trainA", "trainB"):
            (tmp / "data" / split).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp / "data" / split / f"{i}.png")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
        subprocess.run([sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs" / "adain.yaml"),
                        f"data.root={tmp / 'data'}", "data.train_a=trainA", "data.train_b=trainB", "data.batch_size=1",
                        "data.load_size=64", "data.crop_size=64", "data.num_workers=0", "loss.vgg.weights=none",
                        "train.max_steps=1", f"train.output_dir={tmp / 'runs'}", "name=adain",
                        "tracking.wandb.mode=disabled"], check=True, env=env, capture_output=True)
        small = rng.integers(0, 256, (args.height // 50, args.width // 50, 3), dtype=np.uint8)
        Image.fromarray(small).resize((args.width, args.height), Image.BILINEAR).save(tmp / "big.png")
        Image.fromarray(rng.integers(0, 256, (args.style, args.style, 3), dtype=np.uint8)).save(tmp / "style.png")
        start = time.perf_counter()
        r = subprocess.run([sys.executable, str(ROOT / "stylize.py"), "--model", str(tmp / "runs" / "adain"),
                            "--content", str(tmp / "big.png"), "--style", str(tmp / "style.png"), "--output",
                            str(tmp / "out.png"), "--size", "0", "--precision", args.precision],
                           env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if r.returncode != 0:
            sys.exit(r.stderr[-2000:])
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child: stylize.py
        out = Image.open(tmp / "out.png").size
    print(json.dumps({"benchmark": "adain_big", "content": [args.width, args.height], "style": args.style,
                      "precision": args.precision, "output": list(out), "seconds": round(seconds, 1),
                      "peak_rss_mb": round(peak_mb)}))


if __name__ == "__main__":
    main()
