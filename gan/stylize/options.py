"""What stylizing takes, for both ways of doing it (optimisation, gan.stylize.optimise, and a content + style
network, gan.inference.feedforward): the options and their checks, the style weights, and the sizes images are
seen at."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from gan import GanError
from gan.config.schema import VGG_LAYERS


@dataclass(frozen=True)
class StylizeOptions:
    size: int = 512  # long side of the output, px
    min_size: int = 128  # long side of the first scale (scales grow x sqrt(2) up to `size`)
    iterations: int = 200  # per scale
    content_weight: float = 1.0
    style_weight: float = 1e6
    tv_weight: float = 0.0
    style_weights: tuple[float, ...] = ()  # one per style image; normalised to sum 1; () = equal
    content_layers: tuple[str, ...] = ("relu4_2",)
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    style_loss: str = "gram"  # gram | wasserstein
    style_scale: float = 1.0  # style images' long side relative to the current scale's
    optimizer: str = "adam"  # adam | lbfgs
    lr: float = 0.02  # Adam step on [-1, 1] pixels
    ema: float = 0.95  # decay of the iterate average (0 = the last iterate)
    init: str = "content"  # content | noise | style
    seed: int = 0
    preserve_color: str = "none"  # none | luminance | histogram
    save_every: int = 0  # call `callback` with the current image every N iterations (0 = at scale ends)
    extra: dict = field(default_factory=dict)

    def check(self, n_styles: int) -> None:
        """GanError on impossible values, naming the option."""
        def bad(name, value, allowed):
            raise GanError(f"--{name.replace('_', '-')}: invalid value {value!r}; expected {allowed}")

        if self.size < 16 and self.size != 0:
            bad("size", self.size, "at least 16 px (0: the photo's own size, with --model)")
        if self.size > 16384:
            bad("size", self.size, "at most 16384 px")
        if not 16 <= self.min_size:
            bad("min_size", self.min_size, "at least 16 px")
        if self.iterations < 1:
            bad("iterations", self.iterations, "at least 1")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, name) < 0:
                bad(name, getattr(self, name), "a number >= 0")
        if self.style_weights:
            if len(self.style_weights) != n_styles:
                raise GanError(f"--style-weights: {len(self.style_weights)} weight(s) for {n_styles} style "
                               "image(s); give one weight per --style image")
            if any(w < 0 for w in self.style_weights) or sum(self.style_weights) <= 0:
                bad("style_weights", list(self.style_weights), "numbers >= 0 with a positive sum")
        for name, layers in (("content_layers", self.content_layers), ("style_layers", self.style_layers)):
            for layer in layers:
                if layer not in VGG_LAYERS:
                    bad(name, layer, "VGG19 layers such as " + ", ".join(VGG_LAYERS[::4]))
        if not self.style_layers:
            bad("style_layers", [], "at least one layer")
        if self.style_loss not in ("gram", "wasserstein"):
            bad("style_loss", self.style_loss, "gram or wasserstein")
        if self.optimizer not in ("adam", "lbfgs"):
            bad("optimizer", self.optimizer, "adam or lbfgs")
        if self.init not in ("content", "noise", "style"):
            bad("init", self.init, "content, noise or style")
        if self.preserve_color not in ("none", "luminance", "histogram"):
            bad("preserve_color", self.preserve_color, "none, luminance or histogram")
        if not 0 <= self.ema < 1:
            bad("ema", self.ema, "a number in [0, 1)")
        if not 0.05 <= self.style_scale <= 8:
            bad("style_scale", self.style_scale, "a number in [0.05, 8]")
        if self.lr <= 0:
            bad("lr", self.lr, "a number > 0")


def normalised_weights(weights: tuple[float, ...], n: int) -> list[float]:
    """One weight per style, summing to 1 (equal when none are given)."""
    w = list(weights) if weights else [1.0] * n
    total = sum(w)
    return [x / total for x in w]


def scale_sizes(size: int, min_size: int) -> list[int]:
    """Long sides of the scales: min_size * sqrt(2)^k below `size`, then exactly `size`."""
    sizes, s = [], float(min(min_size, size))
    while s < size / math.sqrt(2) * 1.0001:
        sizes.append(int(round(s)))
        s *= math.sqrt(2)
    return sizes + [size]


def fit_long_side(h: int, w: int, long_side: int) -> tuple[int, int]:
    s = long_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def short_side_at_least(hw: tuple[int, int], need: int) -> tuple[int, int]:
    """(h, w) scaled up, keeping the aspect, so that its short side is at least `need`."""
    h, w = hw
    if min(h, w) >= need:
        return h, w
    s = need / min(h, w)
    return max(need, round(h * s)), max(need, round(w * s))


def vgg_min_side(layers: tuple[str, ...]) -> int:
    """The smallest short side VGG19 takes for these layers: relu{k}_i comes after k-1 halving max-pools."""
    return 2 ** max(int(layer[4]) - 1 for layer in layers)


def image_tensor(img: np.ndarray, hw: tuple[int, int], device) -> torch.Tensor:
    """float HWC [0, 1] -> (1, 3, h, w) in [-1, 1], resized (area down, bicubic up)."""
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float().to(device)
    if tuple(t.shape[-2:]) != tuple(hw):
        down = hw[0] * hw[1] < t.shape[-2] * t.shape[-1]
        t = F.interpolate(t, size=hw, mode="area") if down else F.interpolate(t, size=hw, mode="bicubic",
                                                                             align_corners=False)
    return t.clamp(0, 1) * 2 - 1
