"""Put a painting's style on a photo by optimisation (Gatys et al.), coarse to fine.

    python stylize.py --content PHOTO_OR_DIR --style PAINTING [PAINTING ...] --output OUT [options]

OUT is an image file for one content image (its extension picks the format), or a folder: one output per
content image, same relative path. Nothing is overwritten without --overwrite. See README, "Neural style
transfer".
"""

from __future__ import annotations

import argparse
import sys

from gan.cli import add_threads_option, run, tune_allocator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--content", required=True, help="a photo, or a folder of photos (searched recursively)")
    p.add_argument("--style", required=True, nargs="+", help="one or more style images (paintings)")
    p.add_argument("--output", required=True, help="output image file, or a folder")
    p.add_argument("--style-weights", type=float, nargs="+", default=(), help="one per style (normalised)")
    p.add_argument("--size", type=int, default=512,
                   help="long side of the output in px (default %(default)s; with --model, 0 keeps the photo's size)")
    p.add_argument("--min-size", type=int, default=128, help="long side of the first scale (default %(default)s)")
    p.add_argument("--iterations", type=int, default=200, help="iterations per scale (default %(default)s)")
    p.add_argument("--content-weight", type=float, default=1.0)
    p.add_argument("--style-weight", type=float, default=None,
                   help="default: 1e6 with --style-loss gram, 10 with wasserstein")
    p.add_argument("--tv-weight", type=float, default=0.0, help="total-variation smoothing (default 0)")
    p.add_argument("--content-layers", default="relu4_2", help="comma-separated VGG19 layers")
    p.add_argument("--style-layers", default="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1")
    p.add_argument("--style-loss", default="gram", choices=["gram", "wasserstein"])
    p.add_argument("--style-scale", type=float, default=1.0, help="style image size relative to the output's")
    p.add_argument("--optimizer", default="adam", choices=["adam", "lbfgs"])
    p.add_argument("--lr", type=float, default=0.02, help="Adam step size (default %(default)s)")
    p.add_argument("--ema", type=float, default=0.95, help="decay of the iterate average (0: last iterate)")
    p.add_argument("--init", default="content", choices=["content", "noise", "style"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preserve-color", default="none", choices=["none", "luminance", "histogram"])
    p.add_argument("--format", default=None, choices=["png", "jpg", "tiff", "webp"], help="for folder outputs")
    p.add_argument("--bit-depth", type=int, default=8, choices=[8, 16], help="16: PNG or TIFF only")
    p.add_argument("--save-every", type=int, default=0, metavar="N", help="also write every N-th iterate")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 autocast where the hardware runs it natively, else fp32")
    p.add_argument("--model", metavar="RUN_OR_CKPT",
                   help="an AdaIN run or checkpoint (train.py --config configs/adain.yaml): one forward pass per "
                        "image instead of an optimisation")
    p.add_argument("--alpha", type=float, default=1.0, help="with --model: style strength, 0 (photo) to 1")
    p.add_argument("--vgg-weights", default="imagenet",
                   help="imagenet (downloaded once by torchvision) or a local vgg19-dcbb9e9d.pth")
    add_threads_option(p)
    args = p.parse_args(argv)

    def go() -> int:
        tune_allocator()
        from gan.runtime import Runtime
        from gan.inference.stylize_files import stylize_files
        from gan.stylize.optimise import load_vgg
        from gan.stylize.options import StylizeOptions

        runtime = Runtime.resolve(args.device, args.precision)
        device = runtime.device
        style_weight = args.style_weight if args.style_weight is not None else (
            1e6 if args.style_loss == "gram" else 10.0)
        opts = StylizeOptions(
            size=args.size, min_size=args.min_size, iterations=args.iterations, content_weight=args.content_weight,
            style_weight=style_weight, tv_weight=args.tv_weight, style_weights=tuple(args.style_weights),
            content_layers=tuple(x.strip() for x in args.content_layers.split(",") if x.strip()),
            style_layers=tuple(x.strip() for x in args.style_layers.split(",") if x.strip()),
            style_loss=args.style_loss, style_scale=args.style_scale, optimizer=args.optimizer, lr=args.lr,
            ema=args.ema, init=args.init, seed=args.seed, preserve_color=args.preserve_color,
        )
        import logging

        from gan import GanError

        opts.check(len(args.style))
        if args.save_every < 0:
            raise GanError("--save-every must be >= 0")
        log = logging.getLogger("gan")
        model = vgg = None
        if args.model:
            from gan.inference.load import load_style_network

            model, info = load_style_network(args.model, device)
            log.info("feed-forward stylization with %s on %s, alpha %g", info.description, runtime.describe(),
                     args.alpha)
        else:
            if opts.size == 0:
                raise GanError("--size 0 (the photo's own size) is for --model; optimisation needs a size")
            vgg = load_vgg(opts, args.vgg_weights, device)
            log.info("stylizing on %s, %s style loss, scales %s px", runtime.for_pixels().describe(), opts.style_loss,
                     _scales(opts))
        stylize_files(args.content, args.style, args.output, opts, vgg, runtime, args.format, args.bit_depth,
                      args.overwrite, args.save_every, model=model, alpha=args.alpha)
        return 0

    return run(go, args.threads)


def _scales(opts) -> str:
    from gan.stylize.options import scale_sizes

    return ", ".join(map(str, scale_sizes(opts.size, opts.min_size)))


if __name__ == "__main__":
    sys.exit(main())
