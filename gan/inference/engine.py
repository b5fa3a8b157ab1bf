"""The one inference engine: folders, videos, evaluation, the web app and feed-forward stylization translate
through it.

    engine = Engine(net, device, precision="auto", tile=0, max_pixels=4_000_000)
    outs = engine.batch([uint8_chw, ...])          # same-size images, one pass
    out = engine.image(uint8_chw, as_uint8=True)   # any size: one pass, or bands when the band policy says so

It owns what every path must agree on: the device, the precision (gan.inference.precision, resolved once; exported
models run in fp32), the memory layout (channels-last inputs on CUDA) and the band policy (an image above
`tile` x `tile` pixels, or above `max_pixels` when no tile is given, is computed in bands with whole-image
norm statistics by gan.inference.tiling, or in blended tiles for a net the band runner cannot read).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from gan.inference import tiling
from gan.data.io import normalize_uint8, to_uint8
from gan.inference.precision import Precision, resolve_precision

AUTO_TILE = 512  # bands of about this many pixels squared for images above max_pixels


def net_device(net) -> torch.device:
    """Where a module's parameters live (CPU for parameterless or exported nets)."""
    params = net.parameters() if isinstance(net, nn.Module) else iter(())
    return next((p.device for p in params), torch.device("cpu"))


class Engine:
    def __init__(self, net, device: torch.device | str | None = None, precision: str | Precision = "fp32",
                 tile: int = 0, tile_overlap: int = 32, max_pixels: int = 4_000_000, cache_mb: int = 256):
        self.net = net
        self.device = torch.device(device) if device is not None else net_device(net)
        if not getattr(net, "supports_autocast", True):  # an exported model computes in its own precision
            precision = "fp32"
        self.precision = resolve_precision(precision, self.device)
        self.tile, self.tile_overlap, self.max_pixels, self.cache_mb = tile, tile_overlap, max_pixels, cache_mb
        self.channels_last = self.device.type == "cuda"

    @classmethod
    def for_options(cls, net, opts, device: torch.device | None = None) -> "Engine":
        """From anything with precision, tile, tile_overlap, max_pixels and cache_mb (TranslateOptions)."""
        return cls(net, device, opts.precision, opts.tile, opts.tile_overlap, opts.max_pixels, opts.cache_mb)

    def autocast(self):
        return self.precision.autocast()

    # ----------------------------------------------------------------------------------- band policy

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
        plan = tiling.plan_summary(self.net, h, w, tile, float32=not self.precision.amp)
        if plan is not None:
            passes, rows = plan
            return (f"{head} computed in bands of about {rows} rows, {passes} passes, with whole-image norm "
                    f"statistics")
        n = len(tiling._tile_starts(h, tile, self.tile_overlap)) * len(tiling._tile_starts(w, tile, self.tile_overlap))
        return (f"{head} {n} overlapping tiles of {tile} px, each with its own norm statistics ({tiling.why_not(self.net)})")

    # ----------------------------------------------------------------------------------- translation

    @torch.no_grad()
    def batch(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Same-size (C, H, W) images, uint8 or float in [-1, 1] -> their translations (float, on the CPU), in
        one pass (big images: `image`)."""
        x = torch.stack(images).to(self.device, non_blocking=True)
        x = normalize_uint8(x) if x.dtype == torch.uint8 else x
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            y = self.net(x)
        return list(y.float().cpu())

    @torch.no_grad()
    def image(self, image: torch.Tensor, progress: Callable[[float, str], None] | None = None,
              as_uint8: bool = False) -> torch.Tensor | np.ndarray:
        """One (C, H, W) image, uint8 or float in [-1, 1], of any size -> its translation (float (C, H, W) on
        the CPU; with as_uint8, uint8 (H, W, C), which big images fill band by band): in one pass, or in
        bands/tiles when the band policy says so. `progress(fraction, what)` for big images."""
        h, w = image.shape[-2:]
        tile = self.tile_for(h, w)
        if not tile:
            y = self.batch([image])[0]
        elif tiling.runs_in_bands(self.net):
            bands = tiling.BandOptions(tile=tile, cache_mb=self.cache_mb, store_dtype=self.precision.store_dtype)
            if as_uint8:
                out = np.empty((h, w, tiling.program_channels(self.net)), np.uint8)
                return tiling.translate_large(self.net, image[None], bands, self.autocast, self.device, progress,
                                              out=out)
            y = tiling.translate_large(self.net, image[None], bands, self.autocast, self.device, progress)[0]
        else:
            y = tiling.translate_tiles(self.net, image[None], tile, self.tile_overlap, self.autocast, self.device,
                                       progress)[0]
        return to_uint8(y, inplace=True) if as_uint8 else y
