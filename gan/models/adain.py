"""Arbitrary style transfer with adaptive instance normalisation (Huang & Belongie 2017, AdaIN): one network for
any painting, chosen at run time.

A frozen VGG19 encoder f (up to relu4_1), AdaIN, and a trained decoder g that mirrors the encoder:

    AdaIN(x, y) = sigma(y) * (x - mu(x)) / sigma(x) + mu(y)        per channel, over positions
    t = AdaIN(f(c), f(s));  output = g(t)

Training, with content batch c (domain A) and style batch s (domain B):

    L = lambda_content * mean((f(g(t)) - t)^2)                                        at relu4_1
      + lambda_style * sum_l [ mean((mu(phi_l(g(t))) - mu(phi_l(s)))^2)
                             + mean((sigma(phi_l(g(t))) - sigma(phi_l(s)))^2) ]    relu1_1..relu4_1

At run time: a content/style trade-off t = alpha * AdaIN(f(c), f(s)) + (1 - alpha) * f(c), and several styles
mixed by normalised weights, t = sum_i w_i AdaIN(f(c), f(s_i)). The checkpoint keeps the encoder's weights
too, so inference needs no VGG download.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan.nn import losses
from gan.config.schema import Config, LossConfig, ModelConfig
from gan.models.base import CONTENT_STYLE, ExportSpec, StepContext, TrainModel, require_vgg_terms

ENCODER_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation over positions: (n, c, 1, 1) each."""
    f = feat.float().flatten(2)
    return f.mean(2)[..., None, None], (f.var(2, unbiased=False) + eps).sqrt()[..., None, None]


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """content features (n, c, h, w), style features (n or 1, c, h', w') -> content features with the style's
    channel means and standard deviations."""
    mc, sc = mean_std(content)
    ms, ss = mean_std(style)
    return (content.float() - mc) / sc * ss + ms


def mix_features(content: torch.Tensor, styles: list[torch.Tensor], weights: list[float] | None = None,
                 alpha: float = 1.0) -> torch.Tensor:
    """t = alpha * sum_i w_i AdaIN(content, styles[i]) + (1 - alpha) * content, with w normalised to sum 1
    (equal when None; a zero weight leaves its style out). The same sum as AdaINStylizer, written as
    blend(normalised content, content, *style_mix(styles, weights, alpha), alpha)."""
    mc, sc = mean_std(content)
    return blend((content.float() - mc) / sc, content, *style_mix(styles, weights, alpha), alpha)


def style_mix(styles: list[torch.Tensor], weights: list[float] | None, alpha: float
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) = alpha * sum_i w_i (sigma(s_i), mu(s_i)) of the style features, w normalised to sum 1:
    sum_i w_i AdaIN(c, s_i) = n(c) * scale + shift with n(c) the content normalised by its own statistics."""
    w = [1.0] * len(styles) if weights is None else list(weights)
    if not styles or len(w) != len(styles) or any(x < 0 for x in w) or sum(w) <= 0:
        raise ValueError("style weights: one per style, >= 0, with a positive sum")
    total = sum(w)
    scale = shift = 0.0
    for wi, s in zip(w, styles):
        if wi > 0:
            ms, ss = mean_std(s)
            scale, shift = scale + wi / total * ss, shift + wi / total * ms
    return alpha * scale, alpha * shift


def blend(normed: torch.Tensor, content: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
          alpha: float) -> torch.Tensor:
    """alpha * (styled content) + (1 - alpha) * content, from style_mix's (scale, shift)."""
    return normed.float() * scale + shift + (1 - alpha) * content.float()


class Decoder(nn.Module):
    """The mirror of VGG19 up to relu4_1 (as in Huang & Belongie): reflection-padded 3x3 convs with ReLU,
    nearest upsampling where the encoder pools; 512 channels at 1/8 resolution -> RGB in [-1, 1] (no squash:
    clamped where images are written)."""

    def __init__(self):
        super().__init__()

        def conv(cin, cout, relu=True):
            return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)] + ([nn.ReLU()] if relu else [])

        up = [nn.Upsample(scale_factor=2, mode="nearest")]
        self.layers = nn.Sequential(
            *conv(512, 256), *up,
            *conv(256, 256), *conv(256, 256), *conv(256, 256), *conv(256, 128), *up,
            *conv(128, 128), *conv(128, 64), *up,
            *conv(64, 64), *conv(64, 3, relu=False),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.layers(t)


class AdaINNet(nn.Module):
    """Inference: (content, style[s]) -> stylized content, any sizes (padded to a multiple of 8, cropped back)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """One content (1, 3, H, W) and one style (1, 3, h, w), both in [-1, 1] -> (1, 3, H, W)."""
        return self.mix(content, [style], None, alpha)

    def mix(self, content: torch.Tensor, styles: list[torch.Tensor], weights: list[float] | None = None,
            alpha: float = 1.0) -> torch.Tensor:
        """Several styles of any sizes, mixed by `weights` (normalised), at trade-off `alpha`."""
        return self.stylizer(styles, weights, alpha)(content)

    def stylizer(self, styles: list[torch.Tensor], weights: list[float] | None = None,
                 alpha: float = 1.0) -> "AdaINStylizer":
        """This network with its styles fixed: a one-input module, content -> stylized."""
        return AdaINStylizer(self, styles, weights, alpha)


class _VGGInput(nn.Module):
    """The encoder's input step (losses.vgg_input) as a layer of its own: a per-pixel step of the band program."""

    def __init__(self, encoder: losses.VGGFeatures):
        super().__init__()
        self.register_buffer("mean", encoder.mean.clone(), persistent=False)
        self.register_buffer("std", encoder.std.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return losses.vgg_input(x, self.mean, self.std)


class AdaINStylizer(nn.Module):
    """AdaIN with fixed styles, as one module: content (N, 3, H, W) in [-1, 1] -> stylized, any size.

    t = alpha * sum_i w_i AdaIN(f(c), f(s_i)) + (1 - alpha) f(c) = n * S + M + (1 - alpha) f(c), with
    n = (f(c) - mu(f(c))) / sigma(f(c)) (an InstanceNorm2d: `content_norm`), S = alpha * sum_i w_i sigma(f(s_i))
    and M = alpha * sum_i w_i mu(f(s_i)) computed once. Because the content's statistics come from a norm
    layer, big images are computed in bands with whole-image statistics like any generator (gan.inference.tiling)."""

    def __init__(self, net: AdaINNet, styles: list[torch.Tensor], weights: list[float] | None, alpha: float):
        super().__init__()
        self.encoder_input = _VGGInput(net.encoder)
        self.encoder_layers = net.encoder.features  # VGG19 up to relu4_1
        self.content_norm = nn.InstanceNorm2d(512, eps=1e-5)
        self.decoder = net.decoder
        self.alpha = float(alpha)
        with torch.no_grad():
            scale, shift = style_mix([net.encoder(s)["relu4_1"] for s in styles], weights, self.alpha)
        self.register_buffer("scale", scale, persistent=False)  # (1, 512, 1, 1)
        self.register_buffer("shift", shift, persistent=False)

    def mix(self, normed: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        return blend(normed, raw, self.scale, self.shift, self.alpha)

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        from gan.nn.networks import pad_to_multiple

        h, w = content.shape[-2:]
        f = self.encoder_layers(self.encoder_input(pad_to_multiple(content, 8, minimum=16)))
        t = self.mix(self.content_norm(f), f)
        return self.decoder(t.to(f.dtype))[..., :h, :w]

    def band_program(self, norms: dict[int, int]):
        """forward over bands: pad to a multiple of 8 (at least 16), the encoder, the content statistics as a
        whole-image norm layer followed by the blend, the decoder, crop back."""
        from gan.nn.bandprog import Op, Program, ops_of

        ops = [Op("layer", self.encoder_input)] + ops_of(self.encoder_layers, norms)
        ops.append(Op("norm", index=norms[id(self.content_norm)], post=self.mix))
        return Program(ops + ops_of(self.decoder.layers, norms), 8, 16, 3)


class AdaINCore(nn.Module):
    """What exports hold: (content, style, alpha) -> stylized content, alpha a 0-dim tensor; content H and W
    multiples of 8 (callers pad and crop). The blend is the production one (mix_features)."""

    def __init__(self, net: AdaINNet):
        super().__init__()
        self.encoder, self.decoder = net.encoder, net.decoder

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        fc = self.encoder(content)["relu4_1"]
        fs = self.encoder(style)["relu4_1"]
        return self.decoder(mix_features(fc, [fs], None, alpha))


class AdaIN(TrainModel):
    optimizers = {"g": ("decoder",)}
    generators: dict[str, str] = {}  # no one-input generator: content and style come in together
    domains = ("A", "B")
    inputs = CONTENT_STYLE
    channels, channels_why = "rgb", "its encoder is VGG19, which takes RGB images"

    @classmethod
    def load_inference(cls, model_cfg: ModelConfig, state, path) -> AdaINNet:
        from gan import GanError

        nets = {}
        for name in ("encoder", "decoder"):
            net = cls.inference_net(model_cfg, name)
            saved = state(name)
            try:  # the trained encoder may hold deeper style layers than inference needs
                net.load_state_dict({k: saved[k] for k in net.state_dict()} if name == "encoder" else saved)
            except (RuntimeError, KeyError) as e:
                raise GanError(f"{path}: the {name} weights do not fit: {str(e).splitlines()[0]}") from None
            nets[name] = net
        return AdaINNet(nets["encoder"], nets["decoder"])

    @staticmethod
    def export_spec(net: AdaINNet) -> ExportSpec:
        g = torch.Generator().manual_seed(0)
        return ExportSpec(
            AdaINCore(net).eval(),
            (torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 3, 48, 48) * 2 - 1, torch.tensor(1.0)),
            ["content", "style", "alpha"], ["stylized"],
            {"content": {2: "height", 3: "width"}, "style": {2: "sh", 3: "sw"}, "stylized": {2: "height", 3: "width"}},
            (torch.rand(1, 3, 40, 56, generator=g) * 2 - 1, torch.rand(1, 3, 32, 24, generator=g) * 2 - 1,
             torch.tensor(0.7)),
            script=False, record={"inputs": ["content", "style", "alpha"]})

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        from gan.config.schema import VGG_LAYERS, require

        require_vgg_terms(cfg)
        for i, layer in enumerate(cfg.loss.vgg.style_layers):
            require(VGG_LAYERS.index(layer) <= VGG_LAYERS.index("relu4_1"), f"loss.vgg.style_layers[{i}]", layer,
                    "a layer up to relu4_1 with model kind adain (its encoder ends there)")

    def __init__(self, encoder: losses.VGGFeatures, decoder: Decoder, loss: LossConfig):
        super().__init__()
        self.encoder, self.decoder, self.loss_cfg = encoder, decoder, loss
        self.decoder_call: nn.Module = decoder

    @classmethod
    def build(cls, cfg: Config, device: torch.device, rank: int = 0, vgg_weights: str | None = None) -> "AdaIN":
        lo = cfg.loss
        encoder = losses.VGGFeatures(ENCODER_LAYERS + lo.vgg.style_layers, vgg_weights or lo.vgg.weights)
        return cls(encoder, init_decoder(Decoder()), lo).to(device)

    @property
    def nets(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    @staticmethod
    def inference_net(model_cfg: ModelConfig, name: str) -> nn.Module:
        if name == "decoder":
            return Decoder()
        if name == "encoder":
            return losses.VGGFeatures(ENCODER_LAYERS, "none")  # style layers never go deeper (config check)
        raise KeyError(name)

    def wrap(self, fn) -> None:
        self.decoder_call = fn(self.decoder_call)

    def loss(self, content: torch.Tensor, style: torch.Tensor
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        c = self.loss_cfg
        with torch.no_grad():
            fc = self.encoder(content)["relu4_1"]
            fs = self.encoder(style)
            t = adain(fc, fs["relu4_1"]).to(fc.dtype)
        out = self.decoder_call(t)
        fo = self.encoder(out)
        style_term = 0.0
        for k in c.vgg.style_layers:
            (mo, so), (ms, ss) = mean_std(fo[k]), mean_std(fs[k])
            style_term = style_term + F.mse_loss(mo, ms) + F.mse_loss(so, ss)
        terms = {"content": c.lambda_content * F.mse_loss(fo["relu4_1"].float(), t.float()),
                 "style": c.lambda_style * style_term}
        return sum(terms.values()), terms, out

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext
                      ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        content, style = batch["A"], batch["B"]
        with ctx.autocast():
            loss, terms, out = self.loss(content, style)
        ctx.update("g", loss, terms)
        return ({"loss_g": loss.detach(), **{k: v.detach() for k, v in terms.items()}},
                {"content": content, "style": style, "stylized": out.detach()})

    def sample_rows(self, images: dict[str, torch.Tensor]) -> tuple[list[list[torch.Tensor]], str]:
        n = min(4, images["content"].shape[0])
        return ([[images[k][i] for k in ("content", "style", "stylized")] for i in range(n)],
                "content | style | stylized")


def init_decoder(decoder: Decoder) -> Decoder:
    """Kaiming-normal convs (ReLU network), zero biases."""
    for m in decoder.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return decoder
