"""Translate images with a trained generator.

    python test.py --checkpoint CKPT --input DIR_OR_FILE --output DIR [--direction AtoB|BtoA]
                   [--batch-size N] [--tile N] [--tile-overlap N] [--resize N] [--device auto|cpu|cuda]
                   [--strength S]
                   [--video-stats frame|running|clip] [--video-smooth S] [--video-codec h264|h265|vp9] [--crf N]

CKPT: a checkpoint of this project, a run directory (its latest checkpoint), a reference CycleGAN generator
file (latest_net_G.pth, style_monet.pth, ...) or this project's ONNX / TorchScript export. Every image and video
under --input (recursively) is written under --output with the same relative path, at full resolution.
"""

from __future__ import annotations

import argparse
import logging
import sys

from gan.cli import add_threads_option, run, tune_allocator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint, run dir, saved folder, zoo:NAME, hf:USER/REPO, latest_net_G*.pth or .onnx")
    p.add_argument("--input", required=True, help="an image file or a folder (searched recursively)")
    p.add_argument("--output", required=True, help="folder for the results (same relative paths)")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"], help="AtoB: photo -> painting")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per batch, same-size images grouped (default: 4 on CUDA, 1 on the CPU)")
    p.add_argument("--tile", type=int, default=0, metavar="N",
                   help="translate images above NxN pixels in bands of about NxN pixels (whole-image statistics, "
                        "the untiled result); 0 = only images above --max-megapixels, in bands of 512x512")
    p.add_argument("--tile-overlap", type=int, default=32,
                   help="exported (ONNX/TorchScript) models only: overlap of their blended tiles in px")
    p.add_argument("--max-megapixels", type=float, default=4.0,
                   help="larger images are computed in bands automatically (default %(default)s)")
    p.add_argument("--resize", type=int, default=None, metavar="N", help="resize the short side to N first")
    p.add_argument("--format", default="png", help="output format: png, jpg, webp, bmp, tif")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16/fp16 autocast where the hardware runs it natively, else fp32")
    p.add_argument("--workers", type=int, default=2, help="decoding processes (at most the CPU cores available)")
    add_threads_option(p)
    p.add_argument("--weights", default="ema", choices=["ema", "raw"],
                   help="ema: the generator's moving average when the run kept one (default); raw: trained weights")
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="how much of the model's change to apply: 0 = the photo, 1 = the model's output (default), "
                        "above 1 (up to 4) exaggerates it")
    p.add_argument("--side-by-side", metavar="FILE", help="also write one PNG of input | output rows (images)")
    v = p.add_argument_group("videos (mp4, mov, mkv, webm, avi; animated GIF/WebP)")
    v.add_argument("--video-stats", default="frame", choices=["frame", "running", "clip"],
                   help="where the norm layers take their statistics from: each frame its own (default), a running "
                        "average over frames, or the whole clip (see README)")
    v.add_argument("--video-smooth", type=float, default=None, metavar="S",
                   help="temporal smoothing along the motion, 0 (off) to <1 (default 0.7): steadies the strokes "
                        "from frame to frame (see README)")
    v.add_argument("--video-momentum", type=float, default=0.9, help="running: weight of the past (default 0.9)")
    v.add_argument("--clip-frames", type=int, default=16, help="clip: frames sampled for the statistics")
    v.add_argument("--video-codec", default=None, choices=["h264", "h265", "vp9"],
                   help="default h264 (yuv420p), vp9 for webm")
    v.add_argument("--crf", type=int, default=None, help="quality, lower is better (default 18 h264, 22 h265, 30 vp9)")
    args = p.parse_args(argv)

    def go() -> int:
        tune_allocator()
        from gan import GanError
        from gan.inference.load import load_generator
        from gan.inference.engine import check_strength
        from gan.inference.translate import TranslateOptions, plan_outputs, side_by_side, translate_folder
        from gan.inference.video import VideoOptions, is_video
        from gan.runtime import Runtime

        for name in ("workers", "tile", "tile_overlap"):
            if getattr(args, name) < 0:
                raise GanError(f"--{name.replace('_', '-')} must be >= 0")
        if args.resize is not None and args.resize < 1:
            raise GanError("--resize must be >= 1")
        if args.batch_size is not None and args.batch_size < 1:
            raise GanError("--batch-size must be >= 1")
        check_strength(args.strength)
        runtime = Runtime.resolve(args.device, args.precision)
        net, info = load_generator(args.checkpoint, args.direction, runtime.device, args.weights)
        log = logging.getLogger("gan")
        batch = args.batch_size or (4 if runtime.device.type == "cuda" else 1)  # CPUs gain nothing from batching
        log.info("generator: %s, %s, on %s (batch %d%s)", info.description, args.direction,
                 runtime.applied_to(net).describe(), batch, f", strength {args.strength:g}" if args.strength != 1 else "")
        opts = TranslateOptions(
            batch_size=batch, tile=args.tile, tile_overlap=args.tile_overlap,
            max_pixels=int(args.max_megapixels * 1e6), resize=args.resize, fmt=args.format.lower(),
            overwrite=args.overwrite, workers=args.workers, strength=args.strength,
            video=VideoOptions(stats=args.video_stats, momentum=args.video_momentum, clip_frames=args.clip_frames,
                               codec=args.video_codec, crf=args.crf,
                               **({} if args.video_smooth is None else {"smooth": args.video_smooth})),
        )
        report = translate_folder(net, args.input, args.output, opts, runtime=runtime)
        images = report.written - report.videos
        what = [f"{images} image(s)"] if images or not report.videos else []
        if report.videos:
            what.append(f"{report.videos} video(s), {report.frames} frames")
        log.info("translated %s into %s in %.1f s%s", " and ".join(what), args.output, report.seconds,
                 f"; skipped {len(report.skipped)} unreadable file(s)" if report.skipped else "")
        if report.written == 0:
            raise GanError(f"nothing was translated: every input was unreadable ({len(report.skipped)} file(s))")
        if args.side_by_side:
            pairs = [(s, d) for s, d in plan_outputs(args.input, args.output, opts.fmt) if not is_video(s)]
            if pairs:
                log.info("side by side: %s", side_by_side(pairs, args.side_by_side))
            else:
                log.warning("--side-by-side: no image among the inputs (videos are not shown)")
        return 0

    return run(go, args.threads)


if __name__ == "__main__":
    sys.exit(main())
