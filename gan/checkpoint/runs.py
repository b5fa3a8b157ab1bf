"""A run folder's metrics.jsonl: one JSON object per logged step, appended by the tracker (gan.training.tracking)
and read back by whatever looks at a run (the model card's numbers, the quality benchmark's curves)."""

from __future__ import annotations

import json
import math
from pathlib import Path

METRICS = "metrics.jsonl"


def append_metrics(run_dir: Path, step: int, metrics: dict[str, float]) -> dict:
    """Add one row {step, **metrics} to run_dir/metrics.jsonl (NaN and inf as strings: JSON has neither)."""
    row: dict = {"step": step}
    for k, v in metrics.items():
        v = float(v)
        row[k] = v if math.isfinite(v) else str(v)
    with open(Path(run_dir) / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    return row


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of `run_dir`/metrics.jsonl, in order ([] without the file); a line that is not a JSON object (a
    run killed mid-write) is skipped."""
    try:
        lines = (Path(run_dir) / METRICS).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
