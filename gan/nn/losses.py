"""Pure loss functions, and the frozen VGG19 feature extractor for the hybrid (style-transfer) terms.

Notation: D(x) is a discriminator's raw output (a map of patch logits), G a generator, x in domain A,
y in domain B. Losses are computed in fp32 even under autocast.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan import GanError
from gan.config.schema import VGG_LAYERS


def gan_loss(pred: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    """Adversarial loss of predictions against the real/fake label.

    lsgan   (Mao et al. 2017):   mean((D - t)^2),                 t = 1 real, 0 fake
    vanilla (Goodfellow 2014):   BCEWithLogits(D, t)
    hinge   (Lim & Ye 2017):     real: mean(relu(1 - D)); fake: mean(relu(1 + D))  (discriminator side)
    """
    pred = pred.float()
    if mode == "lsgan":
        return F.mse_loss(pred, torch.full_like(pred, 1.0 if target_is_real else 0.0))
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(pred, torch.full_like(pred, 1.0 if target_is_real else 0.0))
    if mode == "hinge":
        return F.relu(1.0 - pred).mean() if target_is_real else F.relu(1.0 + pred).mean()
    raise ValueError(f"unknown gan_mode {mode!r}")


def generator_adv_loss(fake_pred: torch.Tensor, mode: str) -> torch.Tensor:
    """The generator wants D(G(x)) judged real: lsgan mean((D(G(x)) - 1)^2); vanilla BCE(D(G(x)), 1);
    hinge -mean(D(G(x)))."""
    if mode == "hinge":
        return -fake_pred.float().mean()
    return gan_loss(fake_pred, True, mode)


def discriminator_loss(real_pred: torch.Tensor, fake_pred: torch.Tensor, mode: str) -> torch.Tensor:
    """L_D = 0.5 * (loss(D(y), real) + loss(D(G(x)), fake)); halved as in the paper, to slow D relative to G."""
    return 0.5 * (gan_loss(real_pred, True, mode) + gan_loss(fake_pred, False, mode))


def cycle_loss(rec: torch.Tensor, real: torch.Tensor, lowpass: int = 1) -> torch.Tensor:
    """L_cyc = ||F(G(x)) - x||_1 (mean absolute error); the caller multiplies by lambda_cycle. With lowpass k > 1
    both images are k x k average-pooled first (edges padded by replication), so only what survives the
    pooling must come back."""
    rec, real = rec.float(), real.float()
    if lowpass > 1:
        pad = [0, (-rec.shape[-1]) % lowpass, 0, (-rec.shape[-2]) % lowpass]
        rec, real = (F.avg_pool2d(F.pad(t, pad, mode="replicate"), lowpass) for t in (rec, real))
    return F.l1_loss(rec, real)


def identity_loss(idt: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L_idt = ||G(y) - y||_1; weighted by lambda_identity * lambda_cycle, the reference convention."""
    return F.l1_loss(idt.float(), real.float())


def patch_nce_loss(q: torch.Tensor, k: torch.Tensor, batch: int, tau: float) -> torch.Tensor:
    """PatchNCE (Park et al. 2020, eq. 2-3), InfoNCE over patch embeddings of one layer.

    q, k: (batch * P, d) L2-normalised embeddings of the same P positions in the output (queries) and the
    input (keys), image by image. For the query at position i of an image, the key at i is the positive and
    the keys at that image's other P - 1 positions are the negatives (never another image's: the batch is
    taken from the tensors, so any batch size, the last smaller batch included, works):

        l_i = -log( exp(q_i.k_i / tau) / sum_j exp(q_i.k_j / tau) ),     loss = mean over images and i

    Keys are constants (detached), as in the paper."""
    d = q.shape[-1]
    q = q.float().reshape(batch, -1, d)
    k = k.detach().float().reshape(batch, -1, d)
    logits = torch.bmm(q, k.transpose(1, 2)) / tau  # (batch, P, P); the diagonal holds the positives
    target = torch.arange(q.shape[1], device=q.device).expand(batch, -1)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


def feature_matching_loss(fake: list[torch.Tensor], real: list[torch.Tensor], mode: str,
                          rng: torch.Generator | None = None) -> torch.Tensor:
    """Unpaired feature matching: the generator's outputs and real images of the target domain, each seen as a
    distribution of feature vectors (over the batch and every position) at each of a discriminator's layers,
    made alike layer by layer; averaged over layers. Real features are constants.

    moments  (Salimans et al. 2016 matched the means; here the standard deviations too, per channel c):
             mean_c (mu_c(fake) - mu_c(real))^2 + mean_c (sd_c(fake) - sd_c(real))^2
    swd      sliced Wasserstein distance (Heitz et al. 2021): the features projected on C random unit directions
             (C = the layer's channels, drawn from `rng` each call), each projection's values sorted (its
             quantiles), mean squared difference of the sorted values; a real set of another size is resampled to
             the fake set's size by linear interpolation of its quantiles

    A dense target that does not vanish when the discriminator wins: every feature the discriminator computes
    has its distribution on real images as the goal, whatever the logit says."""
    total = 0.0
    for f, r in zip(fake, real):
        f = f.float().transpose(0, 1).flatten(1)  # (C, N*H*W)
        r = r.detach().float().transpose(0, 1).flatten(1)
        if mode == "moments":
            total = total + (f.mean(1) - r.mean(1)).square().mean() + (f.std(1) - r.std(1)).square().mean()
        elif mode == "swd":
            total = total + sliced_wasserstein(f, r, f.shape[0], rng)
        else:
            raise ValueError(f"unknown feature matching mode {mode!r}")
    return total / max(1, len(fake))


def sliced_wasserstein(f: torch.Tensor, r: torch.Tensor, k: int, rng: torch.Generator | None = None) -> torch.Tensor:
    """Sliced Wasserstein distance (squared) between two sets of D-dim vectors, f (D, Nf) and r (D, Nr): both
    projected on k random unit directions (from `rng`, fresh each call), each projection's values sorted (its
    quantiles), the mean squared difference; r's quantiles are resampled to Nf by linear interpolation when the
    sizes differ. Its gradient moves each value of f to the value of r of the same rank, direction by direction:
    an order-preserving remapping (Heitz et al. 2021)."""
    directions = F.normalize(torch.randn(k, f.shape[0], generator=rng).to(f.device), dim=1)  # (k, D)
    pf = (directions @ f).sort(1).values  # (k, Nf)
    pr = (directions @ r.detach()).sort(1).values  # (k, Nr)
    if pr.shape[1] != pf.shape[1]:
        pr = F.interpolate(pr[None], size=pf.shape[1], mode="linear", align_corners=True)[0]
    return (pf - pr).square().mean()


def sliced_patch_loss(fake: torch.Tensor, real: torch.Tensor, size: int, stride: int, scales: int = 1,
                      rng: torch.Generator | None = None) -> torch.Tensor:
    """The output's size x size pixel patches (every `stride` px) and those of real images of the target domain,
    as two distributions, made alike by the sliced Wasserstein distance (one direction per patch dimension),
    at `scales` scales (each next one on the images average-pooled 2 x 2); averaged over scales.

    A dense, distribution-level target in pixels: no network, pretrained or learned, and no patch is copied (a
    nearest-patch target is a collage); what moves is the order-preserving remapping of each projection, so
    colours follow the paintings' per-direction histograms and local contrast its distribution: fine texture
    (small contrasts) goes flat, strong edges get the paintings' edges. Real patches are constants."""
    total = 0.0
    for k in range(scales):
        if k:
            fake, real = F.avg_pool2d(fake, 2), F.avg_pool2d(real, 2)
        pf = F.unfold(fake.float(), size, stride=stride).transpose(0, 1).flatten(1)  # (C*size*size, N*L)
        pr = F.unfold(real.float(), size, stride=stride).transpose(0, 1).flatten(1)
        total = total + sliced_wasserstein(pf, pr, pf.shape[0], rng)
    return total / scales


def nearest_patch_loss(fake: torch.Tensor, real: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """Each size x size patch of the generator's output (taken every `stride` pixels) pulled toward its nearest
    patch (L2, in pixels) among the patches of real images of the target domain: mean squared difference.

    Non-parametric texture matching (Li & Wand 2016 matched VGG patches; here the pixels themselves, so no
    pretrained network is needed), for unaligned images (Mechrez et al. 2018's contextual loss has the same aim):
    every output patch gets a target of its own, as a paired loss would, drawn from the paintings. A textured
    photo patch finds a flat painted one of its colour; an edge finds a painted edge, outline included. The real
    patches are constants. (N, C, H, W) each, any sizes of at least `size`."""
    def patches(x: torch.Tensor) -> torch.Tensor:
        return F.unfold(x.float(), size, stride=stride).transpose(1, 2).flatten(0, 1)  # (patches, C*size*size)

    p, bank = patches(fake), patches(real.detach())
    with torch.no_grad():  # nearest by |p - q|^2 = |p|^2 - 2 p.q + |q|^2 (|p|^2 is the same for every q)
        nearest = (bank.square().sum(1)[None] - 2 * p.detach() @ bank.T).argmin(1)
    return F.mse_loss(p, bank[nearest])


def judged_with_feature_matching(d: nn.Module, fake: torch.Tensor, real: torch.Tensor, mode: str,
                                 rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(d's logits for `fake`, feature_matching_loss of d's features of `fake` against those of `real`) in one
    pass over `fake` (the real features computed without a graph): the generator update's adversarial and
    feature-matching terms of one discriminator."""
    pred, feats = d(fake, features=True)
    with torch.no_grad():
        _, real_feats = d(real, features=True)
    return pred, feature_matching_loss(feats, real_feats, mode, rng)


def r1_weight(step: int, gamma: float, every: int) -> float:
    """The weight of the lazy R1 term at `step`: gamma / 2 x every on every every-th step (StyleGAN2's lazy
    regularisation keeps the average weight gamma / 2), else 0 (no penalty computed)."""
    return gamma / 2 * every if gamma > 0 and step % every == 0 else 0.0


def r1_penalty(pred: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E ||d D(y) / dy||^2 on real images y, D(y) the mean patch logit of each image,
    with the graph kept so the penalty trains the discriminator. `real` must require grad and `pred` come from
    it. The caller weighs it by gamma / 2 (and, applied every k-th step only, by k: StyleGAN2's lazy form)."""
    grad, = torch.autograd.grad(pred.float().flatten(1).mean(1).sum(), real, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (c*h*w) for features (n, c, h, w) -> (n, c, c) (Gatys et al. 2016; normalised as in
    pytorch/examples fast_neural_style)."""
    n, c, h, w = feat.shape
    f = feat.float().reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def content_loss(feats: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    """L_content = sum over layers l of mean((phi_l(G(x)) - phi_l(x))^2); target features are constants."""
    return sum(F.mse_loss(feats[k].float(), target[k].detach().float()) for k in target)


def style_loss(feats: dict[str, torch.Tensor], target_grams: dict[str, torch.Tensor]) -> torch.Tensor:
    """L_style = sum over layers l of mean((Gram(phi_l(G(x))) - Gram_l(style))^2). Target grams of shape
    (1, c, c) or (n, c, c) are averaged over their batch so any number of style images works."""
    total = 0.0
    for k, g_target in target_grams.items():
        g = gram_matrix(feats[k])
        total = total + F.mse_loss(g, g_target.detach().float().mean(0, keepdim=True).expand_as(g))
    return total


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """L_tv = mean((x[i+1, j] - x[i, j])^2) + mean((x[i, j+1] - x[i, j])^2): penalises pixel noise."""
    x = x.float()
    return (x[..., 1:, :] - x[..., :-1, :]).square().mean() + (x[..., :, 1:] - x[..., :, :-1]).square().mean()


def feature_mean_cov(feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (1, c, h, w) -> channel mean (c,) and covariance (c, c) over the h*w positions."""
    f = feat.float().reshape(feat.shape[1], -1)
    mean = f.mean(1)
    centred = f - mean[:, None]
    return mean, centred @ centred.T / f.shape[1]


def sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    vals, vecs = torch.linalg.eigh(m.double())
    return ((vecs * vals.clamp_min(0).sqrt()) @ vecs.T).to(m.dtype)


def wasserstein_style_loss(feats: dict[str, torch.Tensor],
                           targets: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Squared 2-Wasserstein distance between Gaussians fitted to the features and to the style, per layer,
    divided by the channel count, summed over layers:

        W2^2 = |mu - mu_s|^2 + tr(C) + tr(C_s) - 2 tr((C_s^1/2 C C_s^1/2)^1/2)

    `targets[layer]` = (mu_s, C_s, C_s^1/2), computed once. Matches means and covariances (a Gram matrix
    mixes the two), which transfers colour and texture more faithfully."""
    total = 0.0
    for k, (mu_s, cov_s, sqrt_s) in targets.items():
        mu, cov = feature_mean_cov(feats[k])
        inner = sqrt_s @ cov @ sqrt_s
        # In float64: float32 eigensolvers fail to converge on the near-singular matrices of small images
        # (few positions, many channels), on some CPUs' LAPACK kernels.
        eig = torch.linalg.eigvalsh(0.5 * (inner + inner.T).double())
        cross = eig.clamp_min(0).add(1e-8).sqrt().sum().to(inner.dtype)
        w2 = (mu - mu_s).square().sum() + cov.diagonal().sum() + cov_s.diagonal().sum() - 2 * cross
        total = total + w2 / mu.shape[0]
    return total


@torch.no_grad()
def mean_gram_matrices(vgg: nn.Module, batches, layers: tuple[str, ...] | list[str],
                       device: torch.device | str) -> dict[str, torch.Tensor]:
    """Mean Gram matrix per layer, (1, c, c), over every image of an iterable of (n, 3, h, w) batches. One
    batch is on the device at a time (no graph is kept), so the memory is one batch's, not the whole set's."""
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for x in batches:
        feats = vgg(x.to(device))
        for k in layers:
            g = gram_matrix(feats[k]).double().sum(0, keepdim=True)
            sums[k] = g if k not in sums else sums[k] + g
        count += x.shape[0]
    if count == 0:
        raise ValueError("mean_gram_matrices: no image")
    return {k: (v / count).float() for k, v in sums.items()}


# ------------------------------------------------------------------------------------------------ VGG

_VGG_INDEX = {}  # relu name -> index in torchvision's vgg19().features
_block, _conv, _i = 1, 0, 0
for _n in (2, 2, 4, 4, 4):
    for _conv in range(1, _n + 1):
        _VGG_INDEX[f"relu{_block}_{_conv}"] = _i + 1  # conv at _i, its ReLU at _i + 1
        _i += 2
    _i += 1  # max pool
    _block += 1
assert tuple(_VGG_INDEX) == VGG_LAYERS and _VGG_INDEX["relu4_2"] == 22 and _VGG_INDEX["relu5_1"] == 29

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's file name for VGG19_Weights.IMAGENET1K_V1


def _hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


class VGGFeatures(nn.Module):
    """Frozen VGG19 (Simonyan & Zisserman 2015) returning named ReLU activations for [-1, 1] images.

    `weights`: "imagenet" (torchvision's IMAGENET1K_V1, downloaded once into TORCH_HOME), a path to a local
    vgg19 state_dict, or "none" (random weights: tests only). Always eval, never trainable. `option` is how
    the user sets the weights (config key or command-line flag), for the messages.
    """

    def __init__(self, layers: list[str] | tuple[str, ...], weights: str = "imagenet",
                 option: str = "loss.vgg.weights"):
        super().__init__()
        self.layers = tuple(dict.fromkeys(layers))
        last = max(_VGG_INDEX[name] for name in self.layers)
        features = _vgg19_features()[: last + 1]
        _load_vgg_weights(features, weights, option)
        self.features = features
        self.names = {idx: name for name, idx in _VGG_INDEX.items() if name in self.layers}
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # frozen: always eval

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = vgg_input(x, self.mean, self.std)
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.names:
                out[self.names[i]] = x
        return out


def vgg_input(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] -> ImageNet normalisation with VGGFeatures' mean and std, per pixel; out-of-place so
    the caller's tensor is untouched."""
    return ((x + 1) * 0.5 - mean) / std


def _vgg19_features() -> nn.Sequential:
    """torchvision's vgg19().features layout (config "E"), without building the 120M-parameter classifier."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=False)]
            c_in = v
    return nn.Sequential(*layers)


def _load_vgg_weights(features: nn.Sequential, weights: str, option: str) -> None:
    """Load the first len(features) layers of vgg19().features from torchvision or a local state_dict."""
    if weights == "none":
        import logging

        logging.getLogger("gan").warning(
            "%s=none: VGG19 has random weights, so its losses measure nothing about content or style and the "
            "pictures will mean nothing (for tests only); use imagenet or a local %s", option, VGG19_FILE)
        return
    if weights == "imagenet":
        from torchvision.models import VGG19_Weights

        try:
            state = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=False)
        except Exception as e:  # URLError, socket errors, HTTP errors: all mean "could not fetch"
            from gan.network import network_problem

            raise GanError(
                f"could not load the VGG19 ImageNet weights: {network_problem(e)}. Without internet, "
                f"download {VGG19_Weights.IMAGENET1K_V1.url} elsewhere and either place it at "
                f"{_hub_dir() / VGG19_FILE} (TORCH_HOME={os.environ.get('TORCH_HOME', 'unset')}) or set "
                f"{option}=/path/to/{VGG19_FILE}"
            ) from None
    else:
        path = Path(weights)
        if not path.is_file():
            raise GanError(f"{option}: file not found: {path} (expected a torchvision vgg19 state_dict "
                           f"such as {VGG19_FILE}; or use 'imagenet')")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise GanError(f"{option}: cannot read {path} as a state_dict: {e}") from None
    if not isinstance(state, dict):
        raise GanError(f"VGG19 weights {weights}: expected a state_dict, got {type(state).__name__}")
    wanted = set(features.state_dict())
    # torchvision's keys are features.<i>.weight/bias; accept them with or without the prefix.
    sub = {k.removeprefix("features."): v for k, v in state.items()}
    sub = {k: v for k, v in sub.items() if k in wanted}
    missing = sorted(wanted - set(sub))
    if missing:
        raise GanError(f"VGG19 weights {weights}: missing feature layers {missing[:3]} (expected torchvision's "
                       f"vgg19 state_dict, such as {VGG19_FILE})")
    features.load_state_dict(sub)


def style_grams_from_files(vgg: VGGFeatures, folder: str | Path, size: int, layers: tuple[str, ...],
                           device: torch.device, chunk: int = 4) -> dict[str, torch.Tensor]:
    """Mean Gram matrices of every image in a file or folder, read and passed through VGG `chunk` images at a
    time under no_grad: memory stays that of one chunk, whatever the number of style images (the style kind's
    target, and CycleGAN's hybrid mode with loss.vgg.style_images)."""
    from gan.data.datasets import style_image_batches

    return mean_gram_matrices(vgg, style_image_batches(folder, size, chunk), layers, device)
