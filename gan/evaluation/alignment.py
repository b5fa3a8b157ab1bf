"""Where the generator's loss terms push its output, against where the truth is.

For a photo batch x with known targets T(x) (a benchmark's map) and the generator's output y = G(x), each loss
term L_t of the generator update that depends on y gives every output pixel an update direction, the negative
gradient -dL_t/dy. The measure compares it with the way to the truth, T(x) - y:

    cos_t   = <-dL_t/dy, T(x) - y> / (|dL_t/dy| |T(x) - y|)          over all pixels and channels
    total   = sum_t -dL_t/dy                                         (the terms are already weighted)
    right   = share of pixels p where <total_p, T(x)_p - y_p> > 0    (dot over the channels of p)

cos_t near 1: the term tells the generator where T is; near 0: its push is unrelated to the truth (noise, or a
direction the truth does not need); below 0: it pulls the output away from T (e.g. a cycle term holding the
photo). A term that gives no gradient at all scores 0, and so does an output that already equals its target
(nothing to point at). `right` is the share of the image whose next step, taken alone, would move toward T.
"""

from __future__ import annotations

import torch


def gradient_alignment(terms: dict[str, torch.Tensor], out: torch.Tensor, target: torch.Tensor,
                       eps: float = 1e-12) -> dict[str, float]:
    """`terms`: {name: 0-dim loss} computed from `out` (N, C, H, W, requires grad); `target`: T(x), same shape.
    -> {"cos_<name>": ..., "cos_total": ..., "right": ...} (floats; see the module docstring)."""
    way = (target.detach().float() - out.detach().float())
    way_norm = way.norm()
    pushes = {}
    for name, loss in terms.items():
        grad, = torch.autograd.grad(loss, out, retain_graph=True, allow_unused=True)
        pushes[name] = torch.zeros_like(way) if grad is None else -grad.detach().float()
    total = sum(pushes.values()) if pushes else torch.zeros_like(way)

    def cos(push: torch.Tensor) -> float:
        denom = push.norm() * way_norm
        return float((push * way).sum() / denom) if denom > eps else 0.0

    result = {f"cos_{name}": cos(push) for name, push in pushes.items()}
    result["cos_total"] = cos(total)
    per_pixel = (total * way).sum(1)  # (N, H, W)
    result["right"] = float((per_pixel > 0).float().mean()) if way_norm > eps else 0.0
    return result


class AlignmentProbe:
    """A trainer probe (gan.training.trainer.Trainer(probes=...)): at every log step, the alignment of the AtoB
    generator's terms on held-out photos whose targets are known, logged as `align_cos_<term>`, `align_cos_total`
    and `align_right`. `paintings`: real images of domain B (training ones: never the photos' own targets) for
    the terms that compare with real images. The nets are put in eval mode for the measurement (no augmentation,
    no dropout) and back; nothing is updated."""

    def __init__(self, photos: torch.Tensor, targets: torch.Tensor, paintings: torch.Tensor):
        self.photos, self.targets, self.paintings = photos, targets, paintings

    def __call__(self, trainer) -> dict[str, float]:
        model = trainer.model
        net = trainer.nets[model.generators["AtoB"]]
        modes = {name: n.training for name, n in trainer.nets.items()}
        for n in trainer.nets.values():
            n.eval()
        try:
            dev = trainer.device
            x, t, y = (v.to(dev) for v in (self.photos, self.targets, self.paintings))
            with torch.no_grad():
                out = net(x)
            out = out.detach().float().requires_grad_(True)
            with torch.enable_grad():
                measured = gradient_alignment(model.output_terms(x, out, y), out, t)
        finally:
            for name, n in trainer.nets.items():
                n.train(modes[name])
        return {f"align_{k}": round(v, 5) for k, v in measured.items()}
