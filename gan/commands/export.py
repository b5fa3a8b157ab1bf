"""Export a generator (or a content + style network) to ONNX or TorchScript, checked against PyTorch:

    python -m gan.export --checkpoint CKPT --format onnx|torchscript --output FILE [--direction AtoB|BtoA]

The work is gan.inference.export's; this is the command.
"""

from __future__ import annotations

import argparse
import sys

from gan import GanError
from gan.inference.export import TOLERANCE, export, write_export


def main(argv: list[str] | None = None) -> int:
    from gan.cli import add_threads_option, run

    parser = argparse.ArgumentParser(prog="python -m gan.export", description="Export a generator.")
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint, run directory, saved folder, zoo:NAME, hf:USER/REPO or latest_net_G*.pth")
    parser.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    parser.add_argument("--output", required=True, help="file to write (.onnx / .pt)")
    parser.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    parser.add_argument("--weights", default="ema", choices=["ema", "raw"],
                        help="ema: the generator's moving average when the run kept one (default); raw: trained weights")
    add_threads_option(parser)
    args = parser.parse_args(argv)

    def go() -> int:
        import logging

        from gan.checkpoint.source import open_model
        from gan.models.base import one_image

        model = open_model(args.checkpoint, args.weights)
        if model.source in ("onnx", "torchscript"):
            raise GanError(f"--checkpoint is already an exported ({model.source}) model")
        if not one_image(model.kind_class()):
            net, info = model.style_network()
            spec = model.kind_class().export_spec(net)
            diff = write_export(spec, args.format, args.output,
                                meta={"kind": model.kind, "description": info.description})
            logging.getLogger("gan").info("exported %s to %s (inputs %s); check: max abs difference %.2e",
                                          info.description, args.output, ", ".join(spec.input_names), diff)
            return 0
        net, info = model.generator(args.direction)
        meta = {"kind": info.kind, "name": info.name, "direction": args.direction, "description": info.description}
        diff = export(net, args.format, args.output, info.in_channels, meta)
        logging.getLogger("gan").info("exported %s (%s) to %s; check: max abs difference %.2e (< %g)",
                                      info.description, args.direction, args.output, diff, TOLERANCE)
        return 0

    return run(go, args.threads)


if __name__ == "__main__":
    sys.exit(main())
