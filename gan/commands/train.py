"""Train a model of any kind (CycleGAN, CUT, a style network, AdaIN): the config says which.

    python train.py [--config configs/quickstart.yaml] [key=value ...] [--resume RUN_DIR|CHECKPOINT]

With no arguments, trains the embedded default (configs/quickstart.yaml on the sample dataset, built on first
use). Overrides are dotted config keys, e.g. `train.lr=1e-4 data.batch_size=4` (also accepted as
`--train.lr=1e-4`, the form W&B sweep agents pass). `--resume` continues a run exactly from its checkpoint,
with its stored config (only length/logging/device keys may be overridden).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gan.cli import run

# The example configs: configs/ in a clone, gan/configs/ in an installed package (the same files).
CONFIG_DIRS = (Path(__file__).resolve().parents[2] / "configs", Path(__file__).resolve().parents[1] / "configs")


def config_file(given: str | None) -> Path:
    """--config as a file: the path given, or the name of an example config (photo2painting, cut, ...), which
    an installed package carries too; no --config: the quickstart."""
    from gan import GanError

    name = given or "quickstart"
    if given and (Path(given).is_file() or "/" in given or "\\" in given):
        return Path(given)
    for folder in CONFIG_DIRS:
        for candidate in (folder / name, folder / f"{name}.yaml"):
            if candidate.is_file():
                return candidate
    if given:
        return Path(given)  # load_config says it is missing
    raise GanError("no --config given and no example config here: pass --config FILE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Config reference: README.md, section 'Configuration'.")
    parser.add_argument("--config", help="YAML config file, or the name of an example config (quickstart, "
                                           "photo2painting, cut, ...; default: quickstart)")
    parser.add_argument("--resume", metavar="RUN_DIR|CHECKPOINT", help="continue a run exactly where it stopped")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.lr=1e-4")
    argv = sys.argv[1:] if argv is None else argv
    # --train.lr=0.1 (the form W&B sweep agents pass by default) is an override like train.lr=0.1.
    argv = [a[2:] if a.startswith("--") and "=" in a and "." in a.split("=", 1)[0] else a for a in argv]
    args = parser.parse_args(argv)

    # albumentations checks PyPI for a newer version at import unless told not to: no network calls here.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

    def go() -> int:
        from gan.config import ConfigError, load_config, replace
        from gan.training.trainer import train

        if args.resume:
            if args.config:
                raise ConfigError("--config cannot be combined with --resume: a resumed run keeps its stored "
                                  "config (pass key=value overrides for length, logging or device)")
            train(None, resume=args.resume, overrides=args.overrides)
        else:
            cfg = load_config(config_file(args.config), args.overrides)
            sweep_run = os.environ.get("WANDB_RUN_ID") if os.environ.get("WANDB_SWEEP_ID") else None
            if sweep_run and not any(o.startswith("name=") for o in args.overrides):
                cfg = replace(cfg, [f"name={cfg.name}-{sweep_run}"])  # under `wandb agent`: a folder per run
            train(cfg)
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
