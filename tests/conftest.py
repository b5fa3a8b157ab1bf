"""Shared fixtures: tiny generated datasets and tiny configs (CPU only, seconds per test)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
torch.set_num_threads(2)

from tests.helpers import TINY, write_images  # noqa: E402


@pytest.fixture(autouse=True)
def _keep_gan_logging():
    """Entry points called in-process set up the "gan" logger (a handler, no propagation): put it back after
    each test, so caplog sees the records of the next one exactly once."""
    import logging

    logger = logging.getLogger("gan")
    saved = list(logger.handlers), logger.propagate, logger.level
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


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
