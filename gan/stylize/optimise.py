"""Neural style transfer by optimisation (Gatys et al. 2016): the output image itself is optimised so that its
VGG19 features keep the photo's content and take the painting's style.

    out = stylize(content_uint8, [style_uint8, ...], StylizeOptions(size=512))      # float HWC in [0, 1]

Objective, for the image x (content c, styles s_i with normalised weights w_i):

    L(x) = content_weight * sum_l mean((F_l(x) - F_l(c))^2)                       content layers (relu4_2)
         + style_weight   * sum_l S_l(x, s)                                         style layers (relu1_1..5_1)
         + tv_weight      * TV(x)

    S = gram:         mean((G_l(x) - sum_i w_i G_l(s_i))^2), G = F F^T / (c h w)        (Gatys et al.)
    S = wasserstein:  W2^2 between Gaussians fitted to F_l(x) and to the w-mixture of the styles' features

Coarse to fine: the long side grows by x sqrt(2) from `min_size` to `size` (the last scale is exactly the
requested size); each scale starts from the previous result, upsampled, and takes `iterations` steps of Adam
(or L-BFGS, where `iterations` counts function evaluations, line-search trials included). The targets of a
scale are computed once, not per step. With Adam the output is an exponential moving average of the
iterates (less noise than the last iterate). Colour preservation (Gatys et al. 2017):
`luminance` transfers style in luminance only and keeps the photo's chroma (YIQ); `histogram` first gives the
style images the photo's colour mean and covariance. VGG is the one extractor of gan/nn/losses.py.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from gan import GanError, ImageDecodeError
from gan.nn import losses
from gan.config import VGG_LAYERS
from gan.data.io import write_image
from gan.stylize.colour import prepare_colours, rgb_to_yiq, yiq_to_rgb
from gan.inference.precision import resolve_precision

log = logging.getLogger("gan")

# RGB <-> YIQ (NTSC): Y is luminance, I and Q the chroma.


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
    precision: str = "fp32"  # fp32 | bf16 | auto (gan.inference.precision; fp16 only for a content + style network)
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


# --------------------------------------------------------------------------------------- optimisation


class _Targets:
    """Content features and blended style statistics of one scale, computed once (no graph)."""

    def __init__(self, vgg, content: torch.Tensor, styles: list[torch.Tensor], weights: list[float],
                 opts: StylizeOptions, autocast):
        with torch.no_grad(), autocast():
            cf = vgg(content)
            self.content = {k: cf[k].float() for k in opts.content_layers}
            feats = []
            for s in styles:
                f = vgg(s)
                feats.append({k: f[k].float() for k in opts.style_layers})
        self.style: dict = {}
        for k in opts.style_layers:
            if opts.style_loss == "gram":
                self.style[k] = sum(w * losses.gram_matrix(f[k]) for w, f in zip(weights, feats))
            else:
                # The w-mixture of the styles' feature distributions: its mean and covariance.
                stats = [losses.feature_mean_cov(f[k]) for f in feats]
                mu = sum(w * m for w, (m, _) in zip(weights, stats))
                second = sum(w * (c + torch.outer(m, m)) for w, (m, c) in zip(weights, stats))
                cov = second - torch.outer(mu, mu)
                self.style[k] = (mu, cov, losses.sqrtm_psd(cov))


def _loss_terms(vgg, x: torch.Tensor, t: _Targets, opts: StylizeOptions, autocast) -> dict[str, torch.Tensor]:
    with autocast():
        feats = vgg(x)
    terms = {"content": opts.content_weight * losses.content_loss(feats, t.content)}
    if opts.style_loss == "gram":
        terms["style"] = opts.style_weight * losses.style_loss(feats, t.style)
    else:
        terms["style"] = opts.style_weight * losses.wasserstein_style_loss(feats, t.style)
    if opts.tv_weight > 0:
        terms["tv"] = opts.tv_weight * losses.total_variation(x)
    return terms


def _to_tensor(img: np.ndarray, hw: tuple[int, int], device) -> torch.Tensor:
    """float HWC [0, 1] -> (1, 3, h, w) in [-1, 1], resized (area down, bicubic up)."""
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float().to(device)
    if tuple(t.shape[-2:]) != tuple(hw):
        down = hw[0] * hw[1] < t.shape[-2] * t.shape[-1]
        t = F.interpolate(t, size=hw, mode="area") if down else F.interpolate(t, size=hw, mode="bicubic",
                                                                             align_corners=False)
    return t.clamp(0, 1) * 2 - 1


def stylize(content: np.ndarray, styles: list[np.ndarray], opts: StylizeOptions, vgg: torch.nn.Module,
            device: torch.device | str = "cpu", callback: Callable[[np.ndarray, int, int], None] | None = None,
            should_stop: Callable[[], bool] | None = None, progress: bool = True,
            history: list | None = None) -> np.ndarray:
    """content, styles: uint8 RGB (H, W, 3) -> float32 RGB (H', W', 3) in [0, 1], long side opts.size.

    `vgg` maps (N, 3, H, W) in [-1, 1] to {layer: features} (losses.VGGFeatures or a stand-in).
    `callback(image, scale_index, iteration)` receives the current (averaged) image every opts.save_every
    iterations and at the end of each scale; `should_stop()` ends early (the current average is returned).
    `history`, if given, receives one (scale, iteration, total loss) per iteration."""
    opts.check(len(styles))
    device = torch.device(device)
    weights = normalised_weights(opts.style_weights, len(styles))
    content_f, content_work, styles_f = prepare_colours(content, styles, opts.preserve_color)
    # Zero-weight styles are left out of the targets entirely (no influence, no compute).
    used = [(w, s) for w, s in zip(weights, styles_f) if w > 0]
    weights, styles_f = [w for w, _ in used], [s for _, s in used]

    autocast = resolve_precision(opts.precision, device, fp16=False).autocast
    gen = torch.Generator().manual_seed(opts.seed)
    h0, w0 = content.shape[:2]
    need = vgg_min_side(opts.content_layers + opts.style_layers)
    sizes = [s for s in scale_sizes(opts.size, opts.min_size) if min(fit_long_side(h0, w0, s)) >= need]
    if not sizes:
        raise GanError(f"--size {opts.size}: this {w0}x{h0} photo would be {min(fit_long_side(h0, w0, opts.size))} px "
                       f"on its short side, and VGG19 needs at least {need} px for the layers used: use a larger "
                       "--size")
    x = avg = None
    for si, long_side in enumerate(sizes):
        hw = fit_long_side(h0, w0, long_side)
        c = _to_tensor(content_work, hw, device)
        style_ts = [_to_tensor(s, short_side_at_least(fit_long_side(*s.shape[:2], max(16, round(
            long_side * opts.style_scale))), need), device) for s in styles_f]
        targets = _Targets(vgg, c, style_ts, weights, opts, autocast)
        if x is None:
            if opts.init == "content":
                x = c.clone()
            elif opts.init == "noise":
                x = (torch.rand(c.shape, generator=gen) * 2 - 1).to(device)
            else:
                x = _to_tensor(styles_f[0], hw, device)
        else:
            x = F.interpolate(avg, size=hw, mode="bicubic", align_corners=False).clamp(-1, 1)
        x = x.detach().requires_grad_(True)
        bar = _bar(opts.iterations, f"scale {si + 1}/{len(sizes)} {hw[1]}x{hw[0]}") if progress else None
        state = {"it": 0, "stopped": False}

        def after_iteration(loss: torch.Tensor, terms: dict) -> None:
            """Progress, history, intermediates and the stop request, once per iteration."""
            it = state["it"] = state["it"] + 1
            if history is not None:
                history.append((si, it - 1, loss.item()))
            if bar is not None:
                bar.update(1)
                if it % 10 == 1 or it == opts.iterations:
                    bar.set_postfix({k: f"{float(v.detach()):.3g}" for k, v in terms.items()}, refresh=False)
            if callback is not None and opts.save_every and it % opts.save_every == 0:
                callback(_finish(current(), content_f, opts), si, it)
            if should_stop is not None and should_stop():
                state["stopped"] = True

        if opts.optimizer == "adam":
            avg, avg_weight = torch.zeros_like(x), 0.0

            def current() -> torch.Tensor:
                return avg / avg_weight

            opt = torch.optim.Adam([x], lr=opts.lr)
            for _ in range(opts.iterations):
                opt.zero_grad(set_to_none=True)
                terms = _loss_terms(vgg, x, targets, opts, autocast)
                loss = sum(terms.values())
                loss.backward()
                opt.step()
                with torch.no_grad():
                    x.clamp_(-1, 1)  # pixels stay in range
                    # Bias-corrected EMA of the iterates (decay 0: the last iterate).
                    avg_weight = avg_weight * opts.ema + (1 - opts.ema)
                    avg.mul_(opts.ema).add_(x, alpha=1 - opts.ema)
                after_iteration(loss.detach(), terms)
                if state["stopped"]:
                    break
            result = current().detach()
        else:
            # L-BFGS runs its iterations inside one step (its line search and curvature history assume an
            # unconstrained problem: no clamping, no averaging; the result is clamped at the end).
            def current() -> torch.Tensor:
                return x.detach().clamp(-1, 1)

            opt = torch.optim.LBFGS([x], lr=1.0, max_iter=opts.iterations, max_eval=opts.iterations,
                                    tolerance_grad=0.0, tolerance_change=0.0, history_size=20,
                                    line_search_fn="strong_wolfe")

            def closure():
                if state["stopped"]:
                    raise _Stop
                opt.zero_grad(set_to_none=True)
                terms = _loss_terms(vgg, x, targets, opts, autocast)
                loss = sum(terms.values())
                loss.backward()
                after_iteration(loss.detach(), terms)
                return loss

            try:
                opt.step(closure)
            except _Stop:
                pass
            result = current()
        if bar is not None:
            bar.close()
        avg = result
        if callback is not None:
            callback(_finish(avg, content_f, opts), si, state["it"])
        if state["stopped"]:
            break
    return _finish(avg, content_f, opts)


class _Stop(Exception):
    """Raised inside the L-BFGS closure to end its step early (a stop request)."""


def _finish(x: torch.Tensor, content_f: np.ndarray, opts: StylizeOptions) -> np.ndarray:
    """(1, 3, h, w) in [-1, 1] -> float HWC [0, 1]; in luminance mode, the photo's chroma put back."""
    img = ((x.detach().float() + 1) / 2).clamp(0, 1)
    if opts.preserve_color == "luminance":
        c = _to_tensor(content_f, tuple(img.shape[-2:]), img.device) * 0.5 + 0.5
        yiq = rgb_to_yiq(c)
        y = img.mean(1, keepdim=True)  # the optimised grey image's luminance
        img = yiq_to_rgb(torch.cat([y, yiq[:, 1:]], 1)).clamp(0, 1)
    return img[0].permute(1, 2, 0).cpu().numpy()


def _bar(total: int, desc: str):
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it", dynamic_ncols=True,
                mininterval=1.0 if sys.stderr.isatty() else 30.0)


# --------------------------------------------------------------------------------------------- files


def load_vgg(opts: StylizeOptions, weights: str, device: torch.device) -> torch.nn.Module:
    """The one VGG19 extractor, built up to the deepest layer the options use."""
    return losses.VGGFeatures(opts.content_layers + opts.style_layers, weights, "--vgg-weights").to(device)


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
                        alpha: float = 1.0, device: torch.device | str = "cpu", max_pixels: int = 4_000_000,
                        progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """One forward pass of a content + style network (AdaIN): uint8 content and styles -> float HWC [0, 1] at
    long side opts.size (0: the content's own size). Style weights and colour preservation as for the
    optimisation; each style image is seen at its own size times opts.style_scale (feedforward_style_hw).
    Contents above `max_pixels` are computed in bands with whole-image statistics (gan.inference.tiling), like big images
    in test.py; `progress(fraction, what)` follows them."""
    from gan.data.io import resize_to, to_chw
    from gan.inference.engine import Engine

    if not 0 <= alpha <= 1:
        raise GanError(f"--alpha: invalid value {alpha}; expected a number in [0, 1]")
    opts.check(len(styles))
    device = torch.device(device)
    h, w = content.shape[:2]
    hw = fit_long_side(h, w, opts.size) if opts.size else (h, w)
    content_f, work, styles_f = prepare_colours(content, styles, opts.preserve_color)
    if opts.preserve_color == "luminance":  # the method sees a grey photo; its chroma comes back in _finish
        image = _to_tensor(work, hw, "cpu")[0]
    else:
        # The photo goes in as uint8 and the band runner converts it band by band: a 12-megapixel photo costs
        # no full-size float copies.
        content_f = work = None
        image = to_chw(resize_to(content, hw))
    style_ts = [_to_tensor(s, feedforward_style_hw(*s.shape[:2], opts.style_scale), device) for s in styles_f]
    precision = resolve_precision(opts.precision, device)
    with precision.autocast():
        stylizer = net.stylizer(style_ts, normalised_weights(opts.style_weights, len(styles)), alpha)
    out = Engine(stylizer, device, precision, max_pixels=max_pixels).image(image, progress)
    if content_f is not None:
        return _finish(out[None].float().clamp(-1, 1), content_f, opts)
    return out.float().clamp_(-1, 1).add_(1).div_(2).permute(1, 2, 0).numpy()  # in place: one full-size copy


def stylize_files(content_arg: str | Path, style_paths: list[str | Path], output: str | Path, opts: StylizeOptions,
                  vgg: torch.nn.Module | None, device: torch.device, fmt: str | None = None, bit_depth: int = 8,
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
            out = stylize_feedforward(content, styles, model, opts, alpha, device)
        else:
            run_opts = opts if not save_every else _with(opts, save_every=save_every)
            out = stylize(content, styles, run_opts, vgg, device, callback=save_intermediate if save_every else None,
                          progress=progress)
        write_image(out, dst, bit_depth=bit_depth)
        written.append(dst)
        log.info("[%d/%d] %s -> %s (%dx%d, %.1f s)", i + 1, len(pairs), src, dst, out.shape[1], out.shape[0],
                 time.perf_counter() - start)
    return written


def _with(opts: StylizeOptions, **changes) -> StylizeOptions:
    import dataclasses

    return dataclasses.replace(opts, **changes)
