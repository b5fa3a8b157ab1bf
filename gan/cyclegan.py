"""CycleGAN (Zhu et al. 2017): the four networks and the loss arithmetic, nothing else.

Objective, with a in domain A (photos), b in domain B (paintings):

    L_G = L_adv(g_ab, d_b) + L_adv(g_ba, d_a)
        + lambda_cycle * (|g_ba(g_ab(a)) - a|_1 + |g_ab(g_ba(b)) - b|_1)                    cycle
        + lambda_identity * lambda_cycle * (|g_ab(b) - b|_1 + |g_ba(a) - a|_1)             identity
        + lambda_content * (C(g_ab(a), a) + C(g_ba(b), b))                 VGG content (hybrid mode)
        + lambda_style * (S(g_ab(a), style_b) + S(g_ba(b), a))               VGG Gram style (hybrid)
    L_D = 0.5 * (l(d_a(a), real) + l(d_a(pool(g_ba(b))), fake)) + the same for d_b with b and g_ab(a)

style_b is the real b batch, or fixed style images when `loss.vgg.style_images` is set.

Paper / reference code / here:  G = G_A = g_ab,  F = G_B = g_ba,  D_Y = D_A = d_b,  D_X = D_B = d_a.
(Here each discriminator is named after the domain it judges.) The module owns no optimizer, no pool and no
device logic; the trainer freezes d_a/d_b around the generator step.

Each update calls `generators` (both G nets, every image of the step) and `discriminators` exactly once, so
the trainer can wrap those two in DistributedDataParallel (one forward per backward, every parameter used)
or torch.compile. The generator step's adversarial terms call the plain d_a/d_b: they are frozen then, and
no gradient of theirs needs averaging.
"""

from __future__ import annotations

import torch
from torch import nn

from gan import losses
from gan.config import Config, LossConfig
from gan.networks import build_discriminator, build_generator


class GeneratorPair(nn.Module):
    """Runs g_ab and g_ba on everything one generator step needs, in one call."""

    def __init__(self, g_ab: nn.Module, g_ba: nn.Module):
        super().__init__()
        self.g_ab, self.g_ba = g_ab, g_ba

    def forward(self, real_a: torch.Tensor, real_b: torch.Tensor, identity: bool) -> dict[str, torch.Tensor]:
        fake_b = self.g_ab(real_a)
        fake_a = self.g_ba(real_b)
        out = {"fake_b": fake_b, "rec_a": self.g_ba(fake_b), "fake_a": fake_a, "rec_b": self.g_ab(fake_a)}
        if identity:
            out["idt_a"] = self.g_ba(real_a)  # g_ba fed a real A should change nothing
            out["idt_b"] = self.g_ab(real_b)
        return out


class DiscriminatorPair(nn.Module):
    """d_a on (real_a, fake_a) and d_b on (real_b, fake_b), in one call."""

    def __init__(self, d_a: nn.Module, d_b: nn.Module):
        super().__init__()
        self.d_a, self.d_b = d_a, d_b

    def forward(self, real_a, real_b, fake_a, fake_b) -> tuple[torch.Tensor, ...]:
        return self.d_a(real_a), self.d_a(fake_a), self.d_b(real_b), self.d_b(fake_b)


class CycleGAN(nn.Module):
    def __init__(self, g_ab: nn.Module, g_ba: nn.Module, d_a: nn.Module, d_b: nn.Module, loss: LossConfig,
                 vgg: losses.VGGFeatures | None = None, style_images_b: torch.Tensor | None = None):
        super().__init__()
        self.g_ab, self.g_ba, self.d_a, self.d_b = g_ab, g_ba, d_a, d_b
        # Call targets of the two updates; the trainer may replace them by DDP / compiled wrappers.
        self.generators: nn.Module = GeneratorPair(g_ab, g_ba)
        self.discriminators: nn.Module = DiscriminatorPair(d_a, d_b)
        self.loss_cfg = loss
        # A frozen submodule so .to(device) moves it; checkpoints store only the four nets.
        self.vgg = vgg
        if (loss.lambda_content > 0 or loss.lambda_style > 0) and vgg is None:
            raise ValueError("lambda_content/lambda_style > 0 need a VGGFeatures module")
        style_grams = {}
        if style_images_b is not None and loss.lambda_style > 0:
            with torch.no_grad():
                feats = vgg(style_images_b)
                style_grams = {k: losses.gram_matrix(feats[k]).mean(0, keepdim=True) for k in loss.vgg.style_layers}
        for k, g in style_grams.items():
            self.register_buffer(f"style_gram_{k}", g, persistent=False)
        self._fixed_style = bool(style_grams)

    def translate(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        if direction == "AtoB":
            return self.g_ab(x)
        if direction == "BtoA":
            return self.g_ba(x)
        raise ValueError(f"direction must be AtoB or BtoA, got {direction!r}")

    def generator_loss(self, real_a: torch.Tensor, real_b: torch.Tensor
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """-> (L_G, weighted terms that sum to L_G, images {fake_b, rec_a, fake_a, rec_b} still attached)."""
        c = self.loss_cfg
        mode = c.gan_mode
        images = self.generators(real_a, real_b, c.lambda_identity > 0)
        fake_b, rec_a, fake_a, rec_b = images["fake_b"], images["rec_a"], images["fake_a"], images["rec_b"]
        terms = {
            "adv_ab": losses.generator_adv_loss(self.d_b(fake_b), mode),
            "adv_ba": losses.generator_adv_loss(self.d_a(fake_a), mode),
            "cycle_a": c.lambda_cycle * losses.cycle_loss(rec_a, real_a),
            "cycle_b": c.lambda_cycle * losses.cycle_loss(rec_b, real_b),
        }
        if c.lambda_identity > 0:
            w = c.lambda_identity * c.lambda_cycle
            terms["idt_a"] = w * losses.identity_loss(images.pop("idt_a"), real_a)
            terms["idt_b"] = w * losses.identity_loss(images.pop("idt_b"), real_b)
        if c.lambda_content > 0 or c.lambda_style > 0:
            terms.update(self._vgg_terms(real_a, real_b, fake_a, fake_b))
        total = sum(terms.values())
        return total, terms, images

    def _vgg_terms(self, real_a, real_b, fake_a, fake_b) -> dict[str, torch.Tensor]:
        c = self.loss_cfg
        feat_real_a, feat_real_b = self.vgg(real_a), self.vgg(real_b)
        feat_fake_b, feat_fake_a = self.vgg(fake_b), self.vgg(fake_a)
        terms = {}
        if c.lambda_content > 0:
            layers = c.vgg.content_layers
            terms["content_ab"] = c.lambda_content * losses.content_loss(
                feat_fake_b, {k: feat_real_a[k] for k in layers})
            terms["content_ba"] = c.lambda_content * losses.content_loss(
                feat_fake_a, {k: feat_real_b[k] for k in layers})
        if c.lambda_style > 0:
            layers = c.vgg.style_layers
            if self._fixed_style:
                grams_b = {k: getattr(self, f"style_gram_{k}") for k in layers}
            else:
                grams_b = {k: losses.gram_matrix(feat_real_b[k]) for k in layers}
            grams_a = {k: losses.gram_matrix(feat_real_a[k]) for k in layers}
            terms["style_ab"] = c.lambda_style * losses.style_loss(feat_fake_b, grams_b)
            terms["style_ba"] = c.lambda_style * losses.style_loss(feat_fake_a, grams_a)
        return terms

    def discriminator_loss(self, real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor,
                           fake_b: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-> (L_D = L_d_a + L_d_b, terms). Pass pooled fakes; they are detached here."""
        mode = self.loss_cfg.gan_mode
        real_pred_a, fake_pred_a, real_pred_b, fake_pred_b = self.discriminators(
            real_a, real_b, fake_a.detach(), fake_b.detach())
        terms = {
            "d_a": losses.discriminator_loss(real_pred_a, fake_pred_a, mode),
            "d_b": losses.discriminator_loss(real_pred_b, fake_pred_b, mode),
        }
        return terms["d_a"] + terms["d_b"], terms


def build_cyclegan(cfg: Config, style_images_b: torch.Tensor | None = None, vgg_weights: str | None = None,
                   init: bool = True) -> CycleGAN:
    """The four nets from `cfg.model` (+ VGG only when a VGG term is on). `vgg_weights` overrides
    cfg.loss.vgg.weights (tests pass "none")."""
    m = cfg.model
    g_ab = build_generator(m, m.in_channels, m.out_channels, init)
    g_ba = build_generator(m, m.out_channels, m.in_channels, init)
    d_a = build_discriminator(m, m.in_channels, init)
    d_b = build_discriminator(m, m.out_channels, init)
    vgg = None
    lo = cfg.loss
    if lo.lambda_content > 0 or lo.lambda_style > 0:
        layers = (lo.vgg.content_layers if lo.lambda_content > 0 else ()) + (
            lo.vgg.style_layers if lo.lambda_style > 0 else ())
        vgg = losses.VGGFeatures(layers, vgg_weights or lo.vgg.weights)
    return CycleGAN(g_ab, g_ba, d_a, d_b, lo, vgg, style_images_b)


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        net.requires_grad_(flag)
