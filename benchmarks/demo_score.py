"""The demo's score: a model trained on the sample dataset, against the sample set's own painterly function.

    python benchmarks/demo_score.py [--checkpoint runs/quickstart] [--data datasets/sample] [--sheet PATH]

The sample set's "paintings" are `gan.data.sample.painterly` of photos, so its held-out photos (testA, at their
natural sizes) have a known target T(x) = painterly(x). For each one: PSNR and SSIM of G(x) against T(x),
the same for doing nothing (x against T(x)), the checkerboard score (benchmarks/quality.py's), and a sheet of
x | T(x) | G(x) rows. G is run as test.py runs it (the inference engine, the run's EMA weights when kept).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="runs/quickstart", help="run folder or checkpoint (default: the demo's)")
    p.add_argument("--data", default="datasets/sample", help="the sample dataset (built by the demo)")
    p.add_argument("--sheet", default="results/demo_score.png", help="where the x | T(x) | G(x) sheet goes")
    args = p.parse_args(argv)

    import torch

    from gan.data.io import find_images, load_image
    from gan.data.sample import painterly
    from gan.inference.engine import Engine
    from gan.inference.load import load_generator
    from quality import scores, write_sheet

    net, info = load_generator(args.checkpoint, "AtoB", "cpu")
    engine = Engine(net)
    xs, targets, outs = [], [], []
    for path in find_images(Path(args.data) / "testA"):
        x = load_image(path)
        xs.append(x)
        targets.append(painterly(x))
        outs.append(engine.image(torch.from_numpy(x).permute(2, 0, 1), as_uint8=True))
    if not xs:
        raise SystemExit(f"no images in {Path(args.data) / 'testA'}: build the sample dataset first (make demo)")
    result = {"benchmark": "demo_score", "checkpoint": str(args.checkpoint), "model": info.description,
              "images": len(xs), **scores(xs, targets, outs)}
    squares = [i for i, x in enumerate(xs) if x.shape[0] == x.shape[1]]  # the sheet's grid: one square size
    square = [i for i in squares if xs[i].shape == xs[squares[0]].shape] if squares else [0]
    result["sheet"] = str(write_sheet([xs[i] for i in square], [targets[i] for i in square],
                                      [outs[i] for i in square], Path(args.sheet), rows=len(square)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
