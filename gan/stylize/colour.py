"""Colour preservation for style transfer (Gatys et al. 2017, "Controlling perceptual factors"): keep the
photo's colours and take only the painting's strokes, by matching the painting's colour statistics to the
photo's (`histogram`) or by transferring luminance only and putting the photo's chroma back (`luminance`).
"""

from __future__ import annotations

import numpy as np
import torch

from gan.nn import losses
from gan.stylize.options import StylizeOptions, image_tensor

_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]])


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> YIQ."""
    return torch.einsum("oc,nchw->nohw", _RGB2YIQ.to(x), x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oc,nchw->nohw", torch.linalg.inv(_RGB2YIQ).to(x), x)


def match_color(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style image (float HWC in [0, 1]) with the content's colour mean and covariance (Gatys et al.
    2017, colour histogram matching, linear form: x' = C_c^1/2 C_s^-1/2 (x - mu_s) + mu_c). Each channel
    then has the content's mean and standard deviation (up to clipping to [0, 1])."""
    s = torch.from_numpy(style.reshape(-1, 3)).double()
    c = torch.from_numpy(content.reshape(-1, 3)).double()
    mu_s, mu_c = s.mean(0), c.mean(0)
    cov_s = torch.cov((s - mu_s).T) + 1e-5 * torch.eye(3, dtype=torch.float64)
    cov_c = torch.cov((c - mu_c).T) + 1e-5 * torch.eye(3, dtype=torch.float64)
    a = losses.sqrtm_psd(cov_c) @ torch.linalg.inv(losses.sqrtm_psd(cov_s))
    out = (s - mu_s) @ a.T + mu_c
    return out.clamp(0, 1).reshape(style.shape).float().numpy()


def luminance_only(img: np.ndarray, like: np.ndarray | None = None) -> np.ndarray:
    """The luminance of an RGB image as a grey RGB image; with `like`, its mean and std matched to like's
    luminance first (Gatys et al. 2017, luminance-only transfer)."""
    y = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if like is not None:
        y_like = like @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        y = (y - y.mean()) / (y.std() + 1e-6) * y_like.std() + y_like.mean()
    return np.repeat(np.clip(y, 0, 1)[..., None], 3, axis=2).astype(np.float32)


def prepare_colours(content: np.ndarray, styles: list[np.ndarray], preserve_color: str
                     ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """uint8 inputs -> float [0, 1]: (the photo, the photo as the method sees it, the styles as it sees them).
    histogram: styles take the photo's colour statistics; luminance: everything becomes luminance (the
    styles' matched to the photo's), and the photo's chroma is put back at the end (_finish)."""
    content_f = content.astype(np.float32) / 255.0
    styles_f = [s.astype(np.float32) / 255.0 for s in styles]
    if preserve_color == "histogram":
        return content_f, content_f, [match_color(s, content_f) for s in styles_f]
    if preserve_color == "luminance":
        return content_f, luminance_only(content_f), [luminance_only(s, like=content_f) for s in styles_f]
    return content_f, content_f, styles_f


def finish(x: torch.Tensor, content_f: np.ndarray, opts: StylizeOptions) -> np.ndarray:
    """(1, 3, h, w) in [-1, 1] -> float HWC [0, 1]; in luminance mode, the photo's chroma put back."""
    img = ((x.detach().float() + 1) / 2).clamp(0, 1)
    if opts.preserve_color == "luminance":
        c = image_tensor(content_f, tuple(img.shape[-2:]), img.device) * 0.5 + 0.5
        yiq = rgb_to_yiq(c)
        y = img.mean(1, keepdim=True)  # the optimised grey image's luminance
        img = yiq_to_rgb(torch.cat([y, yiq[:, 1:]], 1)).clamp(0, 1)
    return img[0].permute(1, 2, 0).cpu().numpy()
