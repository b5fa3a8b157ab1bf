"""CycleGAN (Zhu et al. 2017): the four networks and the loss arithmetic of one training step.

Objective, with a in domain A (photos), b in domain B (paintings):

    L_G = L_adv(g_ab, d_b) + L_adv(g_ba, d_a)
        + lambda_cycle * (|g_ba(g_ab(a)) - a|_1 + |g_ab(g_ba(b)) - b|_1)                    cycle
          (with cycle_lowpass = k: |P(g_ba(g_ab(a))) - P(a)|_1 ..., P a k x k average pooling)
        + lambda_identity * lambda_cycle * (|g_ab(b) - b|_1 + |g_ba(a) - a|_1)             identity
        + lambda_content * (C(g_ab(a), a) + C(g_ba(b), b))                 VGG content (hybrid mode)
        + lambda_style * (S(g_ab(a), style_b) + S(g_ba(b), a))               VGG Gram style (hybrid)
    L_D = 0.5 * (l(d_a(a), real) + l(d_a(pool(g_ba(b))), fake)) + the same for d_b with b and g_ab(a)

style_b is the real b batch, or the mean Gram matrices of fixed style images (`loss.vgg.style_images`).
lambda_cycle, lambda_identity and cycle_lowpass are the kind's own keys (`model.cyclegan.*`); the adversarial
mode and the VGG terms are shared (`loss.*`).

Paper / reference code / here (each discriminator here is named after the domain it judges):

    G    = G_A   = g_ab        loss_G_A   = adv_ab      loss_cycle_A = cycle_a     loss_idt_A = idt_b
    F    = G_B   = g_ba        loss_G_B   = adv_ba      loss_cycle_B = cycle_b     loss_idt_B = idt_a
    D_Y  = D_A   = d_b         loss_D_A   = d_b
    D_X  = D_B   = d_a         loss_D_B   = d_a

(The reference's idt_A is G_A(real_B) vs real_B, which is idt_b here: named by the image, not the net.)

One step (`training_step`), in the reference's order: forward both generators; update g_ab/g_ba on L_G with
d_a/d_b frozen; update d_a/d_b on L_D with the generated images drawn through each domain's ImagePool.
`generators` and `discriminators` are each called once per update, so the loop can wrap those two in
DistributedDataParallel (one forward per backward, every parameter used) or torch.compile. The generator
update's adversarial terms call the plain d_a/d_b: they are frozen then, and no gradient of theirs needs
averaging.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gan.nn import losses
from gan.config.schema import Config, LossConfig, ModelConfig, require
from gan.models.base import StepContext, TrainModel, set_requires_grad
from gan.models.image_pool import ImagePool
from gan.nn.networks import build_discriminator, build_generator, inference_generator


@dataclass(frozen=True)
class CycleGANConfig:
    """`model.cyclegan`: the terms only CycleGAN has."""

    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # multiplies lambda_cycle, as in the reference
    # The cycle term compares F(G(x)) with x after a k x k average pooling (1 = pixel by pixel, the paper's):
    # fine texture G drops (flattened paint, a line drawn over it) then costs no cycle loss
    cycle_lowpass: int = 1


class GeneratorPair(nn.Module):
    """Runs g_ab and g_ba on everything one generator update needs, in one call."""

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
    """d_a on (real_a, fake_a) and d_b on (real_b, fake_b), in one call; with `recon`, each real one also as the
    discriminator's rebuild and what it saw (model.discriminator.recon)."""

    def __init__(self, d_a: nn.Module, d_b: nn.Module):
        super().__init__()
        self.d_a, self.d_b = d_a, d_b

    def forward(self, real_a, real_b, fake_a, fake_b, recon: bool = False) -> tuple:
        if recon:
            (ra, rec_a, seen_a), (rb, rec_b, seen_b) = self.d_a(real_a, recon=True), self.d_b(real_b, recon=True)
            return ra, self.d_a(fake_a), rb, self.d_b(fake_b), (rec_a, seen_a, rec_b, seen_b)
        return self.d_a(real_a), self.d_a(fake_a), self.d_b(real_b), self.d_b(fake_b)


class CycleGAN(TrainModel):
    optimizers = {"g": ("g_ab", "g_ba"), "d": ("d_a", "d_b")}
    reads = frozenset({"fm", "r1", "patch", "g_steps", "d_steps", "d_batch", "recon"})
    generators = {"AtoB": "g_ab", "BtoA": "g_ba"}
    Section = CycleGANConfig
    moved_keys = {"loss.lambda_cycle": ("lambda_cycle", 10.0), "loss.lambda_identity": ("lambda_identity", 0.5),
                  "loss.cycle_lowpass": ("cycle_lowpass", 1)}

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        o: CycleGANConfig = cfg.model.options
        m = cfg.model
        for key in ("lambda_cycle", "lambda_identity"):
            require(getattr(o, key) >= 0, f"model.cyclegan.{key}", getattr(o, key), "a number >= 0")
        if cfg.loss.d_steps > 1:
            require(cfg.train.pool_size > 0, "loss.d_steps", cfg.loss.d_steps,
                    "1 with train.pool_size=0 (later discriminator updates take generated images from the history)")
        if o.lambda_identity > 0:
            require(m.in_channels == m.out_channels, "model.cyclegan.lambda_identity", o.lambda_identity,
                    "0 when model.in_channels != model.out_channels (identity maps need equal channels)")
        require(1 <= o.cycle_lowpass <= 16, "model.cyclegan.cycle_lowpass", o.cycle_lowpass,
                "an integer from 1 (pixel by pixel) to 16: the pooling factor the cycle term compares at")
        if m.discriminator.batch > 1:
            require(cfg.train.pool_size > 0, "model.discriminator.batch", m.discriminator.batch,
                    "1 with train.pool_size=0 (the more generated images come from the history pool)")

    @classmethod
    def extra_images(cls, cfg: Config) -> int:
        lo = cfg.loss
        return max(cfg.model.discriminator.batch, lo.patch_images if lo.lambda_patch > 0 else 1) - 1

    def __init__(self, g_ab: nn.Module, g_ba: nn.Module, d_a: nn.Module, d_b: nn.Module, loss: LossConfig,
                 vgg: losses.VGGFeatures | None = None, style_grams_b: dict[str, torch.Tensor] | None = None,
                 pool_size: int = 50, pool_seed: int = 0, options: CycleGANConfig = CycleGANConfig(),
                 d_batch: int = 1, d_recon: float = 0.0):
        super().__init__()
        self.g_ab, self.g_ba, self.d_a, self.d_b = g_ab, g_ba, d_a, d_b
        # Call targets of the two updates; `wrap` may replace them by DDP / compiled wrappers.
        self.g_pair: nn.Module = GeneratorPair(g_ab, g_ba)
        self.d_pair: nn.Module = DiscriminatorPair(d_a, d_b)
        self.loss_cfg, self.opts = loss, options
        self.d_batch = d_batch  # images each discriminator judges per real one of the batch (model.discriminator.batch)
        self.d_recon = d_recon  # the discriminators' self-supervised rebuild of real images (model.discriminator.recon)
        # A frozen submodule so .to(device) moves it; checkpoints store only the four nets.
        self.vgg = vgg
        if (loss.lambda_content > 0 or loss.lambda_style > 0) and vgg is None:
            raise ValueError("lambda_content/lambda_style > 0 need a VGGFeatures module")
        for k, g in (style_grams_b or {}).items():
            self.register_buffer(f"style_gram_{k}", g, persistent=False)
        self._fixed_style = bool(style_grams_b)
        # Histories of generated images for the discriminators; each draws from its own generator.
        self.pool_a = ImagePool(pool_size, seed=pool_seed * 1000 + 1)
        self.pool_b = ImagePool(pool_size, seed=pool_seed * 1000 + 2)
        # The sliced Wasserstein feature matching's random directions (loss.fm=swd): the kind's own, checkpointed
        self.fm_rng = torch.Generator().manual_seed(pool_seed * 1000 + 3)

    # ------------------------------------------------------------------------------ TrainModel interface

    @classmethod
    def build(cls, cfg: Config, device: torch.device, rank: int = 0, vgg_weights: str | None = None) -> "CycleGAN":
        """The four nets from `cfg.model` (+ VGG only when a VGG term is on). `vgg_weights` overrides
        cfg.loss.vgg.weights (tests pass "none")."""
        m, lo = cfg.model, cfg.loss
        g_ab = build_generator(m, m.in_channels, m.out_channels)
        g_ba = build_generator(m, m.out_channels, m.in_channels)
        d_a = build_discriminator(m, m.in_channels)
        d_b = build_discriminator(m, m.out_channels)
        vgg, grams = None, None
        if lo.lambda_content > 0 or lo.lambda_style > 0:
            layers = (lo.vgg.content_layers if lo.lambda_content > 0 else ()) + (
                lo.vgg.style_layers if lo.lambda_style > 0 else ())
            vgg = losses.VGGFeatures(layers, vgg_weights or lo.vgg.weights).to(device)
            if lo.lambda_style > 0 and lo.vgg.style_images:
                grams = losses.style_grams_from_files(vgg, lo.vgg.style_images, cfg.data.crop_size,
                                                      lo.vgg.style_layers, device)
        # Pools are per process: seeded by (seed, rank) so ranks do not mirror each other.
        model = cls(g_ab, g_ba, d_a, d_b, lo, vgg, grams, cfg.train.pool_size, cfg.seed + 1000 * rank, m.options,
                    m.discriminator.batch, m.discriminator.recon)
        return model.to(device)

    @property
    def nets(self) -> dict[str, nn.Module]:
        return {"g_ab": self.g_ab, "g_ba": self.g_ba, "d_a": self.d_a, "d_b": self.d_b}

    @staticmethod
    def inference_net(model_cfg: ModelConfig, name: str) -> nn.Module:
        return inference_generator(model_cfg, name)

    def wrap(self, fn) -> None:
        self.g_pair = fn(self.g_pair)
        self.d_pair = fn(self.d_pair)

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext
                      ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One G update then one D update (the reference's optimize_parameters); with loss.g_steps / d_steps,
        that many of each, on the same batch (a later D update takes its generated images from the history)."""
        real_a, real_b = batch["A"], batch["B"]
        more = {k: batch[f"{k}_more"] for k in ("A", "B") if f"{k}_more" in batch}  # more real images per item
        c = self.loss_cfg

        # 1. generators, with both discriminators frozen (their grads are neither needed nor wanted)
        set_requires_grad([self.d_a, self.d_b], False)
        for _ in range(c.g_steps):
            with ctx.autocast():
                loss_g, terms_g, images = self.generator_loss(real_a, real_b, more)
            ctx.update("g", loss_g, terms_g)
        set_requires_grad([self.d_a, self.d_b], True)

        # 2. discriminators, on the history of generated images (and, with model.discriminator.batch = k > 1,
        #    k - 1 more real images of each domain and k - 1 more from each history)
        k = self.d_batch - 1
        if k:
            real_a, real_b = (torch.cat([batch[d], more[d][:, :k].flatten(0, 1)]) for d in ("A", "B"))
        for i in range(c.d_steps):
            n = len(images["fake_a"])
            fake_a = self.pool_a.query(images["fake_a"].detach()) if i == 0 else self.pool_a.sample(n)
            fake_b = self.pool_b.query(images["fake_b"].detach()) if i == 0 else self.pool_b.sample(n)
            if k:
                fake_a = torch.cat([fake_a, self.pool_a.sample(k * n)])
                fake_b = torch.cat([fake_b, self.pool_b.sample(k * n)])
            with ctx.autocast():
                loss_d, terms_d = self.discriminator_loss(real_a, real_b, fake_a, fake_b, ctx.step)
            ctx.update("d", loss_d, terms_d)

        terms = {"loss_g": loss_g, "loss_d": loss_d, **terms_g, **terms_d}
        images = {"real_a": batch["A"], "real_b": batch["B"], **images}
        return {k: v.detach() for k, v in terms.items()}, {k: v.detach() for k, v in images.items()}

    def sample_rows(self, images: dict[str, torch.Tensor]) -> tuple[list[list[torch.Tensor]], str]:
        rows = [[images[k][0] for k in ("real_a", "fake_b", "rec_a")],
                [images[k][0] for k in ("real_b", "fake_a", "rec_b")]]
        return rows, "real_a | fake_b | rec_a  /  real_b | fake_a | rec_b"

    def rank_state(self) -> dict:
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict(),
                "fm_rng": self.fm_rng.get_state()}

    def load_rank_state(self, state: dict, device: torch.device) -> None:
        self.pool_a.load_state_dict(state["pool_a"], device)
        self.pool_b.load_state_dict(state["pool_b"], device)
        if "fm_rng" in state:  # (checkpoints from before feature matching)
            self.fm_rng.set_state(state["fm_rng"])

    # -------------------------------------------------------------------------------- the objective

    # The generator terms in one fixed order (what they sum in, so a run's numbers do not depend on which are on).
    TERM_ORDER = ("adv_ab", "adv_ba", "cycle_a", "cycle_b", "idt_a", "idt_b", "content_ab", "content_ba",
                  "style_ab", "style_ba", "fm_ab", "fm_ba", "patch_ab", "patch_ba")

    def generator_loss(self, real_a: torch.Tensor, real_b: torch.Tensor, more: dict | None = None
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """-> (L_G, weighted terms that sum to L_G, images {fake_b, rec_a, fake_a, rec_b} still attached).
        `more`: {"A", "B": (N, k, C, H, W)} more real images, for the terms that compare with real ones."""
        o = self.opts
        images = self.g_pair(real_a, real_b, o.lambda_identity > 0)
        vgg = self._vgg_memo()
        others = {d: torch.cat([x, more[d].flatten(0, 1)]) if more and d in more else x
                  for d, x in (("A", real_a), ("B", real_b))}
        terms = {**self.side_terms("ab", real_a, images["fake_b"], images["rec_a"], real_b, vgg, others["B"]),
                 **self.side_terms("ba", real_b, images["fake_a"], images["rec_b"], real_a, vgg, others["A"])}
        if o.lambda_identity > 0:
            w = o.lambda_identity * o.lambda_cycle
            terms["idt_a"] = w * losses.identity_loss(images.pop("idt_a"), real_a)
            terms["idt_b"] = w * losses.identity_loss(images.pop("idt_b"), real_b)
        terms = {k: terms[k] for k in self.TERM_ORDER if k in terms}
        total = sum(terms.values())
        return total, terms, images

    def side_terms(self, side: str, real: torch.Tensor, fake: torch.Tensor, rec: torch.Tensor,
                   other: torch.Tensor, vgg=None, others: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The generator terms of one direction that depend on its output: side "ab" is g_ab's output `fake` of
        photos `real` (fake_b of real_a), `rec` = g_ba(fake), judged by d_b against the real paintings `other`
        (`others`: those and more, for feature and patch matching); "ba" the other way. (Also what
        gan.evaluation.alignment differentiates: `output_terms`.)"""
        c, o = self.loss_cfg, self.opts
        d = self.d_b if side == "ab" else self.d_a
        src = side[0]
        others = other if others is None else others
        terms = {}
        if c.lambda_fm > 0:
            pred, fm = losses.judged_with_feature_matching(d, fake, others, c.fm, self.fm_rng)
            terms[f"fm_{side}"] = c.lambda_fm * fm
        else:
            pred = d(fake)
        terms[f"adv_{side}"] = losses.generator_adv_loss(pred, c.gan_mode)
        terms[f"cycle_{src}"] = o.lambda_cycle * losses.cycle_loss(rec, real, o.cycle_lowpass)
        if c.lambda_patch > 0:
            bank = others[: c.patch_images * len(fake)]
            if c.patch == "swd":
                patch = losses.sliced_patch_loss(fake, bank, c.patch_size, c.patch_stride, c.patch_scales, self.fm_rng)
            else:
                patch = losses.nearest_patch_loss(fake, bank, c.patch_size, c.patch_stride)
            terms[f"patch_{side}"] = c.lambda_patch * patch
        if c.lambda_content > 0 or c.lambda_style > 0:
            vgg = vgg if vgg is not None else self._vgg_memo()
            feat_fake = self.vgg(fake)
            if c.lambda_content > 0:
                terms[f"content_{side}"] = c.lambda_content * losses.content_loss(
                    feat_fake, {k: vgg(src, real)[k] for k in c.vgg.content_layers})
            if c.lambda_style > 0:
                layers = c.vgg.style_layers
                if side == "ab" and self._fixed_style:
                    grams = {k: getattr(self, f"style_gram_{k}") for k in layers}
                else:
                    grams = {k: losses.gram_matrix(vgg(side[1], other)[k]) for k in layers}
                terms[f"style_{side}"] = c.lambda_style * losses.style_loss(feat_fake, grams)
        return terms

    def _vgg_memo(self):
        """vgg(domain, images) -> VGG features of a real batch, computed once per generator update."""
        memo: dict[str, dict[str, torch.Tensor]] = {}

        def features(domain: str, images: torch.Tensor) -> dict[str, torch.Tensor]:
            if domain not in memo:
                memo[domain] = self.vgg(images)
            return memo[domain]

        return features

    def output_terms(self, real_a: torch.Tensor, fake_b: torch.Tensor, real_b: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
        """The generator terms that depend on g_ab's output, as the generator update computes them, for an output
        `fake_b` of `real_a` (paintings `real_b` for the terms that compare with real ones)."""
        state = self.fm_rng.get_state()  # (its draws here must not shift training's)
        try:
            return self.side_terms("ab", real_a, fake_b, self.g_ba(fake_b), real_b)
        finally:
            self.fm_rng.set_state(state)

    def discriminator_loss(self, real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor,
                           fake_b: torch.Tensor, step: int = 1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-> (L_D = L_d_a + L_d_b [+ R1 on the real images, every loss.r1_every-th step], terms). Pass pooled
        fakes; they are detached here."""
        c = self.loss_cfg
        r1 = losses.r1_weight(step, c.r1_gamma, c.r1_every)
        if r1:  # the penalty differentiates the real images' logits with respect to the images
            real_a, real_b = real_a.detach().requires_grad_(True), real_b.detach().requires_grad_(True)
        out = self.d_pair(real_a, real_b, fake_a.detach(), fake_b.detach(), self.d_recon > 0)
        real_pred_a, fake_pred_a, real_pred_b, fake_pred_b = out[:4]
        terms = {
            "d_a": losses.discriminator_loss(real_pred_a, fake_pred_a, c.gan_mode),
            "d_b": losses.discriminator_loss(real_pred_b, fake_pred_b, c.gan_mode),
        }
        if self.d_recon > 0:  # FastGAN: the discriminators' features must rebuild the real images they judge
            rec_a, seen_a, rec_b, seen_b = out[4]
            terms["recon_a"] = self.d_recon * F.l1_loss(rec_a.float(), seen_a.float())
            terms["recon_b"] = self.d_recon * F.l1_loss(rec_b.float(), seen_b.float())
        if r1:
            terms["r1_a"] = r1 * losses.r1_penalty(real_pred_a, real_a)
            terms["r1_b"] = r1 * losses.r1_penalty(real_pred_b, real_b)
        return sum(terms.values()), terms

