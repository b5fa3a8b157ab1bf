"""Feed-forward style transfer, one network per painting (Johnson et al. 2016, "Perceptual losses").

One generator g_ab (the project's ResNet generator) learns to render any photo of domain A in the style of
fixed style images, in one forward pass. No discriminator. Objective, for a photo batch a:

    L = lambda_content * sum_l mean((F_l(g_ab(a)) - F_l(a))^2)                  content layers (relu2_2)
      + lambda_style   * sum_l mean((Gram(F_l(g_ab(a))) - mean_i Gram(F_l(s_i)))^2)    style layers
      + lambda_tv      * TV(g_ab(a))                                   (model.style.lambda_tv)

with F the frozen VGG19 of gan/nn/losses.py, Gram normalised by c*h*w, and s_i the images of
`loss.vgg.style_images` (one painting or several: their Gram matrices are averaged), or every image of
`data.train_b` when that is null. pytorch/examples' fast_neural_style uses the same normalisations, so its
weights carry over: content 1e5, style 1e10 (configs/style_feedforward.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gan.nn import losses
from gan.config.schema import Config, LossConfig, ModelConfig, require
from gan.data.datasets import domain_dir
from gan.models.base import StepContext, TrainModel, require_vgg_terms
from gan.nn.networks import build_generator, inference_generator


@dataclass(frozen=True)
class StyleConfig:
    """`model.style`: the terms only the style kind has."""

    lambda_tv: float = 0.0  # total-variation smoothing of the output


class StyleNet(TrainModel):
    optimizers = {"g": ("g_ab",)}
    generators = {"AtoB": "g_ab"}
    domains = ("A",)
    Section = StyleConfig
    channels, channels_why = "rgb", "its content and style terms are VGG19 features of RGB images"
    moved_keys = {"loss.lambda_tv": ("lambda_tv", 0.0)}

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        require_vgg_terms(cfg)
        tv = cfg.model.options.lambda_tv
        require(tv >= 0, "model.style.lambda_tv", tv, "a number >= 0")

    def __init__(self, g_ab: nn.Module, vgg: losses.VGGFeatures, style_grams: dict[str, torch.Tensor],
                 loss: LossConfig, options: StyleConfig = StyleConfig()):
        super().__init__()
        self.g_ab, self.vgg, self.loss_cfg, self.opts = g_ab, vgg, loss, options
        self.g_call: nn.Module = g_ab  # what `wrap` may replace (DDP / compile)
        for k, g in style_grams.items():
            self.register_buffer(f"style_gram_{k}", g, persistent=False)

    @classmethod
    def build(cls, cfg: Config, device: torch.device, rank: int = 0, vgg_weights: str | None = None) -> "StyleNet":
        m, lo = cfg.model, cfg.loss
        g_ab = build_generator(m, m.in_channels, m.out_channels)
        vgg = losses.VGGFeatures(lo.vgg.content_layers + lo.vgg.style_layers, vgg_weights or lo.vgg.weights)
        vgg = vgg.to(device)
        source = lo.vgg.style_images or domain_dir(cfg.data, "train_b")
        grams = losses.style_grams_from_files(vgg, source, cfg.data.crop_size, lo.vgg.style_layers, device)
        return cls(g_ab, vgg, grams, lo, m.options).to(device)

    @property
    def nets(self) -> dict[str, nn.Module]:
        return {"g_ab": self.g_ab}

    @staticmethod
    def inference_net(model_cfg: ModelConfig, name: str) -> nn.Module:
        return inference_generator(model_cfg, name, ("g_ab",))

    def wrap(self, fn) -> None:
        self.g_call = fn(self.g_call)

    def loss(self, real_a: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """-> (L, weighted terms, fake_b)."""
        c = self.loss_cfg
        fake_b = self.g_call(real_a)
        feats_fake, feats_real = self.vgg(fake_b), self.vgg(real_a)
        grams = {k: getattr(self, f"style_gram_{k}") for k in c.vgg.style_layers}
        terms = {
            "content": c.lambda_content * losses.content_loss(feats_fake, {k: feats_real[k]
                                                                             for k in c.vgg.content_layers}),
            "style": c.lambda_style * losses.style_loss(feats_fake, grams),
        }
        if self.opts.lambda_tv > 0:
            terms["tv"] = self.opts.lambda_tv * losses.total_variation(fake_b)
        return sum(terms.values()), terms, fake_b

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext
                      ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        real_a = batch["A"]
        with ctx.autocast():
            loss_g, terms, fake_b = self.loss(real_a)
        ctx.update("g", loss_g, terms)
        return ({"loss_g": loss_g.detach(), **{k: v.detach() for k, v in terms.items()}},
                {"real_a": real_a, "fake_b": fake_b.detach()})

    def sample_rows(self, images: dict[str, torch.Tensor]) -> tuple[list[list[torch.Tensor]], str]:
        n = min(4, images["real_a"].shape[0])
        return ([[images["real_a"][i] for i in range(n)], [images["fake_b"][i] for i in range(n)]],
                "real_a (top) / fake_b (bottom)")

