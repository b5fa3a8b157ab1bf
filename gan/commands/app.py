"""The web app: translate photos and videos with trained models, compare checkpoints, stylize live.

    python app.py [--runs runs/] [--checkpoint CKPT ...] [--host 127.0.0.1] [--port 7860] [--auth USER:PASS]

Models: every run under --runs (latest, best and each step checkpoint) and every --checkpoint (this project's
checkpoints and run folders, reference CycleGAN files latest_net_G*.pth, ONNX and TorchScript exports, AdaIN
runs). It listens on 127.0.0.1 unless --host says otherwise. See README, "Web app".
"""

from __future__ import annotations

import argparse
import sys

from gan.cli import add_threads_option, run, tune_allocator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="runs", help="folder of training runs (default: runs)")
    p.add_argument("--checkpoint", nargs="*", default=[],
                   help="more models: checkpoints, run folders, exports, saved folders, zoo:NAME, hf:USER/REPO")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--auth", metavar="USER:PASS", help="ask for this user name and password")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--max-upload-mb", type=float, default=50, help="largest upload accepted (default 50)")
    p.add_argument("--max-megapixels", type=float, default=40, help="largest decoded image accepted (default 40)")
    p.add_argument("--max-video-seconds", type=float, default=60,
                   help="longest video upload accepted, in seconds (default 60)")
    p.add_argument("--max-video-frames", type=int, default=1800,
                   help="video uploads with more frames are refused (default 1800)")
    p.add_argument("--stylize-size", type=int, default=384, help="the Stylize tab's starting size (default 384)")
    p.add_argument("--stylize-iterations", type=int, default=100,
                   help="the Stylize tab's starting iterations per scale (default 100)")
    p.add_argument("--vgg-weights", default="imagenet",
                   help="VGG19 for optimisation-based stylizing: imagenet (downloaded once) or a local "
                        "vgg19-dcbb9e9d.pth; none = random weights (testing only)")
    add_threads_option(p)
    args = p.parse_args(argv)

    def go() -> int:
        tune_allocator()
        from gan import GanError
        from gan.app import Settings, build_catalog, cleanup, serve
        from gan.runtime import Runtime

        if args.auth is not None and ":" not in args.auth:
            raise GanError("--auth takes USER:PASS")
        if not 0 < args.port < 65536:
            raise GanError(f"--port must be 1..65535, got {args.port}")
        runtime = Runtime.resolve(args.device, args.precision)
        if args.max_video_seconds <= 0 or args.max_video_frames < 1:
            raise GanError("--max-video-seconds must be > 0 and --max-video-frames >= 1")
        settings = Settings(runtime, args.max_megapixels, args.max_video_seconds,
                            args.max_video_frames, args.vgg_weights)
        catalog = build_catalog(args.runs, args.checkpoint)
        if not catalog.models:
            import logging

            logging.getLogger("gan").warning("no model found (looked in %s and the --checkpoint files): only "
                                             "optimisation-based stylizing is available", args.runs)
        auth = tuple(args.auth.split(":", 1)) if args.auth else None
        import signal

        def stop(signum, frame):  # SIGTERM (a service manager, a container) ends the app as Ctrl-C does: cleaned up
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        try:
            defaults = {"size": args.stylize_size, "iterations": args.stylize_iterations}
            serve(catalog, settings, args.host, args.port, auth, args.max_upload_mb, defaults)
        except OSError as e:
            raise GanError(f"cannot listen on {args.host}:{args.port}: {e}") from None
        finally:
            cleanup(settings)
        return 0

    return run(go, args.threads)


if __name__ == "__main__":
    sys.exit(main())
