"""A content + style network (AdaIN) run on photos: one forward pass each, through the inference engine (its
runtime policy and band policy), with the same style weights, colour preservation and sizes as stylizing by
optimisation (gan.stylize.options, gan.stylize.colour).

    out = stylize_feedforward(photo_uint8, [style_uint8], net, StylizeOptions(size=0), alpha=0.8, runtime=rt)
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from gan import GanError
from gan.inference.engine import Engine
from gan.runtime import Runtime
from gan.stylize.colour import finish, prepare_colours
from gan.stylize.options import StylizeOptions, fit_long_side, image_tensor, normalised_weights, short_side_at_least


MAX_STYLE_PIXELS = 1_000_000  # a content + style network encodes each style image whole


def feedforward_style_hw(h: int, w: int, style_scale: float) -> tuple[int, int]:
    """The size a content + style network sees a style image at: its own size times `style_scale`, whatever
    the photo's size (a painting's strokes keep their scale; a 12-megapixel photo does not blow a 96 px style
    up to 4000 px), at most MAX_STYLE_PIXELS (larger ones are scaled down to that, keeping the aspect), at
    least 16 px on the short side (what the encoder takes)."""
    long_side = max(h, w) * style_scale
    area = h * w * style_scale**2
    if area > MAX_STYLE_PIXELS:
        long_side *= math.sqrt(MAX_STYLE_PIXELS / area)
    return short_side_at_least(fit_long_side(h, w, max(1, math.floor(long_side))), 16)


@torch.no_grad()
def stylize_feedforward(content: np.ndarray, styles: list[np.ndarray], net: torch.nn.Module, opts: StylizeOptions,
                        alpha: float = 1.0, runtime: Runtime | torch.device | str = "cpu", max_pixels: int = 4_000_000,
                        progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """One forward pass of a content + style network (AdaIN): uint8 content and styles -> float HWC [0, 1] at
    long side opts.size (0: the content's own size). Style weights and colour preservation as for the
    optimisation; each style image is seen at its own size times opts.style_scale (feedforward_style_hw).
    Contents above `max_pixels` are computed in bands with whole-image statistics (gan.inference.tiling), like big images
    in test.py; `progress(fraction, what)` follows them."""
    from gan.data.io import resize_to, to_chw

    if not 0 <= alpha <= 1:
        raise GanError(f"--alpha: invalid value {alpha}; expected a number in [0, 1]")
    opts.check(len(styles))
    runtime = Runtime.of(runtime)
    device = runtime.device
    h, w = content.shape[:2]
    hw = fit_long_side(h, w, opts.size) if opts.size else (h, w)
    content_f, work, styles_f = prepare_colours(content, styles, opts.preserve_color)
    if opts.preserve_color == "luminance":  # the method sees a grey photo; its chroma comes back in _finish
        image = image_tensor(work, hw, "cpu")[0]
    else:
        # The photo goes in as uint8 and the band runner converts it band by band: a 12-megapixel photo costs
        # no full-size float copies.
        content_f = work = None
        image = to_chw(resize_to(content, hw))
    style_ts = [image_tensor(s, feedforward_style_hw(*s.shape[:2], opts.style_scale), device) for s in styles_f]
    with runtime.autocast():
        stylizer = net.stylizer(style_ts, normalised_weights(opts.style_weights, len(styles)), alpha)
    out = Engine(stylizer, runtime, max_pixels=max_pixels).image(image, progress)
    if content_f is not None:
        return finish(out[None].float().clamp(-1, 1), content_f, opts)
    return out.float().clamp_(-1, 1).add_(1).div_(2).permute(1, 2, 0).numpy()  # in place: one full-size copy
