"""CUT and FastCUT (Park et al. 2020, "Contrastive Learning for Unpaired Image-to-Image Translation").

One generator G = g_ab (the project's ResNet generator), one discriminator d_b, and one small MLP head per
encoder layer (`heads`). No second generator, no cycle: content is kept by PatchNCE, which asks each patch of
the output to be more like the patch at the same position of the input than like the input's other patches.

    L_G = lambda_gan * L_adv(G, d_b)
        + lambda_nce * PatchNCE(x, G(x))                                       (CUT: averaged with the next)
        + lambda_nce * PatchNCE(y, G(y))          identity NCE, CUT only (nce_idt)
    L_D = 0.5 * (l(d_b(y), real) + l(d_b(G(x)), fake))                      no image pool

    PatchNCE(src, out) = mean over layers l of patch_nce_loss(H_l(E_l(out)), H_l(E_l(src)))

E_l is G's activation after `g_ab.model[l]` (layers 0, 4, 8, 12, 16 of the ResNet generator: the padded
input, the two downsampling convs and residual blocks 1 and 5 with `antialias` on, as in the paper's code),
H_l a 2-layer MLP (Linear, ReLU, Linear, 256 wide) and an L2 normalisation, on `num_patches` positions drawn
at random, the same positions in E_l(out) and E_l(src) and for every image of the batch; negatives come from
the same image (gan.nn.losses.patch_nce_loss), keys are detached, tau = 0.07.

FastCUT: no identity NCE, lambda_nce 10, and flip equivariance: with probability 1/2 the step translates the
horizontally flipped photo, and the output's encoder features are flipped back before they are compared with
the unflipped photo's, so G must commute with the flip.

Paper / the authors' code / here:  netG = g_ab,  netD = d_b,  netF = heads (their own optimizer, "f"),
loss_G_GAN = adv_ab,  loss_NCE = nce,  loss_NCE_Y = nce_idt,  loss_D_real + loss_D_fake = d_b.

One step, in the authors' order: translate (x, and y for the identity NCE, in one generator call); update
d_b on the detached output; update g_ab and the heads together on L_G (one backward, two optimizers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from gan.nn import losses
from gan.config.schema import Config, ModelConfig, require
from gan.models.base import StepContext, TrainModel, set_requires_grad
from gan.nn.networks import (ResnetGenerator, build_discriminator, build_generator, inference_generator,
                             init_weights)


@dataclass(frozen=True)
class CUTConfig:
    """`model.cut`; None = the mode's default (CUT | FastCUT)."""

    mode: Literal["cut", "fastcut"] = "cut"
    lambda_gan: float = 1.0
    lambda_nce: Optional[float] = None  # 1 | 10
    nce_idt: Optional[bool] = None  # true | false
    flip_equivariance: Optional[bool] = None  # false | true
    nce_layers: tuple[int, ...] = (0, 4, 8, 12, 16)
    num_patches: int = 256
    nce_t: float = 0.07
    head_dim: int = 256

    def resolved(self) -> "CUTConfig":
        """Every None replaced by the mode's default."""
        fast = self.mode == "fastcut"
        return CUTConfig(
            self.mode, self.lambda_gan,
            self.lambda_nce if self.lambda_nce is not None else (10.0 if fast else 1.0),
            self.nce_idt if self.nce_idt is not None else not fast,
            self.flip_equivariance if self.flip_equivariance is not None else fast,
            self.nce_layers, self.num_patches, self.nce_t, self.head_dim)


class PatchHeads(nn.Module):
    """One MLP head per NCE layer: Linear(c_l, d), ReLU, Linear(d, d), then L2 normalisation."""

    def __init__(self, channels: list[int], dim: int = 256):
        super().__init__()
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(c, dim), nn.ReLU(), nn.Linear(dim, dim)) for c in channels)

    def forward(self, feats: list[torch.Tensor], ids: list[torch.Tensor]) -> list[torch.Tensor]:
        """feats[l]: (B, C, H, W); ids[l]: flat positions -> [(B * len(ids[l]), dim)], image after image."""
        out = []
        for mlp, f, idx in zip(self.mlps, feats, ids):
            picked = f.flatten(2).transpose(1, 2)[:, idx]  # (B, P, C)
            out.append(F.normalize(mlp(picked.flatten(0, 1)).float(), dim=1))
        return out


class CUTGenerator(nn.Module):
    """Everything one generator update computes, in one call (so DDP sees one forward per backward):
    G(x) (and G(y)), and the PatchNCE losses of each layer."""

    def __init__(self, g: ResnetGenerator, heads: PatchHeads, opts: CUTConfig, rng: torch.Generator):
        super().__init__()
        self.g, self.heads, self.opts = g, heads, opts
        self.rng = rng  # the kind's own (checkpointed): the global one is also drawn by data loaders

    def nce(self, src: torch.Tensor, out: torch.Tensor, flipped: bool) -> torch.Tensor:
        o = self.opts
        layers = o.nce_layers
        feat_k = self.g.features(src, layers)
        feat_q = self.g.features(out, layers)
        if flipped:
            feat_q = [torch.flip(f, dims=[3]) for f in feat_q]
        ids = [torch.randperm(f.shape[2] * f.shape[3], generator=self.rng)[: o.num_patches].to(f.device)
               for f in feat_k]
        keys, queries = self.heads(feat_k, ids), self.heads(feat_q, ids)
        per_layer = [losses.patch_nce_loss(q, k, src.shape[0], o.nce_t) for q, k in zip(queries, keys)]
        return torch.stack(per_layer).mean()

    def forward(self, real_a: torch.Tensor, real_b: torch.Tensor, flipped: bool) -> dict[str, torch.Tensor]:
        o = self.opts
        n = real_a.shape[0]
        x = torch.flip(real_a, dims=[3]) if flipped else real_a
        both = torch.cat([x, real_b]) if o.nce_idt else x
        fake = self.g(both)
        out = {"fake_b": fake[:n], "nce": self.nce(real_a, fake[:n], flipped)}
        if o.nce_idt:
            out["idt_b"] = fake[n:]
            out["nce_idt"] = self.nce(real_b, fake[n:], False)
        return out


class DiscriminatorCall(nn.Module):
    """d_b on (real_b, fake_b), in one call."""

    def __init__(self, d: nn.Module):
        super().__init__()
        self.d = d

    def forward(self, real_b: torch.Tensor, fake_b: torch.Tensor, recon: bool = False) -> tuple:
        """(real logits, fake logits[, (the rebuild of real_b, what the net saw)] (model.discriminator.recon))."""
        if recon:
            real, rebuilt, seen = self.d(real_b, recon=True)
            return real, self.d(fake_b), (rebuilt, seen)
        return self.d(real_b), self.d(fake_b)


class CUT(TrainModel):
    optimizers = {"g": ("g_ab",), "f": ("heads",), "d": ("d_b",)}
    generators = {"AtoB": "g_ab"}
    Section = CUTConfig
    reads = frozenset({"fm", "r1", "recon"})
    channels = "same"
    channels_why = "PatchNCE reads the output with the generator's own encoder, whose input is the photo's"

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        o: CUTConfig = cfg.model.options
        m = cfg.model
        for key in ("lambda_gan", "nce_t"):
            require(getattr(o, key) > 0, f"model.cut.{key}", getattr(o, key), "a number > 0")
        require(o.lambda_nce is None or o.lambda_nce >= 0, "model.cut.lambda_nce", o.lambda_nce,
                "a number >= 0, or null for the mode's default (cut 1, fastcut 10)")
        require(o.num_patches >= 1, "model.cut.num_patches", o.num_patches, "an integer >= 1")
        require(o.head_dim >= 1, "model.cut.head_dim", o.head_dim, "an integer >= 1")
        n = _encoder_end(m)
        require(len(o.nce_layers) > 0 and all(0 <= i <= n for i in o.nce_layers)
                and list(o.nce_layers) == sorted(set(o.nce_layers)), "model.cut.nce_layers", list(o.nce_layers),
                f"increasing indices of the generator's encoder layers, 0 to {n} with "
                f"model.generator.n_blocks={m.generator.n_blocks} and antialias={m.generator.antialias} "
                "(the paper's 0, 4, 8, 12, 16 need antialias and 5 blocks or more)")

    def __init__(self, g_ab: ResnetGenerator, d_b: nn.Module, heads: PatchHeads, cfg: Config, seed: int = 0):
        super().__init__()
        self.opts = cfg.model.options.resolved()
        self.loss_cfg, self.gan_mode = cfg.loss, cfg.loss.gan_mode
        self.d_recon = cfg.model.discriminator.recon
        self.g_ab, self.d_b, self.heads = g_ab, d_b, heads
        # Patch positions and flips: a generator of the kind's own, per process, kept in the checkpoint
        self.rng = torch.Generator().manual_seed(seed)
        self.g_call: nn.Module = CUTGenerator(g_ab, heads, self.opts, self.rng)
        self.__dict__["g_core"] = self.g_call  # the plain call, whatever `wrap` makes of g_call (not a 2nd module)
        self.d_call: nn.Module = DiscriminatorCall(d_b)

    @classmethod
    def build(cls, cfg: Config, device: torch.device, rank: int = 0, vgg_weights: str | None = None) -> "CUT":
        m = cfg.model
        o = m.options.resolved()
        g_ab = build_generator(m, m.in_channels, m.out_channels)
        d_b = build_discriminator(m, m.out_channels)
        with torch.no_grad():
            channels = [f.shape[1] for f in g_ab.features(torch.zeros(1, m.in_channels, 32, 32), o.nce_layers)]
        heads = init_weights(PatchHeads(channels, o.head_dim), m.init)
        return cls(g_ab, d_b, heads, cfg, cfg.seed * 1000 + 3 + 1000 * rank).to(device)

    @property
    def nets(self) -> dict[str, nn.Module]:
        return {"g_ab": self.g_ab, "d_b": self.d_b, "heads": self.heads}

    @staticmethod
    def inference_net(model_cfg: ModelConfig, name: str) -> nn.Module:
        return inference_generator(model_cfg, name, ("g_ab",))

    def wrap(self, fn) -> None:
        self.g_call = fn(self.g_call)
        self.d_call = fn(self.d_call)

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext
                      ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        o = self.opts
        real_a, real_b = batch["A"], batch["B"]
        flipped = bool(o.flip_equivariance and torch.rand((), generator=self.rng) < 0.5)
        with ctx.autocast():
            out = self.g_call(real_a, real_b, flipped)
        fake_b = out["fake_b"]

        # 1. the discriminator, on this step's output (no pool) [+ R1 on the real images, every r1_every-th step]
        lo = self.loss_cfg
        r1 = losses.r1_weight(ctx.step, lo.r1_gamma, lo.r1_every)
        real_d = real_b.detach().requires_grad_(True) if r1 else real_b
        recon = self.d_recon > 0
        with ctx.autocast():
            judged = self.d_call(real_d, fake_b.detach(), recon)
            real_pred, fake_pred = judged[:2]
            loss_d = losses.discriminator_loss(real_pred, fake_pred, self.gan_mode)
            terms_d = {"d_b": loss_d}
            if recon:  # FastGAN: the discriminator's features must rebuild the real images it judges
                terms_d["recon_b"] = self.d_recon * F.l1_loss(judged[2][0].float(), judged[2][1].float())
                loss_d = loss_d + terms_d["recon_b"]
            if r1:
                terms_d["r1_b"] = r1 * losses.r1_penalty(real_pred, real_d)
                loss_d = loss_d + terms_d["r1_b"]
        ctx.update("d", loss_d, terms_d)

        # 2. the generator and the heads, d_b frozen
        set_requires_grad([self.d_b], False)
        with ctx.autocast():
            terms = self.gan_terms(fake_b, real_b)
            if o.nce_idt:  # CUT: the two NCE terms averaged
                terms["nce"] = 0.5 * o.lambda_nce * out["nce"]
                terms["nce_idt"] = 0.5 * o.lambda_nce * out["nce_idt"]
            else:
                terms["nce"] = o.lambda_nce * out["nce"]
            loss_g = sum(terms.values())
        ctx.update(("g", "f"), loss_g, terms)
        set_requires_grad([self.d_b], True)

        if flipped:  # the sample grid shows the photo the way it came
            fake_b = torch.flip(fake_b, dims=[3])
        images = {"real_a": real_a, "fake_b": fake_b, "real_b": real_b}
        if o.nce_idt:
            images["idt_b"] = out["idt_b"]
        terms = {"loss_g": loss_g, "loss_d": loss_d, **terms, **terms_d}
        return {k: v.detach() for k, v in terms.items()}, {k: v.detach() for k, v in images.items()}

    def gan_terms(self, fake_b: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """adv_ab (x lambda_gan) [and fm_ab, feature matching on d_b's features of real paintings]."""
        o, lo = self.opts, self.loss_cfg
        terms = {}
        if lo.lambda_fm > 0:
            pred, fm = losses.judged_with_feature_matching(self.d_b, fake_b, real_b, lo.fm, self.rng)
            terms["fm_ab"] = lo.lambda_fm * fm
        else:
            pred = self.d_b(fake_b)
        return {"adv_ab": o.lambda_gan * losses.generator_adv_loss(pred, self.gan_mode), **terms}

    def output_terms(self, real_a: torch.Tensor, fake_b: torch.Tensor, real_b: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
        """The generator terms as functions of the output (the heads' random patch positions are drawn and the
        kind's generator put back, so training draws the same afterwards)."""
        o = self.opts
        state = self.rng.get_state()
        try:
            terms = self.gan_terms(fake_b, real_b)
            terms["nce"] = (0.5 if o.nce_idt else 1.0) * o.lambda_nce * self.g_core.nce(real_a, fake_b, False)
        finally:
            self.rng.set_state(state)
        return terms

    def rank_state(self) -> dict:
        return {"rng": self.rng.get_state()}

    def load_rank_state(self, state: dict, device: torch.device) -> None:
        self.rng.set_state(state["rng"])

    def sample_rows(self, images: dict[str, torch.Tensor]) -> tuple[list[list[torch.Tensor]], str]:
        if "idt_b" in images:
            return ([[images["real_a"][0], images["fake_b"][0]], [images["real_b"][0], images["idt_b"][0]]],
                    "real_a | fake_b  /  real_b | idt_b")
        return [[images["real_a"][0], images["fake_b"][0]]], "real_a | fake_b"


def _encoder_end(m: ModelConfig) -> int:
    """The index of the generator's last encoder layer (its last residual block, or the end of the
    downsampling), from a copy built without memory."""
    from gan.nn.networks import ResnetBlock

    g = m.generator
    with torch.device("meta"):
        layers = build_generator(m, init=False).model
    blocks = [i for i, layer in enumerate(layers) if isinstance(layer, ResnetBlock)]
    return blocks[-1] if blocks else (11 if g.antialias else 9)
