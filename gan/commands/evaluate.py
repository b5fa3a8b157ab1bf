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

from gan import GanError
from gan.data.io import find_images
from gan.evaluation.metrics import METRICS, Scorer, add_reference, add_translations

log = logging.getLogger("gan")


def format_table(results: dict[str, float]) -> str:
    width = max(len(k) for k in results)
    return "\n".join(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in results.items())


def main(argv: list[str] | None = None) -> int:
    from gan.cli import add_threads_option, run

    p = argparse.ArgumentParser(prog="python -m gan.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint, run dir, saved folder, zoo:NAME, hf:USER/REPO, latest_net_G*.pth or .onnx")
    p.add_argument("--input", required=True, help="images to translate (folder or file)")
    p.add_argument("--reference", required=True, help="real images of the target domain")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    p.add_argument("--metrics", default="fid,kid", help=f"comma-separated, from {','.join(METRICS)}")
    p.add_argument("--size", type=int, default=None, help="resize+centre-crop inputs to N x N first")
    p.add_argument("--num-images", type=int, default=None, help="use at most N images of each set")
    p.add_argument("--inception-weights", default=None, help="a local copy of the FID Inception weights file")
    p.add_argument("--json", default="evaluation.json", help="where to write the results (default: %(default)s)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16/fp16 autocast where the hardware runs it natively, else fp32 (as test.py)")
    p.add_argument("--max-megapixels", type=float, default=4.0,
                   help="inputs above this are translated in bands with whole-image statistics (as test.py)")
    add_threads_option(p)
    args = p.parse_args(argv)

    def go() -> int:
        from gan.inference.load import load_generator
        from gan.inference.engine import Engine
        from gan.runtime import Runtime

        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        runtime = Runtime.resolve(args.device, args.precision)
        scorer = Scorer(metrics, inception_weights=args.inception_weights, device=runtime.device)
        net, info = load_generator(args.checkpoint, args.direction, runtime.device)
        inputs, refs = find_images(args.input), find_images(args.reference)
        if not inputs:
            raise GanError(f"no images in --input {args.input}")
        if not refs and scorer.needs_features:
            raise GanError(f"no images in --reference {args.reference}")
        if args.num_images:
            inputs, refs = inputs[: args.num_images], refs[: args.num_images]
        n_ref = add_reference(scorer, refs, None)
        engine = Engine(net, runtime, max_pixels=int(args.max_megapixels * 1e6))
        n_in = add_translations(scorer, engine.to_uint8, inputs, args.size)
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
