"""Image-set metrics: FID, KID and MiFID through torchmetrics, plus an edge-SSIM that needs no weights.

    scorer = Scorer(["fid", "kid", "edge_ssim"])          # Inception from torchmetrics/torch-fidelity
    scorer.add_real(real_uint8)                             # (N, 3, H, W) uint8, any H, W
    scorer.add_fake(fake_uint8, sources=input_uint8)        # sources: the inputs (for edge_ssim)
    scorer.compute()  -> {"fid": ..., "kid": ..., "kid_std": ..., "edge_ssim": ...}

Features are extracted once per image (images resized to 299x299, bicubic with antialiasing, as Inception
expects) and the three torchmetrics metrics are fed those features. The extractor is injectable (`feature=`
any module mapping uint8 (N, 3, 299, 299) to (N, D); tests use a tiny one). The standard extractor is the
FID Inception (weights-inception-2015-12-05-6726825d.pth), loaded by torch-fidelity as torchmetrics does, or from a local file.

edge_ssim: SSIM between the Sobel edge maps of each input and its translation (grayscale, same size):
how much of the content's structure survives the translation (1 = all). Higher is better; for the
Inception metrics lower is better.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan import GanError, ImageDecodeError
from gan.data.io import load_image, resize_center_crop, to_chw

log = logging.getLogger("gan")



def inception_url() -> str:
    """The URL torch-fidelity (behind torchmetrics) downloads the FID Inception weights from: its own constant,
    so the file name we tell offline users is the one the installed version really loads."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
    except ImportError:
        raise GanError("FID/KID/MiFID need torchmetrics and torch-fidelity: pip install torchmetrics torch-fidelity"
                       ) from None
    return URL_INCEPTION_V3


def inception_file() -> str:
    return inception_url().rsplit("/", 1)[-1]

HIGHER_IS_BETTER = {"edge_ssim"}
METRICS = ("fid", "kid", "mifid", "edge_ssim")


def inception(weights: str | None = None) -> nn.Module:
    """The FID Inception-v3 feature extractor (2048-d pool features), with a clear error offline."""
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError:
        raise GanError("FID/KID/MiFID need torchmetrics and torch-fidelity: pip install torchmetrics torch-fidelity"
                       ) from None
    url = inception_url()
    cached = Path(torch.hub.get_dir()) / "checkpoints" / inception_file()
    path = weights or (str(cached) if cached.is_file() else None)
    if weights and not Path(weights).is_file():
        raise GanError(f"Inception weights not found: {weights} (expected {inception_file()})")
    try:
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                 feature_extractor_weights_path=path)
    except Exception as e:  # download failures surface as URLError/OSError/RuntimeError
        from gan.network import network_problem

        raise GanError(
            f"could not load the FID Inception weights: {network_problem(e)}."
            f" Without internet, download {url} elsewhere and place it at {cached} "
            f"(TORCH_HOME={os.environ.get('TORCH_HOME', 'unset')}), or pass its path (--inception-weights / "
            "eval.inception_weights). edge_ssim needs no weights."
        ) from None
    return net.eval()


class _Features(nn.Module):
    """Pass-through for torchmetrics: the features are computed once, outside."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def resize_299(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8 (N, 3, 299, 299), bicubic with antialiasing."""
    if images.shape[-2:] == (299, 299):
        return images
    x = F.interpolate(images.float(), size=(299, 299), mode="bicubic", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def sobel_edges(images: torch.Tensor) -> torch.Tensor:
    """uint8 or float (N, 3, H, W) -> edge magnitude of the grayscale image (N, 1, H, W), scaled to [0, 1]."""
    x = images.float() / (255.0 if images.dtype == torch.uint8 else 1.0)
    gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device).view(1, 1, 3, 3)
    gray = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(gray, kx), F.conv2d(gray, kx.transpose(2, 3))
    return (gx.square() + gy.square()).sqrt() / (4 * 2**0.5)


def edge_ssim(sources: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM between edge maps of sources and outputs (same sizes): (N,) in [-1, 1]."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    a, b = sobel_edges(sources), sobel_edges(outputs)
    k = 11 if min(a.shape[-2:]) >= 11 else (min(a.shape[-2:]) // 2) * 2 - 1 or 1
    return ssim(b, a, data_range=1.0, kernel_size=k, reduction="none")


class Scorer:
    """Accumulates real and translated images; `compute()` returns the requested metrics."""

    def __init__(self, metrics: list[str] | tuple[str, ...], feature: nn.Module | None = None,
                 inception_weights: str | None = None, device: torch.device | str = "cpu"):
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise GanError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
        self.metrics = list(metrics)
        self.device = torch.device(device)
        self.needs_features = any(m in ("fid", "kid", "mifid") for m in self.metrics)
        self.feature = None
        if self.needs_features:
            self.feature = (feature if feature is not None else inception(inception_weights)).to(self.device).eval()
        self.real: list[torch.Tensor] = []
        self.fake: list[torch.Tensor] = []
        self.edge_scores: list[torch.Tensor] = []

    @torch.no_grad()
    def _features(self, images: torch.Tensor) -> torch.Tensor:
        return self.feature(resize_299(images).to(self.device)).reshape(images.shape[0], -1).double().cpu()

    def add_real(self, images: torch.Tensor) -> None:
        if self.needs_features:
            self.real.append(self._features(images))

    def add_fake(self, images: torch.Tensor, sources: torch.Tensor | None = None) -> None:
        if self.needs_features:
            self.fake.append(self._features(images))
        if "edge_ssim" in self.metrics:
            if sources is None:
                raise ValueError("edge_ssim needs the source images")
            self.edge_scores.append(edge_ssim(sources, images).cpu())

    def reset_fake(self) -> None:
        self.fake, self.edge_scores = [], []

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.needs_features:
            real, fake = torch.cat(self.real), torch.cat(self.fake)
            if len(real) < 2 or len(fake) < 2:
                raise GanError(f"FID/KID/MiFID need at least 2 real and 2 translated images "
                               f"(got {len(real)} and {len(fake)})")
            dim = real.shape[1]
            if "fid" in self.metrics:
                from torchmetrics.image.fid import FrechetInceptionDistance

                out["fid"] = float(_feed(FrechetInceptionDistance(feature=_Features(dim)), real, fake))
            if "kid" in self.metrics:
                import warnings

                from torchmetrics.image.kid import KernelInceptionDistance

                size = min(1000, len(real), len(fake))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # its note on keeping features in memory: we already do
                    kid = KernelInceptionDistance(feature=_Features(dim), subsets=100, subset_size=size)
                mean, std = _feed(kid, real, fake)
                out["kid"], out["kid_std"] = float(mean), float(std)
            if "mifid" in self.metrics:
                from torchmetrics.image.mifid import MemorizationInformedFrechetInceptionDistance as MiFID

                out["mifid"] = float(_feed(MiFID(feature=_Features(dim)), real, fake))
        if "edge_ssim" in self.metrics:
            out["edge_ssim"] = float(torch.cat(self.edge_scores).mean())
        return out


def _feed(metric, real: torch.Tensor, fake: torch.Tensor):
    """A torchmetrics image-set metric over precomputed real and fake features."""
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return metric.compute()


def better(metric: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    base = metric.rsplit("_", 1)[0] if metric.endswith(("_ab", "_ba")) else metric
    return new > old if base in HIGHER_IS_BETTER else new < old


# ------------------------------------------------------------------------------ image sets into a scorer


def load_for_eval(path: Path, size: int | None) -> np.ndarray:
    """uint8 (H, W, 3); with `size`, short side resized to size and centre-cropped to size x size."""
    img = load_image(path)
    return resize_center_crop(img, size) if size else img


def add_reference(scorer: "Scorer", paths: list[Path], size: int | None) -> int:
    n = 0
    for p in paths:
        try:
            scorer.add_real(to_chw(load_for_eval(p, size))[None])
            n += 1
        except ImageDecodeError as e:
            log.warning("skipping unreadable image %s", e)
    return n


def add_translations(scorer: "Scorer", translate, paths: list[Path], size: int | None) -> int:
    """Translate each image with `translate` (uint8 (C, H, W) -> uint8 (H, W, C): the inference engine's
    `to_uint8`, with its precision and band policy, or the trainer's generator at the crop size) and add it."""
    n = 0
    for p in paths:
        try:
            img = load_for_eval(p, size)
        except ImageDecodeError as e:
            log.warning("skipping unreadable image %s", e)
            continue
        out = translate(to_chw(img))
        scorer.add_fake(to_chw(out)[None], sources=to_chw(img)[None])
        n += 1
    return n
