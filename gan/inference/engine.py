"""The one inference engine: folders, videos, evaluation, the web app and feed-forward stylization translate
through it.

    engine = Engine(net, Runtime.resolve("auto", "auto"), tile=0, max_pixels=4_000_000)
    outs = engine.batch([uint8_chw, ...])          # same-size images, one pass
    out = engine.image(uint8_chw, as_uint8=True)   # any size: one pass, or bands when the band policy says so

It owns what every path must agree on, decided once when it is built: the net prepared for the runtime policy
(gan.runtime: device, precision, layout; an exported model runs in fp32 as it is, whatever the entry point
asked), the band policy (an image above `tile` x `tile` pixels, or above `max_pixels` when no tile is given,
is computed in bands with whole-image norm statistics by the net's one gan.inference.tiling.BandPlan, or in
blended tiles for a net the band runner cannot read) and the strength (`apply_strength`: 0 = the input
exactly, 1 = the model's output exactly, above 1 exaggerates).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from gan import GanError
from gan.inference import tiling
from gan.data.io import normalize_uint8, to_uint8
from gan.runtime import Runtime, is_exported

AUTO_TILE = 512  # bands of about this many pixels squared for images above max_pixels
# Peak memory per pixel of one untiled fp32 pass of the paper's generator (ngf 64, 9 blocks): 11.1 GB for a
# 4000x3000 image (docs/benchmarks.md); what an export needs to go in one pass, roughly
EXPORT_BYTES_PER_PIXEL = 925
MAX_STRENGTH = 4.0


def check_strength(strength: float) -> float:
    """--strength as a float in [0, MAX_STRENGTH], or a GanError saying what it takes."""
    try:
        s = float(strength)
    except (TypeError, ValueError):
        s = float("nan")
    if not math.isfinite(s) or not 0 <= s <= MAX_STRENGTH:
        raise GanError(f"--strength: invalid value {strength!r}; expected a number from 0 (the input) through 1 "
                       f"(the model's output) to {MAX_STRENGTH:g} (exaggerated)")
    return s


def apply_strength(x: torch.Tensor, y: torch.Tensor, strength: float) -> torch.Tensor:
    """The model's change to the input scaled by `strength`: x + s (y - x) in [-1, 1] (x the input, y the output,
    both (..., C, H, W) floats in [-1, 1]); s = 1 returns y itself, s = 0 the input exactly. For a generator with
    a skip path (G(x) = x + R(x), or C(x) + R(x) with the colour path C) this is exactly scaling its residual
    branch (and the colour path's change); for the others it is a blend in pixel space."""
    if strength == 1:
        return y
    if x.shape[-3] != y.shape[-3]:
        raise GanError(f"--strength {strength:g} needs a model whose output has its input's channels (this one "
                       f"maps {x.shape[-3]} channel(s) to {y.shape[-3]}); use --strength 1")
    x = x.to(y.device, y.dtype)
    if strength == 0:
        return x.clone()
    return torch.lerp(x, y, strength).clamp_(-1, 1)


def net_device(net) -> torch.device:
    """Where a module's parameters live (CPU for parameterless or exported nets)."""
    params = net.parameters() if isinstance(net, nn.Module) else iter(())
    return next((p.device for p in params), torch.device("cpu"))


class Engine:
    def __init__(self, net, runtime: Runtime | None = None, tile: int = 0, tile_overlap: int = 32,
                 max_pixels: int = 4_000_000, cache_mb: int = 256, strength: float = 1.0):
        """`runtime`: the entry point's resolved policy (default: fp32 where the net is)."""
        self.strength = check_strength(strength)
        self.net, self.runtime = Runtime.of(runtime if runtime is not None else net_device(net)).prepare(net)
        self.device, self.precision = self.runtime.device, self.runtime.precision
        self.tile, self.tile_overlap, self.max_pixels, self.cache_mb = tile, tile_overlap, max_pixels, cache_mb
        self._bands: tiling.BandPlan | None = None

    @classmethod
    def for_options(cls, net, opts, runtime: Runtime | None = None) -> "Engine":
        """From anything with tile, tile_overlap, max_pixels, cache_mb and strength (TranslateOptions)."""
        return cls(net, runtime, opts.tile, opts.tile_overlap, opts.max_pixels, opts.cache_mb, opts.strength)

    def autocast(self):
        return self.runtime.autocast()

    # ----------------------------------------------------------------------------------- band policy

    @property
    def bands(self) -> tiling.BandPlan:
        """The net's band plan, worked out the first time a big image comes (small images never need it)."""
        if self._bands is None:
            self._bands = tiling.BandPlan(self.net)
        return self._bands

    def tile_for(self, h: int, w: int) -> int:
        """The band/tile size for an h x w image, or 0 when it is translated in one pass."""
        if self.tile:
            return self.tile if h * w > self.tile * self.tile else 0
        return AUTO_TILE if h * w > self.max_pixels else 0

    def describe(self, h: int, w: int) -> str:
        """One line saying how a big image is translated."""
        tile = self.tile_for(h, w)
        why = f"above --tile {self.tile}" if self.tile else f"above --max-megapixels {self.max_pixels / 1e6:g}"
        head = f"{w}x{h} ({h * w / 1e6:.3g} MP), {why}:"
        if self.bands.runs_in_bands:
            passes, rows = self.bands.summary(h, w, tile, self.precision)
            return (f"{head} computed in bands of about {rows} rows, {passes} passes, with whole-image norm "
                    f"statistics")
        n = len(tiling._tile_starts(h, tile, self.tile_overlap)) * len(tiling._tile_starts(w, tile, self.tile_overlap))
        line = f"{head} {n} overlapping tiles of {tile} px, each with its own norm statistics ({self.bands.why_not})"
        if is_exported(self.net) and not self.tile:
            # the setting that works with the export itself: one pass over the whole image, if memory allows
            mp = math.ceil(h * w / 1e6)
            line += (f"; or, for one pass with whole-image statistics, --max-megapixels {mp} (about "
                     f"{h * w * EXPORT_BYTES_PER_PIXEL / 2**30:.0f} GB of memory for a paper-size generator)")
        return line

    # ----------------------------------------------------------------------------------- translation

    @torch.no_grad()
    def batch(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Same-size (C, H, W) images, uint8 or float in [-1, 1] -> their translations at the engine's strength
        (float, on the CPU), in one pass (big images: `image`)."""
        y, x = self.runtime.run(self.net, torch.stack(images))
        return list(apply_strength(x, y.float(), self.strength).cpu())

    @torch.no_grad()
    def image(self, image: torch.Tensor, progress: Callable[[float, str], None] | None = None,
              as_uint8: bool = False) -> torch.Tensor | np.ndarray:
        """One (C, H, W) image, uint8 or float in [-1, 1], of any size -> its translation (float (C, H, W) on
        the CPU; with as_uint8, uint8 (H, W, C), which big images fill band by band): in one pass, or in
        bands/tiles when the band policy says so. `progress(fraction, what)` for big images."""
        h, w = image.shape[-2:]
        tile = self.tile_for(h, w)
        if not tile:
            return self._finish(self.batch([image])[0], as_uint8)
        if self.bands.runs_in_bands:
            opts = tiling.BandOptions(tile=tile, cache_mb=self.cache_mb)
            out = np.empty((h, w, self.bands.channels), np.uint8) if as_uint8 else None
            finish = None if self.strength == 1 else (
                lambda a, b, y: apply_strength(_as_float(image[..., a:b, :])[None], y, self.strength))
            y = self.bands.run(image[None], opts, self.precision, self.device, progress, out=out, finish=finish)
            return y if as_uint8 else y[0]
        y = tiling.translate_tiles(self.net, image[None], tile, self.tile_overlap, self.precision, self.device,
                                   progress)[0]
        return self._finish(apply_strength(_as_float(image), y.float(), self.strength), as_uint8)

    def to_uint8(self, image: torch.Tensor) -> np.ndarray:
        """One (C, H, W) uint8 image -> its translation as uint8 (H, W, C): what evaluation and the app ask."""
        return self.image(image, as_uint8=True)

    @staticmethod
    def _finish(y: torch.Tensor, as_uint8: bool):
        return to_uint8(y, inplace=True) if as_uint8 else y


def _as_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 or float [-1, 1] (C, H, W) -> float [-1, 1] on the CPU."""
    return normalize_uint8(image.cpu()) if image.dtype == torch.uint8 else image.float().cpu()
