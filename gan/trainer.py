"""Training: optimizers, LR schedule, precision, compile, the loop, and the cadence of log/sample/save.

One code path for CPU and CUDA, fp32 and mixed precision (autocast + GradScaler, both no-ops when off), and
one or many processes (helpers in gan.distributed). The step follows the reference's order:

    1. forward both generators; G update on L_G with d_a and d_b frozen (no grads into them)
    2. D update on L_D with the generated images drawn through each domain's ImagePool

Exact resume: every source of randomness is either restored from the checkpoint (torch/CUDA/numpy/python
RNGs, the pools' generators) or a pure function of (seed, epoch, index) (data order and augmentation).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch

from gan import GanError
from gan import checkpoint as ckpt_io
from gan.config import Config, from_dict, save_config, to_dict
from gan.cyclegan import CycleGAN, build_cyclegan, set_requires_grad
from gan.data import TrainData, build_train_data, find_images, load_image, to_tensor
from gan.distributed import barrier, get_rank, get_world_size, is_main, resolve_device
from gan.image_pool import ImagePool
from gan.networks import count_parameters
from gan.tracking import Tracker, make_grid

log = logging.getLogger("gan")

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class DivergenceError(GanError):
    """A loss became NaN or infinite; training stopped before the step was applied."""


def lr_lambda(cfg: Config, steps_per_epoch: int):
    """The LR factor for each step: constant, then linear to zero (reference: n_epochs + n_epochs_decay);
    or step decay by lr_gamma every lr_step_epochs; or cosine over the whole run."""
    t = cfg.train
    total = total_steps(cfg, steps_per_epoch)
    constant = total // 2 if t.max_steps is not None else t.epochs * steps_per_epoch
    decay = total - constant
    step_every = max(1, t.lr_step_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if t.lr_policy == "linear":
            return 1.0 - max(0, step - constant) / (decay + 1)
        if t.lr_policy == "step":
            return t.lr_gamma ** (step // step_every)
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))  # cosine

    return factor


def total_steps(cfg: Config, steps_per_epoch: int) -> int:
    t = cfg.train
    return t.max_steps if t.max_steps is not None else (t.epochs + t.epochs_decay) * steps_per_epoch


def load_style_images(folder: str, size: int) -> torch.Tensor:
    """Fixed style images for the hybrid style loss: short side resized to `size`, centre-cropped square."""
    import cv2

    imgs = []
    for path in find_images(folder):
        img = load_image(path)
        h, w = img.shape[:2]
        s = size / min(h, w)
        img = cv2.resize(img, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_AREA)
        y, x = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        imgs.append(to_tensor(img[y:y + size, x:x + size]))
    if not imgs:
        raise GanError(f"loss.vgg.style_images: no image in {folder}")
    return torch.stack(imgs)


class Trainer:
    """Builds everything from a Config and runs `fit()`. `resume` is a loaded checkpoint dict."""

    def __init__(self, cfg: Config, run_dir: Path, resume: dict | None = None, vgg_weights: str | None = None,
                 tracker: Tracker | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        t = cfg.train
        self.device = resolve_device(t.device)
        if t.precision == "fp16" and self.device.type != "cuda":
            raise GanError(f"train.precision=fp16 needs CUDA; this run is on {self.device} (use bf16 or fp32)")
        self.amp = t.precision in AMP_DTYPES
        self.amp_dtype = AMP_DTYPES.get(t.precision, torch.bfloat16)
        self.rank, self.world_size = get_rank(), get_world_size()
        torch.manual_seed(cfg.seed + self.rank)
        np.random.seed((cfg.seed + self.rank) % 2**32)
        random.seed(cfg.seed + self.rank)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        self.data: TrainData = build_train_data(cfg, self.rank, self.world_size, self.device)
        style = None
        if cfg.loss.lambda_style > 0 and cfg.loss.vgg.style_images:
            style = load_style_images(cfg.loss.vgg.style_images, cfg.data.crop_size)
        model = build_cyclegan(cfg, style, vgg_weights)
        self.memory_format = (torch.channels_last if t.channels_last and self.device.type == "cuda"
                              else torch.contiguous_format)
        self.model: CycleGAN = model.to(self.device, memory_format=self.memory_format)
        # The plain modules: checkpoints hold their state_dicts, with or without torch.compile.
        self.nets = {"g_ab": model.g_ab, "g_ba": model.g_ba, "d_a": model.d_a, "d_b": model.d_b}
        if t.compile:
            for name, net in self.nets.items():
                setattr(self.model, name, torch.compile(net))

        self.opt_g = torch.optim.Adam(itertools.chain(model.g_ab.parameters(), model.g_ba.parameters()),
                                      lr=t.lr, betas=(t.beta1, t.beta2))
        self.opt_d = torch.optim.Adam(itertools.chain(model.d_a.parameters(), model.d_b.parameters()),
                                      lr=t.lr, betas=(t.beta1, t.beta2))
        self.steps_per_epoch = self.data.steps_per_epoch
        self.total_steps = total_steps(cfg, self.steps_per_epoch)
        factor = lr_lambda(cfg, self.steps_per_epoch)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, factor)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, factor)
        # One scaler per optimizer so an overflow in D does not shrink G's scale. Disabled = pass-through.
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=t.precision == "fp16")
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=t.precision == "fp16")
        self.pool_a = ImagePool(t.pool_size, seed=cfg.seed * 1000 + 1)
        self.pool_b = ImagePool(t.pool_size, seed=cfg.seed * 1000 + 2)
        self.step = 0
        self.tracker = tracker or Tracker(self.run_dir, cfg, enabled=is_main(),
                                          run_id=resume.get("wandb_run_id") if resume else None)
        self._stop_signal: str | None = None
        self._acc: dict[str, torch.Tensor] = {}
        self._acc_n = 0
        if resume is not None:
            self._restore(resume)

    # ------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        return {
            "config": to_dict(self.cfg),
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "nets": {k: net.state_dict() for k, net in self.nets.items()},
            "optimizers": {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()},
            "schedulers": {"g": self.sched_g.state_dict(), "d": self.sched_d.state_dict()},
            "scalers": {"g": self.scaler_g.state_dict(), "d": self.scaler_d.state_dict()},
            "pools": {"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()},
            "rng": _rng_state(),
            "data": {"steps_per_epoch": self.steps_per_epoch, "batch_size": self.cfg.data.batch_size,
                     "world_size": self.world_size},
            "wandb_run_id": self.tracker.run_id,
        }

    def _restore(self, state: dict) -> None:
        for name, net in self.nets.items():
            net.load_state_dict(state["nets"][name])
        self.opt_g.load_state_dict(state["optimizers"]["g"])
        self.opt_d.load_state_dict(state["optimizers"]["d"])
        self.sched_g.load_state_dict(state["schedulers"]["g"])
        self.sched_d.load_state_dict(state["schedulers"]["d"])
        if state["scalers"]["g"]:
            self.scaler_g.load_state_dict(state["scalers"]["g"])
            self.scaler_d.load_state_dict(state["scalers"]["d"])
        self.pool_a.load_state_dict(state["pools"]["a"], self.device)
        self.pool_b.load_state_dict(state["pools"]["b"], self.device)
        self.step = int(state["step"])
        if state["data"]["steps_per_epoch"] != self.steps_per_epoch:
            log.warning("steps per epoch changed (%s -> %s: other dataset size, batch or world size); the data "
                        "order restarts at the current epoch boundary", state["data"]["steps_per_epoch"],
                        self.steps_per_epoch)
        _set_rng_state(state["rng"])

    def save(self) -> Path | None:
        path = None
        if is_main():
            path = ckpt_io.save_checkpoint(self.state_dict(), self.run_dir, self.cfg.train.keep_last)
            if self.cfg.tracking.wandb.log_checkpoints:
                self.tracker.log_checkpoint(path, self.step, ["latest", f"step_{self.step}"])
        barrier()
        return path

    # ------------------------------------------------------------------------------------------- step

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp)

    def train_step(self, batch: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One G update then one D update. Returns (loss terms, images for the sample grid), detached."""
        real_a = batch["A"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        real_b = batch["B"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        m = self.model

        # 1. generators, with both discriminators frozen (their grads are neither needed nor wanted)
        set_requires_grad([m.d_a, m.d_b], False)
        with self.autocast():
            loss_g, terms, images = m.generator_loss(real_a, real_b)
        self._check_finite({"loss_g": loss_g, **terms})
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(loss_g).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        set_requires_grad([m.d_a, m.d_b], True)

        # 2. discriminators, on the history of generated images
        fake_a = self.pool_a.query(images["fake_a"].detach())
        fake_b = self.pool_b.query(images["fake_b"].detach())
        with self.autocast():
            loss_d, terms_d = m.discriminator_loss(real_a, real_b, fake_a, fake_b)
        self._check_finite({"loss_d": loss_d, **terms_d})
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(loss_d).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()

        self.sched_g.step()
        self.sched_d.step()
        out = {"loss_g": loss_g.detach(), "loss_d": loss_d.detach(), **{k: v.detach() for k, v in terms.items()},
               **{k: v.detach() for k, v in terms_d.items()}}
        images = {"real_a": real_a, "real_b": real_b, **{k: v.detach() for k, v in images.items()}}
        return out, images

    def _check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        values = torch.stack([v.detach().float().reshape(()) for v in terms.values()])
        if bool(torch.isfinite(values).all()):
            return
        bad = [(k, v) for k, v in zip(terms, values.tolist()) if not math.isfinite(v)]
        name, value = next(((k, v) for k, v in bad if k not in ("loss_g", "loss_d")), bad[0])
        latest = self.run_dir / "latest.pt"
        kept = f"the last good checkpoint is {latest}" if latest.exists() else "no checkpoint was written yet"
        raise DivergenceError(
            f"loss term {name} is {value} at step {self.step + 1}: training stopped before applying it; {kept}. "
            "Try a lower train.lr, fp32 precision, or another seed.")

    # -------------------------------------------------------------------------------------------- loop

    def fit(self) -> Path:
        """Train to the end (or to a stop signal); returns the path of the last checkpoint written."""
        t = self.cfg.train
        self._print_summary()
        last_ckpt = None
        bar = _progress(self.total_steps, self.step) if is_main() else None
        window_start, data_wait = time.perf_counter(), 0.0
        with self._signals():
            while self.step < self.total_steps and self._stop_signal is None:
                epoch, in_epoch = divmod(self.step, self.steps_per_epoch)
                self.data.set_position(epoch, in_epoch)
                fetch_start = time.perf_counter()
                for batch in self.data.loader:
                    data_wait += time.perf_counter() - fetch_start
                    terms, images = self.train_step(batch)
                    self.step += 1
                    self._accumulate(terms)
                    if bar is not None:
                        bar.update(1)
                    if self.step % t.log_every == 0 or self.step == self.total_steps:
                        elapsed = time.perf_counter() - window_start
                        metrics = self._log(elapsed, data_wait)
                        if bar is not None:
                            bar.set_postfix({k: f"{metrics[k]:.3f}" for k in ("loss_g", "loss_d", "cycle_a")}
                                            | {"img/s": f"{metrics['img_per_s']:.1f}"}, refresh=False)
                        window_start, data_wait = time.perf_counter(), 0.0
                    if self.step % t.sample_every == 0 or self.step == self.total_steps:
                        self._sample(images)
                    if self.step % t.save_every == 0 and self.step < self.total_steps:
                        last_ckpt = self.save()
                    if self.step >= self.total_steps or self._stop_signal is not None:
                        break
                    fetch_start = time.perf_counter()
        if bar is not None:
            bar.close()
        last_ckpt = self.save()
        if self._stop_signal is not None:
            log.info("%s received: stopped at step %d/%d and saved %s\nresume with: python train.py --resume %s",
                     self._stop_signal, self.step, self.total_steps, last_ckpt, self.run_dir)
        else:
            log.info("finished %d steps; checkpoint: %s", self.step, last_ckpt)
        self.tracker.summary({"final_step": self.step, "checkpoint": str(last_ckpt)})
        return last_ckpt

    def _accumulate(self, terms: dict[str, torch.Tensor]) -> None:
        for k, v in terms.items():
            self._acc[k] = self._acc.get(k, 0.0) + v.float()
        self._acc_n += 1

    def _log(self, elapsed: float, data_wait: float) -> dict[str, float]:
        n = max(1, self._acc_n)
        metrics = {k: float(v) / n for k, v in self._acc.items()}
        metrics["lr_g"] = self.opt_g.param_groups[0]["lr"]
        metrics["lr_d"] = self.opt_d.param_groups[0]["lr"]
        metrics["img_per_s"] = n * self.cfg.data.batch_size * self.world_size / max(elapsed, 1e-9)
        metrics["data_wait"] = data_wait / max(elapsed, 1e-9)
        metrics["epoch"] = self.step / self.steps_per_epoch
        if self.device.type == "cuda":
            metrics["cuda_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self._acc, self._acc_n = {}, 0
        self.tracker.log(self.step, metrics)
        return metrics

    def _sample(self, images: dict[str, torch.Tensor]) -> None:
        if not is_main():
            return
        row_a = [images[k][0] for k in ("real_a", "fake_b", "rec_a")]
        row_b = [images[k][0] for k in ("real_b", "fake_a", "rec_b")]
        self.tracker.log_sample(self.step, make_grid([row_a, row_b]),
                                caption="real_a | fake_b | rec_a  /  real_b | fake_a | rec_b")

    def _print_summary(self) -> None:
        if not is_main():
            return
        d, t = self.data, self.cfg.train
        skipped = len(d.domain_a.skipped) + len(d.domain_b.skipped)
        lines = [
            f"run        {self.run_dir}",
            f"device     {self.device} ({t.precision}{', compiled' if t.compile else ''}"
            f"{f', {self.world_size} processes' if self.world_size > 1 else ''})",
            f"data       A: {len(d.domain_a.paths)} images in {d.domain_a.folder}"
            f"{f' ({len(d.domain_a.skipped)} skipped)' if d.domain_a.skipped else ''}",
            f"           B: {len(d.domain_b.paths)} images in {d.domain_b.folder}"
            f"{f' ({len(d.domain_b.skipped)} skipped)' if d.domain_b.skipped else ''}",
            f"           {skipped} unreadable file(s) skipped" if skipped else None,
            f"model      G: {count_parameters(self.nets['g_ab']):,} params x2, "
            f"D: {count_parameters(self.nets['d_a']):,} params x2",
            f"schedule   {self.total_steps} steps ({self.steps_per_epoch} per epoch, batch "
            f"{self.cfg.data.batch_size}), lr {t.lr} {t.lr_policy}"
            + (f"; resuming at step {self.step}" if self.step else ""),
        ]
        log.info("\n".join(line for line in lines if line))
        self.tracker.summary({
            "images_a": len(d.domain_a.paths), "images_b": len(d.domain_b.paths), "skipped_files": skipped,
            "params_g": count_parameters(self.nets["g_ab"]), "params_d": count_parameters(self.nets["d_a"]),
        })

    @contextlib.contextmanager
    def _signals(self):
        """SIGINT/SIGTERM: finish the current step, save, exit cleanly. A second Ctrl-C aborts at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._stop_signal is not None:
                raise KeyboardInterrupt
            self._stop_signal = signal.Signals(signum).name
            log.info("\n%s: finishing the current step, then saving a checkpoint (Ctrl-C again to abort)",
                     self._stop_signal)

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def _progress(total: int, initial: int):
    import sys

    from tqdm import tqdm

    # Redrawn every second on a terminal; every 30 s into a log file, so logs stay readable.
    interval = 1.0 if sys.stderr.isatty() else 30.0
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, smoothing=0.1, mininterval=interval)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": _py_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _py_state_to_plain(st: tuple) -> dict:
    version, internal, gauss = st
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------- entry helpers

RESUMABLE_KEYS = (
    "train.epochs", "train.epochs_decay", "train.max_steps", "train.log_every", "train.sample_every",
    "train.save_every", "train.keep_last", "train.device", "train.precision", "train.compile",
    "train.channels_last", "data.root", "data.train_a", "data.train_b", "data.test_a", "data.test_b",
    "data.num_workers", "tracking.", "eval.",
)


def resume_config(stored: dict, overrides: list[str]) -> Config:
    """The checkpoint's config with overrides limited to keys that do not change what is being trained."""
    from gan.config import parse_override, set_dotted

    raw = stored
    for item in overrides:
        key, value = parse_override(item)
        if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE_KEYS):
            raise GanError(f"{key}: cannot be changed when resuming (the run's stored value is kept). Keys that "
                           f"can: {', '.join(k + '*' if k.endswith('.') else k for k in RESUMABLE_KEYS)}")
        set_dotted(raw, key, value)
    return from_dict(raw)


def prepare_run_dir(cfg: Config) -> Path:
    """runs/<name>/, refusing to overwrite a run that has checkpoints."""
    run_dir = Path(cfg.train.output_dir) / cfg.name
    if is_main():
        if (run_dir / "latest.pt").exists() or any(run_dir.glob("checkpoints/step_*.pt")):
            raise GanError(f"{run_dir} already holds a training run. Continue it with "
                           f"`python train.py --resume {run_dir}`, or start a new one with name=<other name> "
                           "(or delete the folder).")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    barrier()
    return run_dir


def train(cfg: Config, resume: str | Path | None = None, overrides: list[str] = (),
          vgg_weights: str | None = None) -> Path:
    """Start (or with `resume`, continue) a run; returns the last checkpoint path."""
    if resume is not None:
        state = ckpt_io.load_checkpoint(resume)
        cfg = resume_config(state["config"], list(overrides))
        run_dir = ckpt_io.run_dir_of(Path(state["path"]))
        if is_main():
            save_config(cfg, run_dir / "config.yaml")
    else:
        state = None
        run_dir = prepare_run_dir(cfg)
    trainer = Trainer(cfg, run_dir, resume=state, vgg_weights=vgg_weights)
    try:
        return trainer.fit()
    finally:
        trainer.tracker.close()
