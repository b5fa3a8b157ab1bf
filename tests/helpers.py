"""Test helpers: tiny configs and generated images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TINY = [
    "model.generator.ngf=4", "model.generator.n_blocks=1", "model.discriminator.ndf=4",
    "model.discriminator.n_layers=2", "data.preprocess=resize_and_crop", "data.load_size=36",
    "data.crop_size=32", "data.num_workers=0", "train.log_every=2", "train.sample_every=4",
    "train.save_every=4", "train.pool_size=4", "tracking.wandb.mode=disabled", "train.device=cpu",
]


def write_images(folder: Path, n: int, size=(40, 48), seed: int = 0, prefix: str = "img") -> list[Path]:
    """n random smooth RGB images (h, w) = size as PNG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, (size[0] // 8 + 1, size[1] // 8 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size[1], size[0]), Image.BILINEAR)
        p = folder / f"{prefix}_{i:03d}.png"
        img.save(p)
        paths.append(p)
    return paths
