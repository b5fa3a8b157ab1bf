"""Score a generator: translate a folder and compare the results with real images of the target domain.

    python -m gan.evaluate --checkpoint CKPT --input DIR --reference DIR [--direction AtoB|BtoA]
                           [--metrics fid,kid,mifid,edge_ssim] [--json FILE]

Prints a table and writes the numbers as JSON. Protocol: every readable image of --input is translated at
full resolution (or --size: short side resized, centre-cropped square), every image of --reference is
taken as it is; both sets go through the same feature extractor (FID Inception at 299x299). FID and KID
compare the two distributions (lower is better); MiFID (the metric of Kaggle's "I'm Something of a Painter
Myself") multiplies FID by a penalty when translations lie very close to reference images, so --reference
should then be the training paintings; edge_ssim compares each input's edges with its translation's.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from gan import GanError, ImageDecodeError
from gan.data import find_images, load_image, resize_center_crop, to_chw, to_tensor, to_uint8
from gan.metrics import METRICS, Scorer

log = logging.getLogger("gan")


def load_for_eval(path: Path, size: int | None) -> np.ndarray:
    """uint8 (H, W, 3); with `size`, short side resized to size and centre-cropped to size x size."""
    img = load_image(path)
    return resize_center_crop(img, size) if size else img


def add_reference(scorer: Scorer, paths: list[Path], size: int | None) -> int:
    n = 0
    for p in paths:
        try:
            scorer.add_real(to_chw(load_for_eval(p, size))[None])
            n += 1
        except ImageDecodeError as e:
            log.warning("skipping unreadable image %s", e)
    return n


def add_translations(scorer: Scorer, net, paths: list[Path], size: int | None, device: torch.device) -> int:
    from gan.translate import translate_batch

    n = 0
    for p in paths:
        try:
            img = load_for_eval(p, size)
        except ImageDecodeError as e:
            log.warning("skipping unreadable image %s", e)
            continue
        out = translate_batch(net, [to_tensor(img)], device)[0]
        scorer.add_fake(to_chw(to_uint8(out))[None], sources=to_chw(img)[None])
        n += 1
    return n


def format_table(results: dict[str, float]) -> str:
    width = max(len(k) for k in results)
    return "\n".join(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in results.items())


def main(argv: list[str] | None = None) -> int:
    from gan.cli import add_threads_option, run

    p = argparse.ArgumentParser(prog="python -m gan.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint, run dir, latest_net_G*.pth or .onnx")
    p.add_argument("--input", required=True, help="images to translate (folder or file)")
    p.add_argument("--reference", required=True, help="real images of the target domain")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    p.add_argument("--metrics", default="fid,kid", help=f"comma-separated, from {','.join(METRICS)}")
    p.add_argument("--size", type=int, default=None, help="resize+centre-crop inputs to N x N first")
    p.add_argument("--num-images", type=int, default=None, help="use at most N images of each set")
    p.add_argument("--inception-weights", default=None, help="a local copy of the FID Inception weights file")
    p.add_argument("--json", default="evaluation.json", help="where to write the results (default: %(default)s)")
    p.add_argument("--device", default="auto")
    add_threads_option(p)
    args = p.parse_args(argv)

    def go() -> int:
        from gan.distributed import resolve_device
        from gan.checkpoint import load_generator

        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        device = resolve_device(args.device, "--device")
        scorer = Scorer(metrics, inception_weights=args.inception_weights, device=device)
        net, info = load_generator(args.checkpoint, args.direction, device)
        inputs, refs = find_images(args.input), find_images(args.reference)
        if not inputs:
            raise GanError(f"no images in --input {args.input}")
        if not refs and scorer.needs_features:
            raise GanError(f"no images in --reference {args.reference}")
        if args.num_images:
            inputs, refs = inputs[: args.num_images], refs[: args.num_images]
        n_ref = add_reference(scorer, refs, None)
        n_in = add_translations(scorer, net, inputs, args.size, device)
        results = {**scorer.compute(), "n_input": n_in, "n_reference": n_ref}
        print(format_table(results))
        record = {"checkpoint": str(info.path), "direction": args.direction, "input": args.input,
                  "reference": args.reference, "size": args.size, "results": results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2))
        log.info("wrote %s", args.json)
        return 0

    return run(go, args.threads)


if __name__ == "__main__":
    sys.exit(main())
