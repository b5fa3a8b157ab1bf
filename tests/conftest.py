"""Shared fixtures: tiny generated datasets and tiny configs (CPU only, seconds per test)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
torch.set_num_threads(2)

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


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_images(root / "trainA", 6, seed=1)
    write_images(root / "trainB", 5, seed=2)
    write_images(root / "testA", 2, seed=3)
    write_images(root / "testB", 2, seed=4)
    return root


@pytest.fixture
def tiny_overrides(tiny_data: Path, tmp_path: Path) -> list[str]:
    return TINY + [f"data.root={tiny_data}", f"train.output_dir={tmp_path / 'runs'}", "name=tiny"]
