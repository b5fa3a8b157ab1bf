"""Save a trained model as a folder anyone can load without pickle, or push it to the Hugging Face Hub:

    python -m gan.hub save RUN_OR_CKPT FOLDER [--weights ema|raw] [--overwrite]
    python -m gan.hub push RUN_OR_CKPT USER/REPO [--private] [--token TOKEN] [--message TEXT]

FOLDER gets model.safetensors, config.json, a model card (README.md) and the run's last sample sheet;
`--checkpoint FOLDER` and `--checkpoint hf:USER/REPO[@REVISION]` load it. The work is gan.hub.publish's; this is
the command.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from gan.cli import run

    parser = argparse.ArgumentParser(prog="python -m gan.hub", description="Save or push a trained model.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("save", help="write a model folder (safetensors + config.json + model card)")
    s.add_argument("source", metavar="RUN_OR_CKPT")
    s.add_argument("folder", metavar="FOLDER")
    s.add_argument("--weights", default="ema", choices=["ema", "raw"],
                   help="ema: the moving average when the run kept one (default); raw: the trained weights")
    s.add_argument("--overwrite", action="store_true", help="replace a folder that is not empty")
    p = sub.add_parser("push", help="save and upload to the Hugging Face Hub")
    p.add_argument("source", metavar="RUN_OR_CKPT")
    p.add_argument("repo", metavar="USER/REPO")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--token", default=None, help="Hub token (default: the one `hf auth login` stored, or HF_TOKEN)")
    p.add_argument("--message", default=None, help="commit message")
    args = parser.parse_args(argv)

    def go() -> int:
        import logging

        from gan.hub import publish as hub

        log = logging.getLogger("gan")
        if args.command == "save":
            folder = hub.save(args.source, args.folder, args.weights, args.overwrite)
            log.info("saved %s to %s (%s)", args.source, folder, ", ".join(sorted(p.name for p in folder.iterdir())))
        else:
            url = hub.push(args.source, args.repo, args.private, args.token, args.message)
            log.info("pushed %s to %s; load it with --checkpoint hf:%s", args.source, url, args.repo)
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
