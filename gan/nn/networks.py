"""ResNet generator, PatchGAN discriminator, weight init, and loading of reference CycleGAN generators.

The generator keeps the exact module layout of junyanz/pytorch-CycleGAN-and-pix2pix's ResnetGenerator
(one `nn.Sequential` called `model`, residual blocks with a `conv_block`), so the reference's pretrained
zoo loads key for key. Indices with `upsample="transpose"` and no dropout (9 blocks):

    model.0  ReflectionPad2d(3)     model.1  Conv 7x7 in->ngf       model.2-3  norm, ReLU
    model.4  Conv 3x3 s2 ngf->2ngf  model.7  Conv 3x3 s2 2ngf->4ngf
    model.10 .. model.18  ResnetBlock(4ngf): conv_block.1 and conv_block.5 are the convs
    model.19, model.22  ConvTranspose 3x3 s2 (output_padding 1)   model.26  Conv 7x7 ngf->out, then tanh
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from gan import GanError
from gan.nn.bandprog import Op, Program, ops_of
from gan.config.schema import AUGMENTS, DiscriminatorConfig, GeneratorConfig, InitConfig, ModelConfig


def norm_layer(kind: str) -> type[nn.Module] | functools.partial | None:
    """instance: affine off and no running statistics (as the reference); batch: affine; none: identity."""
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True)
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}")


def _norm(kind: str, channels: int) -> nn.Module:
    layer = norm_layer(kind)
    return nn.Identity() if layer is None else layer(channels)


class ResnetBlock(nn.Module):
    """x + conv_block(x), conv_block = pad, conv3x3, norm, ReLU, [dropout 0.5], pad, conv3x3, norm."""

    def __init__(self, dim: int, norm: str, dropout: bool, use_bias: bool):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), _norm(norm, dim), nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), _norm(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)

    def band_ops(self, norms: dict[int, int]) -> list[Op]:
        """forward over bands: remember x, the block's layers, add x back."""
        return [Op("push")] + ops_of(self.conv_block, norms) + [Op("add")]


class ColorPath(nn.Module):
    """A learnable per-pixel colour map beside the ResNet branch: an affine colour matrix (1x1 conv) plus a
    small pointwise MLP for tone curves, y = A x + b + W2 relu(W1 x + b1). Initialised to the identity
    (A = I, b = 0, W2 = 0). Instance norm removes each image's absolute colour statistics inside the ResNet
    branch, so a plain generator cannot apply a global colour grade directly; this path can."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 16):
        super().__init__()
        self.affine = nn.Conv2d(in_channels, out_channels, 1)
        self.hidden = nn.Conv2d(in_channels, hidden, 1)
        self.out = nn.Conv2d(hidden, out_channels, 1)
        self.reset_identity()

    def reset_identity(self) -> None:
        with torch.no_grad():
            eye = torch.zeros_like(self.affine.weight)
            for c in range(min(eye.shape[0], eye.shape[1])):
                eye[c, c] = 1.0
            self.affine.weight.copy_(eye)
            self.affine.bias.zero_()
            self.out.weight.zero_()
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.affine(x) + self.out(torch.relu(self.hidden(x)))


class BlurPool2d(nn.Module):
    """Anti-aliased downsampling by 2 (Zhang 2019, "Making convolutional networks shift-invariant again"):
    reflect-pad 1, blur with the separable binomial filter [1, 2, 1] / 4 per axis, keep every second pixel.
    The filter is fixed (a buffer, not a parameter) and each channel is filtered on its own."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        k = torch.outer(k, k) / 16.0
        self.register_buffer("kernel", k.expand(channels, 1, 3, 3).clone(), persistent=False)

    # How the band runner computes it over rows (gan.inference.tiling): output rows per input row, input rows needed on
    # each side of a band (the filter's reach, its padding and the stride), and the stride bands align to.
    band_layer = {"scale": (1, 2), "reach": 3, "align": 2}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.kernel.to(x.dtype), stride=2, groups=x.shape[1])


class ResnetGenerator(nn.Module):
    """The CycleGAN generator (Johnson et al. 2016 as used by Zhu et al. 2017): c7s1-ngf, d2ngf, d4ngf,
    n_blocks x R4ngf, u2ngf, ungf, c7s1-out, tanh.

    Any input size works: height and width are reflect-padded up to a multiple of 4 (the two stride-2
    stages) and the output is cropped back, so output size == input size.

    `antialias` (CUT's default, not the reference's): each downsampling stage is conv (stride 1), norm, ReLU,
    `BlurPool2d`; each upsampling stage is a bilinear x2 resize (the binomial [1, 3, 3, 1] blur of a
    zero-stuffed image), then pad, conv, norm, ReLU. Module indices then match CUT's generator, whose
    PatchNCE layers 0, 4, 8, 12, 16 are the padded input, the two downsampling convs and residual blocks 1
    and 5.

    `skip` (not in the reference): "identity" makes G(x) = x + R(x), "color" G(x) = C(x) + R(x) with C a
    `ColorPath`, where R is the ResNet branch without the final tanh and its last conv starts at zero: the
    generator starts as the identity map (exactly: G(x) == x at step 0, any size), so training starts from
    "change nothing" instead of from noise. Outputs are not squashed by a tanh then; they are clamped to
    [-1, 1] where images are written.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", dropout: bool = False, upsample: str = "transpose", skip: str = "none",
                 antialias: bool = False, skip_fade: bool = False, padding: str = "zeros"):
        super().__init__()
        # As in the reference: batch norm has its own shift, so convs before it need no bias.
        use_bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=use_bias), _norm(norm, ngf), nn.ReLU(True),
        ]
        for i in range(2):  # downsampling
            c = ngf * 2**i
            if antialias:
                layers += [nn.Conv2d(c, c * 2, 3, padding=1, bias=use_bias), _norm(norm, c * 2), nn.ReLU(True),
                           BlurPool2d(c * 2)]
            else:
                # A 3x3 stride-2 conv pads only the top and left rows it reads (rows -1, 1, ... of an even height):
                # with zeros the network sees a dark line above and left of every image and draws streaks along
                # those edges; `padding="reflect"` (same weights) sees the image there instead
                layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1, bias=use_bias, padding_mode=padding),
                           _norm(norm, c * 2), nn.ReLU(True)]
        for _ in range(n_blocks):
            layers.append(ResnetBlock(ngf * 4, norm, dropout, use_bias))
        for i in range(2):  # upsampling
            c = ngf * 2 ** (2 - i)
            if antialias:
                layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.ReflectionPad2d(1),
                           nn.Conv2d(c, c // 2, 3, bias=use_bias)]
            elif upsample == "transpose":
                layers.append(nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=use_bias))
            elif upsample == "resize_conv":
                # Odena et al. 2016: nearest resize + conv has no uneven kernel overlap, so no checkerboard.
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                           nn.Conv2d(c, c // 2, 3, bias=use_bias)]
            else:
                raise ValueError(f"unknown upsample {upsample!r}")
            layers += [_norm(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7)]
        if skip == "none":
            layers.append(nn.Tanh())
        elif skip == "identity" and in_channels != out_channels:
            raise ValueError("skip='identity' needs in_channels == out_channels")
        elif skip not in ("identity", "color"):
            raise ValueError(f"unknown skip {skip!r}")
        self.model = nn.Sequential(*layers)
        self.has_skip = skip != "none"
        self.skip = ColorPath(in_channels, out_channels) if skip == "color" else nn.Identity()
        # The skip path's weight, 1 unless it fades (model.generator.skip_fade: set by the training step, kept in
        # the weights then, so inference runs the faded generator)
        self.register_buffer("skip_scale", torch.ones(()), persistent=skip_fade)
        self.start_as_identity()

    def start_as_identity(self) -> None:
        """With a skip path: zero the ResNet branch's last conv and reset the colour path, so G(x) == x.
        (Called again after weight initialisation, which would overwrite both.)"""
        if not self.has_skip:
            return
        last = self.model[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()
        if isinstance(self.skip, ColorPath):
            self.skip.reset_identity()

    def features(self, x: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
        """The outputs of `self.model[i]` for each i in `layers` (ascending), for an input whose H and W are
        multiples of 4; only the layers up to the last one asked for are run."""
        feats, last = [], max(layers)
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in layers:
                feats.append(x)
            if i == last:
                break
        return feats

    def skip_path(self, x: torch.Tensor) -> torch.Tensor:
        """What the skip path adds: C(x) (or x), times its fading weight."""
        return self.skip(x) * self.skip_scale.to(x.dtype)

    def core(self, x: torch.Tensor) -> torch.Tensor:
        """The network on an input whose H and W are multiples of 4 (what ONNX exports)."""
        y = self.model(x)
        if self.has_skip:
            y = y + self.skip_path(x)
        return y

    pad_rule = (4, 8)  # forward pads H and W to a multiple of 4, at least 8 (the two stride-2 stages)
    __constants__ = ["pad_rule"]  # (TorchScript)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.pad_rule[0], self.pad_rule[1])
        return self.core(x)[..., :h, :w]

    def band_program(self, norms: dict[int, int]) -> Program:
        """forward over bands (gan.inference.tiling): pad to a multiple of 4 (at least 8), the layers of `model`, plus
        the skip path of the input, crop back."""
        ops = ops_of(self.model, norms)
        if self.has_skip:
            ops.append(Op("input_add", self.skip_path))
        last = self.model[-1] if not isinstance(self.model[-1], nn.Tanh) else self.model[-2]
        return Program(ops, *self.pad_rule, last.out_channels)


def pad_to_multiple(x: torch.Tensor, multiple: int, minimum: int = 1) -> torch.Tensor:
    """Pad bottom/right so H and W are multiples of `multiple` and at least `minimum` (reflect where the
    image is large enough for it, replicate otherwise)."""
    h, w = x.shape[-2:]
    th = max(-(-h // multiple) * multiple, minimum)
    tw = max(-(-w // multiple) * multiple, minimum)
    ph, pw = th - h, tw - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020), differentiable in x, each image of the batch drawn on its own from the
    global generator of x's device (checkpointed, so resumes repeat it):

        translation  shift by up to 1/8 of the size each way, zeros (mid-grey) shifted in
        cutout       a zeroed square of half the size at a random place
        color        brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5] (hides colour from the judge:
                     not for looks that are mostly colour)
        noise        Gaussian noise of standard deviation 0.1 on every pixel (instance noise, Sonderby et al. 2016:
                     a judge of noisy images is a smoothed one, whose gradient varies slowly)
    """
    n, _, h, w = x.shape
    dev = x.device
    for name in policy:
        if name == "color":
            x = x + (torch.rand(n, 1, 1, 1, device=dev) - 0.5)
            mean = x.mean(1, keepdim=True)
            x = (x - mean) * (torch.rand(n, 1, 1, 1, device=dev) * 2) + mean
            mean = x.mean((1, 2, 3), keepdim=True)
            x = (x - mean) * (torch.rand(n, 1, 1, 1, device=dev) + 0.5) + mean
        elif name == "translation":
            dy, dx = (torch.randint(-(s // 8), s // 8 + 1, (n,), device=dev) for s in (h, w))
            pad = (w // 8, w // 8, h // 8, h // 8)
            padded = F.pad(x, pad)
            rows = (torch.arange(h, device=dev)[None] + h // 8 - dy[:, None])  # (n, h)
            cols = (torch.arange(w, device=dev)[None] + w // 8 - dx[:, None])  # (n, w)
            idx = torch.arange(n, device=dev)[:, None, None]
            x = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        elif name == "noise":
            x = x + 0.1 * torch.randn(x.shape, device=dev, dtype=x.dtype)
        elif name == "cutout":
            ch, cw = h // 2, w // 2
            top = torch.randint(0, h - ch + 1, (n, 1, 1), device=dev)
            left = torch.randint(0, w - cw + 1, (n, 1, 1), device=dev)
            yy = torch.arange(h, device=dev)[None, :, None]
            xx = torch.arange(w, device=dev)[None, None, :]
            keep = ~((yy >= top) & (yy < top + ch) & (xx >= left) & (xx < left + cw))
            x = x * keep[:, None].to(x.dtype)
        else:
            raise ValueError(f"unknown augmentation {name!r}; expected one of {', '.join(AUGMENTS)}")
    return x.contiguous()


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): C64-C128-C256-C512 with 4x4 convs, LeakyReLU 0.2, no norm on the first
    layer, one logit per overlapping patch. n_layers=3 gives the 70x70 receptive field."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 spectral_norm: bool = False, recon: bool = False):
        super().__init__()
        use_bias = norm != "batch"
        sn = torch.nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = [sn(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, True)]
        mult, coarse = 1, (1, ndf)  # (index, channels) of the coarsest downsampled activation
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                sn(nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=use_bias)),
                _norm(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
            if stride == 2:
                coarse = (len(layers) - 1, ndf * mult)
        layers.append(sn(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)))
        self.model = nn.Sequential(*layers)
        self.augment: tuple[str, ...] = ()  # DiffAugment policy, applied in training mode only
        # FastGAN's self-supervised discriminator: a small decoder rebuilds the real image from the coarsest
        # activation (1 / 2^n_layers of its size), so those features must describe the image, not only the logit
        self.coarse = coarse[0]
        self.decoder = _Decoder(coarse[1], in_channels, n_layers) if recon else None

    def forward(self, x: torch.Tensor, features: bool = False, recon: bool = False):
        """Patch logits (N, 1, h, w); with `features`, (logits, [what each conv but the last computes, before its
        norm]) in one pass: the statistics a norm removes are part of what feature matching compares. With
        `recon` (a net built with recon), (logits, the decoder's rebuild of what the net saw (after DiffAugment),
        that image)."""
        if self.augment and self.training:
            x = diff_augment(x, self.augment)
        if not features and not recon:
            return self.model(x)
        seen, feats, rebuilt, last = x, [], None, len(self.model) - 1
        for i, layer in enumerate(self.model):
            x = layer(x)
            if features and isinstance(layer, nn.Conv2d) and i != last:
                feats.append(x)
            if recon and i == self.coarse:
                rebuilt = self.decoder(x, seen.shape[-2:])
        return (x, feats) if features else (x, rebuilt, seen)


class _Decoder(nn.Module):
    """FastGAN's SimpleDecoder, in the discriminator's terms: `stages` x (nearest x2, conv 3x3, LeakyReLU), the
    channels halving (at least 16), then conv 3x3 to the image's channels and tanh, resized to the image's size."""

    def __init__(self, channels: int, out_channels: int, stages: int):
        super().__init__()
        layers: list[nn.Module] = []
        c = channels
        for _ in range(stages):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, max(16, c // 2), 3, padding=1),
                       nn.LeakyReLU(0.2, True)]
            c = max(16, c // 2)
        layers += [nn.Conv2d(c, out_channels, 3, padding=1), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, size) -> torch.Tensor:
        y = self.layers(x)
        return y if tuple(y.shape[-2:]) == tuple(size) else F.interpolate(y, size=tuple(size), mode="bilinear",
                                                                          align_corners=False)


class MultiScaleDiscriminator(nn.Module):
    """pix2pixHD's multi-scale discriminator (Wang et al. 2018): `scales` PatchGANs of the same shape, the k-th
    judging the image average-pooled k times (3x3, stride 2, padding not counted), so the coarse ones see
    layout and the full-resolution one local texture and lines. The patch logits of all scales come out as
    one (N, P) tensor, so every adversarial loss (a mean over patches) works unchanged; each scale weighs by
    its number of patches."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 spectral_norm: bool = False, scales: int = 2, recon: bool = False):
        super().__init__()
        self.nets = nn.ModuleList(PatchDiscriminator(in_channels, ndf, n_layers, norm, spectral_norm, recon and k == 0)
                                  for k in range(scales))  # (the finest scale rebuilds the image)
        self.augment: tuple[str, ...] = ()  # DiffAugment policy (once, before the scales), training mode only

    def forward(self, x: torch.Tensor, features: bool = False, recon: bool = False):
        """(N, P) logits of every scale; with `features`, (logits, every scale's features, finest first); with
        `recon`, (logits, the finest scale's rebuild, what it saw)."""
        if self.augment and self.training:
            x = diff_augment(x, self.augment)
        out, feats, rebuilt = [], [], None
        for k, net in enumerate(self.nets):  # (the scales' own nets never augment: this one did, once)
            if k:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            y = net(x, features, recon and k == 0)
            if features:
                y, f = y
                feats += f
            elif recon and k == 0:
                y, rebuilt, seen = y
            out.append(y.flatten(1))
        logits = torch.cat(out, 1)
        return (logits, feats) if features else ((logits, rebuilt, seen) if recon else logits)


def init_weights(net: nn.Module, cfg: InitConfig) -> nn.Module:
    """Conv/linear weights from N(0, gain) | xavier | kaiming | orthogonal, biases 0; norm weights N(1, gain)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            # Spectral norm keeps the raw weight in parametrizations.weight.original.
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            if cfg.type == "normal":
                nn.init.normal_(w, 0.0, cfg.gain)
            elif cfg.type == "xavier":
                nn.init.xavier_normal_(w, gain=cfg.gain)
            elif cfg.type == "kaiming":
                nn.init.kaiming_normal_(w, a=0, mode="fan_in")
            elif cfg.type == "orthogonal":
                nn.init.orthogonal_(w, gain=cfg.gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, cfg.gain)
            nn.init.zeros_(m.bias)
    return net


def build_generator(cfg: ModelConfig, in_channels: int | None = None, out_channels: int | None = None,
                    init: bool = True) -> ResnetGenerator:
    g: GeneratorConfig = cfg.generator
    net = ResnetGenerator(in_channels or cfg.in_channels, out_channels or cfg.out_channels, g.ngf, g.n_blocks,
                          g.norm, g.dropout, g.upsample, g.skip, g.antialias, g.skip_fade > 0, g.padding)
    if init:
        init_weights(net, cfg.init)
        net.start_as_identity()  # the init above overwrote the skip path's identity start
    return net


def inference_generator(cfg: ModelConfig, name: str, names: tuple[str, ...] = ("g_ab", "g_ba")) -> ResnetGenerator:
    """An untrained generator `name` (g_ab: in -> out channels, g_ba: back) for loading weights into;
    KeyError for a name the kind does not have (`names`)."""
    if name not in names:
        raise KeyError(name)
    channels = {"g_ab": (cfg.in_channels, cfg.out_channels), "g_ba": (cfg.out_channels, cfg.in_channels)}[name]
    return build_generator(cfg, *channels, init=False)


def build_discriminator(cfg: ModelConfig, in_channels: int, init: bool = True) -> nn.Module:
    d: DiscriminatorConfig = cfg.discriminator
    if d.scales > 1:
        net = MultiScaleDiscriminator(in_channels, d.ndf, d.n_layers, d.norm, d.spectral_norm, d.scales, d.recon > 0)
    else:
        net = PatchDiscriminator(in_channels, d.ndf, d.n_layers, d.norm, d.spectral_norm, d.recon > 0)
    net.augment = tuple(d.augment)
    return init_weights(net, cfg.init) if init else net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# ------------------------------------------------------------------------ reference zoo compatibility

_REF_STATS = ("running_mean", "running_var", "num_batches_tracked")


def is_reference_state_dict(sd: dict) -> bool:
    """True for a plain ResnetGenerator state_dict from junyanz/pytorch-CycleGAN-and-pix2pix."""
    return (isinstance(sd, dict) and "model.1.weight" in sd
            and any(k.startswith("model.") and ".conv_block." in k for k in sd)
            and all(isinstance(v, torch.Tensor) for v in sd.values()))


def clean_reference_state_dict(sd: dict) -> dict:
    """Drop the InstanceNorm running-stat keys old reference files carry (the nets never used them) and a
    DataParallel `module.` prefix."""
    out = {}
    for k, v in sd.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if k.rsplit(".", 1)[-1] in _REF_STATS:
            continue
        out[k] = v
    return out


def _reference_arch(sd: dict) -> tuple[GeneratorConfig, int, int]:
    first = sd["model.1.weight"]  # (ngf, in, 7, 7)
    ngf, in_channels = first.shape[0], first.shape[1]
    blocks = {int(k.split(".")[1]) for k in sd if ".conv_block." in k}
    dropout = any(k.endswith("conv_block.6.weight") for k in sd)
    last = max(int(k.split(".")[1]) for k in sd if k.endswith(".weight"))
    out_channels = sd[f"model.{last}.weight"].shape[0]
    # Batch-norm reference nets have no conv biases; instance-norm ones do.
    norm = "instance" if "model.1.bias" in sd else "batch"
    return GeneratorConfig(ngf=ngf, n_blocks=len(blocks), norm=norm, dropout=dropout), in_channels, out_channels


def load_reference_generator(sd: dict) -> tuple[ResnetGenerator, GeneratorConfig]:
    """Build our generator from a reference state_dict (architecture from the keys) and load it strictly."""
    sd = clean_reference_state_dict(sd)
    if not is_reference_state_dict(sd):
        raise GanError("not a reference CycleGAN ResnetGenerator state_dict (no model.1.weight / conv_block keys)")
    gcfg, in_channels, out_channels = _reference_arch(sd)
    net = ResnetGenerator(in_channels, out_channels, gcfg.ngf, gcfg.n_blocks, gcfg.norm, gcfg.dropout)
    if gcfg.norm == "batch":
        # Batch-norm reference nets keep running stats; they belong in the module, not dropped.
        raise GanError("reference generators with batch norm are not supported (only instance norm)")
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise GanError(f"reference generator does not match the inferred architecture (ngf {gcfg.ngf}, "
                       f"{gcfg.n_blocks} blocks): missing {missing[:4]}, unexpected {unexpected[:4]}")
    return net, gcfg


def fade_skips(nets, step: int, steps: int) -> None:
    """model.generator.skip_fade: the skip paths of `nets` weigh 1 - step / steps (0 from then on): a generator
    that starts as the identity map and ends as a plain one, whose branch carries the whole image."""
    if steps > 0:
        for net in nets:
            net.skip_scale.fill_(max(0.0, 1.0 - step / steps))
