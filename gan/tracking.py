"""Run records: metrics.jsonl and sample grids in the run directory, always; Weights & Biases on top.

Only rank 0 writes (the trainer creates a Tracker with `enabled=False` elsewhere).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan.data import to_uint8

log = logging.getLogger("gan")


def make_grid(rows: list[list[torch.Tensor]], pad: int = 2) -> np.ndarray:
    """Rows of (C, H, W) images in [-1, 1] -> one uint8 (H, W, 3) picture; cells padded to a common size."""
    cells = [[to_uint8(t) for t in row] for row in rows]
    ch = max(c.shape[0] for row in cells for c in row)
    cw = max(c.shape[1] for row in cells for c in row)
    ncols = max(len(row) for row in cells)
    grid = np.full((len(cells) * (ch + pad) + pad, ncols * (cw + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(cells):
        for c, img in enumerate(row):
            if img.shape[2] == 1:
                img = np.repeat(img, 3, axis=2)
            y, x = pad + r * (ch + pad), pad + c * (cw + pad)
            grid[y:y + img.shape[0], x:x + img.shape[1]] = img
    return grid


class Tracker:
    """metrics.jsonl + samples/ in `run_dir`; `enabled=False` makes every call a no-op (non-zero ranks)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.run_id: str | None = None
        if enabled:
            (self.run_dir / "samples").mkdir(parents=True, exist_ok=True)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": step}
        for k, v in metrics.items():
            v = float(v)
            row[k] = v if math.isfinite(v) else str(v)  # JSON has no NaN/inf
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def log_sample(self, step: int, grid: np.ndarray, caption: str = "") -> Path | None:
        if not self.enabled:
            return None
        path = self.run_dir / "samples" / f"step_{step:07d}.png"
        Image.fromarray(grid).save(path)
        return path

    def summary(self, values: dict) -> None:
        if not self.enabled:
            return
        path = self.run_dir / "summary.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        old.update(values)
        path.write_text(json.dumps(old, indent=2, default=str))

    def close(self) -> None:
        pass
