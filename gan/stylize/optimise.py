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
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from gan import GanError
from gan.nn import losses
from gan.runtime import Runtime
from gan.stylize.colour import finish, prepare_colours
from gan.stylize.options import (StylizeOptions, fit_long_side, image_tensor, normalised_weights, scale_sizes,
                                 short_side_at_least, vgg_min_side)

log = logging.getLogger("gan")


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


def stylize(content: np.ndarray, styles: list[np.ndarray], opts: StylizeOptions, vgg: torch.nn.Module,
            runtime: Runtime | torch.device | str = "cpu", callback: Callable[[np.ndarray, int, int], None] | None = None,
            should_stop: Callable[[], bool] | None = None, progress: bool = True,
            history: list | None = None) -> np.ndarray:
    """content, styles: uint8 RGB (H, W, 3) -> float32 RGB (H', W', 3) in [0, 1], long side opts.size.

    `vgg` maps (N, 3, H, W) in [-1, 1] to {layer: features} (losses.VGGFeatures or a stand-in), on
    `runtime`'s device and under its precision (fp16 is optimised in fp32: Runtime.for_pixels).
    `callback(image, scale_index, iteration)` receives the current (averaged) image every opts.save_every
    iterations and at the end of each scale; `should_stop()` ends early (the current average is returned).
    `history`, if given, receives one (scale, iteration, total loss) per iteration."""
    opts.check(len(styles))
    # The entry point's policy for optimising pixels (no fp16: gan.runtime); a device alone means fp32 there.
    runtime = Runtime.of(runtime).for_pixels()
    device = runtime.device
    weights = normalised_weights(opts.style_weights, len(styles))
    content_f, content_work, styles_f = prepare_colours(content, styles, opts.preserve_color)
    # Zero-weight styles are left out of the targets entirely (no influence, no compute).
    used = [(w, s) for w, s in zip(weights, styles_f) if w > 0]
    weights, styles_f = [w for w, _ in used], [s for _, s in used]

    autocast = runtime.autocast
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
        c = image_tensor(content_work, hw, device)
        style_ts = [image_tensor(s, short_side_at_least(fit_long_side(*s.shape[:2], max(16, round(
            long_side * opts.style_scale))), need), device) for s in styles_f]
        targets = _Targets(vgg, c, style_ts, weights, opts, autocast)
        if x is None:
            if opts.init == "content":
                x = c.clone()
            elif opts.init == "noise":
                x = (torch.rand(c.shape, generator=gen) * 2 - 1).to(device)
            else:
                x = image_tensor(styles_f[0], hw, device)
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
                callback(finish(current(), content_f, opts), si, it)
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
            callback(finish(avg, content_f, opts), si, state["it"])
        if state["stopped"]:
            break
    return finish(avg, content_f, opts)


class _Stop(Exception):
    """Raised inside the L-BFGS closure to end its step early (a stop request)."""


def _bar(total: int, desc: str):
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it", dynamic_ncols=True,
                mininterval=1.0 if sys.stderr.isatty() else 30.0)


def load_vgg(opts: StylizeOptions, weights: str, device: torch.device) -> torch.nn.Module:
    """The one VGG19 extractor, built up to the deepest layer the options use."""
    return losses.VGGFeatures(opts.content_layers + opts.style_layers, weights, "--vgg-weights").to(device)
