"""Stylize a photo or a folder of photos with the same styles: by optimisation (gan.stylize.optimise) or with a
content + style network (gan.inference.feedforward); what stylize.py runs."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from gan import GanError, ImageDecodeError
from gan.data.io import write_image
from gan.inference.feedforward import stylize_feedforward
from gan.runtime import Runtime
from gan.stylize.optimise import stylize
from gan.stylize.options import StylizeOptions

log = logging.getLogger("gan")


def stylize_files(content_arg: str | Path, style_paths: list[str | Path], output: str | Path, opts: StylizeOptions,
                  vgg: torch.nn.Module | None, runtime: Runtime, fmt: str | None = None, bit_depth: int = 8,
                  overwrite: bool = False, save_every: int = 0, progress: bool = True,
                  model: torch.nn.Module | None = None, alpha: float = 1.0) -> list[Path]:
    """Stylize a content image or every image of a folder with the same styles: by optimisation through
    `vgg`, or with `model` (an AdaIN network) in one forward pass each. Everything is checked before the first
    image starts (styles decode, outputs free unless `overwrite`); unreadable content images in a folder are
    skipped with a warning. Returns the files written."""
    from gan.data.io import DEEP_FORMATS, load_image, output_format, plan_outputs

    content_arg, output = Path(content_arg), Path(output)
    if not content_arg.exists():
        raise GanError(f"--content: not found: {content_arg}")
    if not style_paths:
        raise GanError("--style: give at least one style image")
    styles = []
    for p in style_paths:
        if not Path(p).is_file():
            raise GanError(f"--style: not found: {p}")
        try:
            styles.append(load_image(p))
        except ImageDecodeError as e:
            raise GanError(f"--style: {e}") from None
    opts.check(len(styles))
    if model is not None and not 0 <= alpha <= 1:
        raise GanError(f"--alpha: invalid value {alpha}; expected a number in [0, 1]")
    if bit_depth not in (8, 16):
        raise GanError(f"--bit-depth must be 8 or 16, got {bit_depth}")
    pairs = plan_outputs(content_arg, output, fmt or "png", to_file=True, what="--content")
    contents = [src for src, _ in pairs]
    for _, dst in pairs:
        if bit_depth == 16 and output_format(dst) not in DEEP_FORMATS:
            raise GanError(f"--output {dst}: 16-bit output needs PNG or TIFF (a .png/.tif file, or --format png "
                           "or tiff for a folder)")
    existing = [dst for _, dst in pairs if dst.exists()]
    if existing and not overwrite:
        shown = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise GanError(f"{len(existing)} output file(s) exist already ({shown}); nothing was written. "
                       "Pass --overwrite to replace them.")
    if len(contents) == 1 and content_arg.is_file():
        load_image(contents[0])  # an unreadable single content image is an error, not a skip
    written = []
    for i, (src, dst) in enumerate(pairs):
        try:
            content = load_image(src)
        except ImageDecodeError as e:
            log.warning("skipping unreadable image %s", e)
            continue
        start = time.perf_counter()

        def save_intermediate(img, scale, it, dst=dst):
            if save_every:
                write_image(img, dst.with_name(f"{dst.stem}_scale{scale + 1}_it{it:05d}{dst.suffix}"),
                            bit_depth=bit_depth)

        if model is not None:
            out = stylize_feedforward(content, styles, model, opts, alpha, runtime)
        else:
            run_opts = opts if not save_every else _with(opts, save_every=save_every)
            out = stylize(content, styles, run_opts, vgg, runtime, callback=save_intermediate if save_every else None,
                          progress=progress)
        write_image(out, dst, bit_depth=bit_depth)
        written.append(dst)
        log.info("[%d/%d] %s -> %s (%dx%d, %.1f s)", i + 1, len(pairs), src, dst, out.shape[1], out.shape[0],
                 time.perf_counter() - start)
    return written


def _with(opts: StylizeOptions, **changes) -> StylizeOptions:
    import dataclasses

    return dataclasses.replace(opts, **changes)
