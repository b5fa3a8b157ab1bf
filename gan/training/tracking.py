"""Run records: metrics.jsonl, summary.json and sample grids in the run directory, always; Weights & Biases
on top, by `tracking.wandb.mode`:

    auto      online when W&B credentials are configured (WANDB_API_KEY or a netrc entry), otherwise offline
              with a hint on `wandb sync`; a WANDB_MODE in the environment wins
    online / offline / disabled   as W&B means them (disabled: W&B is not even imported)

Only rank 0 tracks (the trainer passes enabled=False elsewhere). A W&B failure of any kind (no network, bad
key, quota) is reported once, W&B is switched off for the rest of the run, and training goes on; the local
records are unaffected. W&B files go to $WANDB_DIR when set, else into the run directory.
"""

from __future__ import annotations

import json
import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from gan.checkpoint.runs import append_metrics
from gan.data.io import to_uint8, write_image

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


def wandb_server() -> tuple[str, int]:
    """(host, port) of the W&B server runs talk to: WANDB_BASE_URL's, else W&B's own."""
    url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    return url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)


def wandb_credentials_configured() -> bool:
    """An API key in the environment, or a netrc entry for the W&B host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = wandb_server()[0]
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE")
    if env in ("online", "offline", "disabled", "dryrun", "run"):
        return {"dryrun": "offline", "run": "online"}.get(env, env)
    return "online" if wandb_credentials_configured() else "offline"


class Tracker:
    """metrics.jsonl + samples/ + summary.json in `run_dir`, and a W&B run when configured.
    `enabled=False` makes every call a no-op (non-zero ranks)."""

    def __init__(self, run_dir: Path, cfg=None, enabled: bool = True, run_id: str | None = None):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.run_id: str | None = run_id
        self.wandb_run = None
        self._wandb = None
        if not enabled:
            return
        (self.run_dir / "samples").mkdir(parents=True, exist_ok=True)
        if cfg is not None:
            self._start_wandb(cfg, run_id)

    # ----------------------------------------------------------------------------------------- W&B

    def _start_wandb(self, cfg, run_id: str | None) -> None:
        from gan.config import to_dict

        w = cfg.tracking.wandb
        mode = resolve_wandb_mode(w.mode)
        if mode == "disabled":
            env = os.environ.get("WANDB_MODE")
            if env and env != "disabled":
                log.info("W&B is off: the config says tracking.wandb.mode=disabled, which WANDB_MODE=%s does not "
                         "override (set tracking.wandb.mode=auto to follow WANDB_MODE)", env)
            return
        why_offline = " (no W&B credentials configured)" if w.mode == "auto" else ""
        if mode == "online":
            mode, reason = self._online_or_offline()
            why_offline = f" ({reason})" if reason else why_offline
        try:
            import wandb

            kwargs = dict(
                project=os.environ.get("WANDB_PROJECT", w.project), entity=os.environ.get("WANDB_ENTITY", w.entity),
                name=os.environ.get("WANDB_NAME", cfg.name), tags=list(w.tags) or None, group=w.group,
                notes=w.notes, config=to_dict(cfg), mode=mode, id=run_id, resume="allow" if run_id else None,
                settings=wandb.Settings(init_timeout=30, console="off", silent=True),
            )
            # Read here, not at W&B's first setup, so each run in one process honours the current value.
            kwargs["dir"] = os.environ.get("WANDB_DIR") or str(self.run_dir)
            self._wandb = wandb
            self.wandb_run = wandb.init(**kwargs)
            self.run_id = self.wandb_run.id
        except Exception as e:  # W&B must never stop training
            self._wandb_failed("start", e)
            return
        if mode == "offline":
            # run.dir is <wandb dir>/offline-run-<time>-<id>/files; `wandb sync` takes the folder above it.
            log.info("W&B is offline%s; upload later with: wandb sync %s", why_offline, Path(self.wandb_run.dir).parent)

    @staticmethod
    def _online_or_offline() -> tuple[str, str]:
        """(mode, why): an online run needs W&B's server, tried for a few seconds first (saying so), so that
        without network the run is recorded offline at once, with the reason, instead of W&B waiting in silence
        for its timeout. Behind a proxy (HTTPS_PROXY, ALL_PROXY) W&B is left to reach it itself."""
        import socket

        from gan.network import network_problem

        if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
            return "online", ""
        host, port = wandb_server()
        log.info("W&B: connecting to %s for an online run ...", host)
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as e:
            reason = f"{host}: {network_problem(e)}"
            log.warning("W&B: %s; this run is recorded offline instead", reason)
            return "offline", reason
        return "online", ""

    def _wandb_failed(self, what: str, e: Exception) -> None:
        from gan.network import network_problem

        log.warning("W&B %s failed: %s; W&B is off for the rest of this run, local records continue in %s",
                    what, network_problem(e, "check WANDB_API_KEY or run `wandb login`"), self.run_dir)
        self.wandb_run = None

    def _wandb_call(self, what: str, fn) -> None:
        if self.wandb_run is None:
            return
        try:
            fn(self.wandb_run)
        except Exception as e:
            self._wandb_failed(what, e)

    # ----------------------------------------------------------------------------------------- API

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        append_metrics(self.run_dir, step, metrics)
        self._wandb_call("log", lambda run: run.log({k: float(v) for k, v in metrics.items()}, step=step))

    def log_sample(self, step: int, grid: np.ndarray, caption: str = "") -> Path | None:
        if not self.enabled:
            return None
        path = self.run_dir / "samples" / f"step_{step:07d}.png"
        write_image(grid, path)
        self._wandb_call("image log", lambda run: run.log(
            {"samples": self._wandb.Image(grid, caption=f"step {step}: {caption}")}, step=step))
        return path

    def log_checkpoint(self, path: Path, step: int, aliases: list[str]) -> None:
        """A W&B model artifact (only with tracking.wandb.log_checkpoints)."""
        if not self.enabled:
            return

        def upload(run):
            art = self._wandb.Artifact(f"model-{run.id}", type="model", metadata={"step": step})
            art.add_file(str(path), name="checkpoint.pt")
            run.log_artifact(art, aliases=aliases)

        self._wandb_call("checkpoint upload", upload)

    def summary(self, values: dict) -> None:
        if not self.enabled:
            return
        path = self.run_dir / "summary.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        old.update(values)
        path.write_text(json.dumps(old, indent=2, default=str))
        self._wandb_call("summary", lambda run: run.summary.update(values))

    def close(self) -> None:
        self._wandb_call("finish", lambda run: run.finish())
        self.wandb_run = None
