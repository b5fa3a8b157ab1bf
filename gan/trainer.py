"""Training: optimizers, LR schedule, precision, compile, the loop, and the cadence of log/sample/save.

One code path for CPU and CUDA, fp32 and mixed precision (autocast + GradScaler, both no-ops when off), and
one or many processes (helpers in gan.distributed). The step follows the reference's order:

    1. forward both generators; G update on L_G with d_a and d_b frozen (no grads into them)
    2. D update on L_D with the generated images drawn through each domain's ImagePool

Exact resume: every source of randomness is either restored from the checkpoint (torch/CUDA/numpy/python
RNGs and image pools of every rank) or a pure function of (seed, epoch, index) (data order, augmentation).
The position is (epoch, step in epoch); the learning rate is a pure function of it, so it continues where
it was, also when a run resumes with another number of processes (then at the same fraction of the epoch).

Distributed (torchrun): generators and discriminators are wrapped in DistributedDataParallel, each update
calls its wrapper once, and gradients are averaged over ranks; stopping (signal or divergence) is agreed on
by all ranks at the same step, so no rank is left waiting.
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
from gan import distributed as dist_utils
from gan.config import Config, from_dict, save_config, to_dict
from gan.cyclegan import CycleGAN, build_cyclegan, set_requires_grad
from gan.data import TrainData, build_train_data, find_images, load_image, resize_center_crop, to_tensor
from gan.distributed import barrier, get_rank, get_world_size, is_main, resolve_device
from gan.image_pool import ImagePool
from gan.networks import count_parameters
from gan.tracking import Tracker, make_grid

log = logging.getLogger("gan")

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class DivergenceError(GanError):
    """A loss became NaN or infinite; training stopped before the step was applied."""


def lr_factor(cfg: Config, epochs_done: float, step: int) -> float:
    """The LR multiplier at a position. Epoch-based runs: constant for train.epochs, then linear to zero over
    train.epochs_decay (the reference's n_epochs + n_epochs_decay, applied per step rather than per epoch).
    With train.max_steps: constant for the first half of the steps, linear to zero over the second.
    `step` policy: x lr_gamma every lr_step_epochs epochs; `cosine`: half a cosine over the whole run."""
    t = cfg.train
    if t.max_steps is not None:
        x, total = float(step), float(t.max_steps)
        constant = float(t.max_steps // 2)
    else:
        x, total, constant = epochs_done, float(t.epochs + t.epochs_decay), float(t.epochs)
    if t.lr_policy == "linear":
        return max(0.0, 1.0 - max(0.0, x - constant) / max(total - constant, 1e-12))
    if t.lr_policy == "step":
        return t.lr_gamma ** math.floor(epochs_done / t.lr_step_epochs + 1e-9)
    return 0.5 * (1.0 + math.cos(math.pi * min(x, total) / total))  # cosine


def load_style_images(folder: str, size: int) -> torch.Tensor:
    """Fixed style images for the hybrid style loss: short side resized to `size`, centre-cropped square."""
    imgs = [to_tensor(resize_center_crop(load_image(p), size)) for p in find_images(folder)]
    if not imgs:
        raise GanError(f"loss.vgg.style_images: no image in {folder}")
    return torch.stack(imgs)


class Trainer:
    """Builds everything from a Config and runs `fit()`. `resume` is a loaded checkpoint dict."""

    def __init__(self, cfg: Config, run_dir: Path, resume: dict | None = None, vgg_weights: str | None = None,
                 tracker: Tracker | None = None, feature_extractor: torch.nn.Module | None = None):
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
        # The plain modules: checkpoints hold their state_dicts, whatever wraps them for training.
        self.nets = {"g_ab": model.g_ab, "g_ba": model.g_ba, "d_a": model.d_a, "d_b": model.d_b}
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            model.generators = DDP(model.generators, device_ids=ids, broadcast_buffers=False)
            model.discriminators = DDP(model.discriminators, device_ids=ids, broadcast_buffers=False)
            # The G step's adversarial terms use the plain d_a/d_b; DDP has synced them from rank 0 above.
        if t.compile:
            model.generators = torch.compile(model.generators)
            model.discriminators = torch.compile(model.discriminators)

        scale = {"none": 1.0, "linear": float(self.world_size), "sqrt": math.sqrt(self.world_size)}[t.scale_lr]
        self.base_lr = t.lr * scale
        self.opt_g = torch.optim.Adam(itertools.chain(model.g_ab.parameters(), model.g_ba.parameters()),
                                      lr=self.base_lr, betas=(t.beta1, t.beta2))
        self.opt_d = torch.optim.Adam(itertools.chain(model.d_a.parameters(), model.d_b.parameters()),
                                      lr=self.base_lr, betas=(t.beta1, t.beta2))
        self.steps_per_epoch = self.data.steps_per_epoch
        self.epoch, self.in_epoch = 0, 0  # position: epoch, and optimizer steps taken in it
        # One scaler per optimizer so an overflow in D does not shrink G's scale. Disabled = pass-through.
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=t.precision == "fp16")
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=t.precision == "fp16")
        self.pool_a = ImagePool(t.pool_size, seed=cfg.seed * 1000 + 2 * self.rank + 1)
        self.pool_b = ImagePool(t.pool_size, seed=cfg.seed * 1000 + 2 * self.rank + 2)
        self.step = 0
        self.tracker = tracker or Tracker(self.run_dir, cfg, enabled=is_main(),
                                          run_id=resume.get("wandb_run_id") if resume else None)
        self._stop_signal: str | None = None
        self._acc: dict[str, torch.Tensor] = {}
        self._acc_n = 0
        self.best: dict | None = None  # {"metric", "value", "step"} of best.pt
        self.scorers = None
        if cfg.eval.every > 0 and is_main():
            self._setup_eval(feature_extractor)
        if resume is not None:
            self._restore(resume)

    # ------------------------------------------------------------------------------------------ state

    def epochs_done(self) -> float:
        return self.epoch + self.in_epoch / self.steps_per_epoch

    def finished(self) -> bool:
        t = self.cfg.train
        if t.max_steps is not None:
            return self.step >= t.max_steps
        return self.epoch >= t.epochs + t.epochs_decay

    def total_steps(self) -> int:
        """Steps of the whole run at the current steps per epoch (for the progress bar)."""
        t = self.cfg.train
        if t.max_steps is not None:
            return t.max_steps
        remaining = (t.epochs + t.epochs_decay - self.epochs_done()) * self.steps_per_epoch
        return self.step + max(0, round(remaining))

    def set_lr(self) -> None:
        factor = lr_factor(self.cfg, self.epochs_done(), self.step)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = self.base_lr * factor

    def state_dict(self) -> dict:
        """The whole training state. Collective under DDP: every rank must call it (pools and RNG states
        of all ranks are gathered)."""
        pools = dist_utils.all_gather_object({"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()})
        rngs = dist_utils.all_gather_object(_rng_state())
        return {
            "config": to_dict(self.cfg),
            "step": self.step,
            "epoch": self.epoch,
            "position": {"epoch": self.epoch, "in_epoch": self.in_epoch, "steps_per_epoch": self.steps_per_epoch,
                         "batch_size": self.cfg.data.batch_size, "world_size": self.world_size},
            "nets": {k: net.state_dict() for k, net in self.nets.items()},
            "optimizers": {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()},
            # The LR is a function of the position; stored for inspection.
            "schedulers": {"policy": self.cfg.train.lr_policy, "base_lr": self.base_lr,
                           "lr_g": self.opt_g.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"]},
            "scalers": {"g": self.scaler_g.state_dict(), "d": self.scaler_d.state_dict()},
            "pools": pools,  # one entry per rank
            "rng": rngs,  # one entry per rank
            "wandb_run_id": self.tracker.run_id,
            "best": self.best,
        }

    def _restore(self, state: dict) -> None:
        for name, net in self.nets.items():
            net.load_state_dict(state["nets"][name])
        self.opt_g.load_state_dict(state["optimizers"]["g"])
        self.opt_d.load_state_dict(state["optimizers"]["d"])
        if state["scalers"]["g"]:
            self.scaler_g.load_state_dict(state["scalers"]["g"])
            self.scaler_d.load_state_dict(state["scalers"]["d"])
        pools = state["pools"][self.rank % len(state["pools"])]
        self.pool_a.load_state_dict(pools["a"], self.device)
        self.pool_b.load_state_dict(pools["b"], self.device)
        self.step = int(state["step"])
        pos = state["position"]
        self.epoch, self.in_epoch = int(pos["epoch"]), int(pos["in_epoch"])
        if pos["steps_per_epoch"] != self.steps_per_epoch:
            # Another world size, batch size or dataset: continue at the same fraction of the epoch.
            self.in_epoch = min(self.steps_per_epoch - 1,
                                round(self.in_epoch * self.steps_per_epoch / pos["steps_per_epoch"]))
            if is_main():
                log.warning("resuming with %d steps per epoch instead of %d (world size %d -> %d, batch %d -> %d):"
                            " continuing at the same point of epoch %d; exact resume needs the same setup",
                            self.steps_per_epoch, pos["steps_per_epoch"], pos["world_size"], self.world_size,
                            pos["batch_size"], self.cfg.data.batch_size, self.epoch)
        if len(state["rng"]) == self.world_size:
            _set_rng_state(state["rng"][self.rank])
        self.best = state.get("best")
        if self.best is not None and self.best["metric"] != self.cfg.eval.best:
            self.best = None  # eval.best changed on resume: scores of another metric do not compare

    def save(self) -> Path | None:
        """Write a checkpoint (rank 0); every rank must call it. Returns the path on rank 0."""
        path = None
        state = self.state_dict()
        if is_main():
            path = ckpt_io.save_checkpoint(state, self.run_dir, self.cfg.train.keep_last)
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
        self.set_lr()

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

        out = {"loss_g": loss_g.detach(), "loss_d": loss_d.detach(), **{k: v.detach() for k, v in terms.items()},
               **{k: v.detach() for k, v in terms_d.items()}}
        images = {"real_a": real_a, "real_b": real_b, **{k: v.detach() for k, v in images.items()}}
        return out, images

    def _check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        values = torch.stack([v.detach().float().reshape(()) for v in terms.values()])
        finite = bool(torch.isfinite(values).all())
        if not dist_utils.any_rank(not finite, self.device):  # every rank stops at the same step
            return
        bad = [(k, v) for k, v in zip(terms, values.tolist()) if not math.isfinite(v)]
        latest = self.run_dir / "latest.pt"
        kept = f"the last good checkpoint is {latest}" if latest.exists() else "no checkpoint was written yet"
        if not bad:
            raise DivergenceError(f"a loss became non-finite on another process at step {self.step + 1}: "
                                  f"training stopped; {kept}")
        name, value = next(((k, v) for k, v in bad if k not in ("loss_g", "loss_d")), bad[0])
        raise DivergenceError(
            f"loss term {name} is {value} at step {self.step + 1}: training stopped before applying it; {kept}. "
            "Try a lower train.lr, fp32 precision, or another seed.")

    # -------------------------------------------------------------------------------------------- loop

    def fit(self) -> Path:
        """Train to the end (or to a stop signal); returns the path of the last checkpoint written."""
        t = self.cfg.train
        self._print_summary()
        bar = _progress(self.total_steps(), self.step) if is_main() else None
        window_start, data_wait = time.perf_counter(), 0.0
        stop = False
        with self._signals():
            while not self.finished() and not stop:
                self.data.set_position(self.epoch, self.in_epoch)
                fetch_start = time.perf_counter()
                for batch in self.data.loader:
                    data_wait += time.perf_counter() - fetch_start
                    terms, images = self.train_step(batch)
                    self.step += 1
                    self.in_epoch += 1
                    if self.in_epoch == self.steps_per_epoch:
                        self.epoch, self.in_epoch = self.epoch + 1, 0
                    self._accumulate(terms)
                    done = self.finished()
                    # All ranks agree to stop at the same step, whichever of them got the signal.
                    stop = dist_utils.any_rank(self._stop_signal is not None, self.device)
                    if bar is not None:
                        bar.update(1)
                    if self.step % t.log_every == 0 or done:
                        elapsed = time.perf_counter() - window_start
                        metrics = self._log(elapsed, data_wait)
                        if bar is not None:
                            bar.set_postfix({k: f"{metrics[k]:.3f}" for k in ("loss_g", "loss_d", "cycle_a")}
                                            | {"img/s": f"{metrics['img_per_s']:.1f}"}, refresh=False)
                        window_start, data_wait = time.perf_counter(), 0.0
                    if self.step % t.sample_every == 0 or done:
                        self._sample(images)
                    if self.cfg.eval.every and (self.step % self.cfg.eval.every == 0 or done):
                        self.evaluate()
                    if self.step % t.save_every == 0 and not done and not stop:
                        self.save()
                    if done or stop:
                        break
                    fetch_start = time.perf_counter()
        if bar is not None:
            bar.close()
        last_ckpt = self.save()
        if stop:
            log.info("%s: stopped at step %d and saved %s\nresume with: python train.py --resume %s",
                     self._stop_signal or "stop requested by another process", self.step, last_ckpt, self.run_dir)
        elif is_main():
            log.info("finished %d steps; checkpoint: %s", self.step, last_ckpt)
        if self.best is not None and is_main():
            log.info("best %s = %.6g at step %d: %s", self.best["metric"], self.best["value"], self.best["step"],
                     self.run_dir / "best.pt")
        self.tracker.summary({"final_step": self.step, "checkpoint": str(last_ckpt),
                              **({f"best_{self.best['metric']}": self.best["value"], "best_step": self.best["step"]}
                                 if self.best else {})})
        return last_ckpt

    # ------------------------------------------------------------------------------------- evaluation

    def _setup_eval(self, feature_extractor: torch.nn.Module | None) -> None:
        """Test splits, scorers and the real images' features, once (rank 0)."""
        from gan.data import domain_dir, scan_domain
        from gan.evaluate import add_reference
        from gan.metrics import Scorer

        e, d = self.cfg.eval, self.cfg.data
        self.eval_a = scan_domain(domain_dir(d, "test_a"), "data.test_a (eval)").paths[: e.num_images]
        self.eval_b = scan_domain(domain_dir(d, "test_b"), "data.test_b (eval)").paths[: e.num_images]
        ab = Scorer(e.metrics, feature_extractor, e.inception_weights, self.device)  # fakes B vs real test_b
        ba = Scorer(e.metrics, ab.feature, e.inception_weights, self.device)
        add_reference(ab, self.eval_b, d.crop_size)
        add_reference(ba, self.eval_a, d.crop_size)
        self.scorers = {"ab": ab, "ba": ba}

    def evaluate(self) -> dict[str, float]:
        """Metrics on the test splits in both directions (rank 0; a collective for best.pt)."""
        from gan.evaluate import add_translations
        from gan.metrics import better

        results: dict[str, float] = {}
        improved = False
        if is_main():
            size = self.cfg.data.crop_size
            for key, net, paths in (("ab", self.nets["g_ab"], self.eval_a), ("ba", self.nets["g_ba"], self.eval_b)):
                scorer = self.scorers[key]
                scorer.reset_fake()
                net.eval()
                add_translations(scorer, net, paths, size, self.device)
                net.train()
                results.update({f"{k}_{key}": v for k, v in scorer.compute().items()})
            self.tracker.log(self.step, results)
            metric = self.cfg.eval.best
            improved = better(metric, results[metric], self.best["value"] if self.best else None)
            if improved:
                self.best = {"metric": metric, "value": results[metric], "step": self.step}
            log.info("eval at step %d: %s%s", self.step, ", ".join(f"{k} {v:.4g}" for k, v in results.items()),
                     " (best so far)" if improved else "")
        if dist_utils.any_rank(improved, self.device):
            path = self.save()
            if is_main():
                ckpt_io.link(path, self.run_dir / "best.pt")
        return results

    def _accumulate(self, terms: dict[str, torch.Tensor]) -> None:
        for k, v in terms.items():
            self._acc[k] = self._acc.get(k, 0.0) + v.float()
        self._acc_n += 1

    def _log(self, elapsed: float, data_wait: float) -> dict[str, float]:
        n = max(1, self._acc_n)
        metrics = dist_utils.mean_over_ranks({k: float(v) / n for k, v in self._acc.items()}, self.device)
        metrics["lr_g"] = self.opt_g.param_groups[0]["lr"]
        metrics["lr_d"] = self.opt_d.param_groups[0]["lr"]
        metrics["img_per_s"] = n * self.cfg.data.batch_size * self.world_size / max(elapsed, 1e-9)
        metrics["data_wait"] = data_wait / max(elapsed, 1e-9)
        metrics["epoch"] = self.epochs_done()
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
            f"schedule   {self.total_steps()} steps ({self.steps_per_epoch} per epoch, batch "
            f"{self.cfg.data.batch_size} x {self.world_size} process(es)), lr {self.base_lr:g} {t.lr_policy}"
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
    "train.channels_last", "train.scale_lr", "data.root", "data.train_a", "data.train_b", "data.test_a", "data.test_b",
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


def train(cfg: Config | None, resume: str | Path | None = None, overrides: list[str] = (),
          vgg_weights: str | None = None) -> Path:
    """Start (or with `resume`, continue) a run; returns the last checkpoint path. Under torchrun, every
    process calls this; they join the process group here."""
    if resume is not None:
        state = ckpt_io.load_checkpoint(resume)
        cfg = resume_config(state["config"], list(overrides))
        run_dir = ckpt_io.run_dir_of(Path(state["path"]))
    else:
        state = None
    dist_utils.init(cfg.train.device)
    try:
        if state is not None:
            if is_main():
                save_config(cfg, run_dir / "config.yaml")
        else:
            run_dir = prepare_run_dir(cfg)
        trainer = Trainer(cfg, run_dir, resume=state, vgg_weights=vgg_weights)
        try:
            return trainer.fit()
        finally:
            trainer.tracker.close()
    finally:
        dist_utils.shutdown()
