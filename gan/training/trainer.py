"""The one training loop, for every model kind: optimizers, LR schedule, precision, compile, DDP, signals,
divergence stop, checkpoints and exact resume, tracking, samples, evaluation and best.pt.

A model kind (gan/models/, interface in gan/models/base.py) owns its nets and the loss arithmetic of one step;
it calls back `Trainer.update(name, loss, terms)` once per optimizer and `Trainer.autocast()` around its
forward passes. Everything else is here, the same for every kind.

One code path for CPU and CUDA, fp32 and mixed precision (autocast + GradScaler, both no-ops when off), and
one or many processes (helpers in gan.distributed).

One host synchronisation per step: the loss terms of every update are checked for NaN/inf on the device, and
that flag and the stop-signal flag travel together (one all-reduce under DDP) to the one `.tolist()` that
decides whether to go on. A diverged step is never saved; the run stops with the term, the update and the
step named.

Exact resume: every source of randomness is either restored from the checkpoint (torch/CUDA/numpy/python
RNGs and image pools of every rank) or a pure function of (seed, epoch, index) (data order, augmentation).
The position is (epoch, step in epoch); the learning rate is a pure function of it, so it continues where
it was, also when a run resumes with another number of processes (then at the same fraction of the epoch).

Distributed (torchrun): the modules a kind calls in its step are wrapped in DistributedDataParallel
(`model.wrap`), each update calls its wrapper once, and gradients are averaged over ranks; stopping (signal
or divergence) is agreed on by all ranks at the same step, so no rank is left waiting.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import math
import os
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch

from gan import DivergenceError, GanError
from gan.checkpoint import schema as ckpt_io
from gan import distributed as dist_utils
from gan.config import Config, from_dict, save_config, to_dict
from gan.cpus import use_threads
from gan.data.datasets import TrainData, build_train_data, domain_dir
from gan.distributed import barrier, get_rank, get_world_size, is_main
from gan.models import kind_class
from gan.models.base import TrainModel
from gan.nn.networks import count_parameters, fade_skips
from gan.runtime import Runtime
from gan.training.tracking import Tracker, make_grid

log = logging.getLogger("gan")

DIRECTION_INPUT = {"AtoB": "A", "BtoA": "B"}  # the batch key (domain) each generator direction translates


def lr_factor(cfg: Config, epochs_done: float, step: int) -> float:
    """The LR multiplier at a position. Epoch-based runs: constant for train.epochs, then linear to zero over
    train.epochs_decay (the reference's n_epochs + n_epochs_decay, applied per step rather than per epoch).
    With train.max_steps: constant for the first half of the steps, linear to zero over the second.
    `step` policy: x lr_gamma every lr_step_epochs epochs; `cosine`: half a cosine over the whole run.
    train.warmup_steps > 0 multiplies all of these by a linear ramp from 1/warmup_steps to 1 over those steps."""
    warm = min(1.0, (step + 1) / cfg.train.warmup_steps) if cfg.train.warmup_steps else 1.0
    return warm * _schedule_factor(cfg, epochs_done, step)


def _schedule_factor(cfg: Config, epochs_done: float, step: int) -> float:
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


class Trainer:
    """Builds everything from a Config and runs `fit()`. `resume` is a loaded checkpoint dict.

    Construction has no side effect on disk: a start-up error (missing folder, bad eval folder, offline VGG)
    leaves nothing behind. The run directory, its config.yaml and the tracker are opened by `fit()`."""

    def __init__(self, cfg: Config, run_dir: Path, resume: dict | None = None, vgg_weights: str | None = None,
                 tracker: Tracker | None = None, feature_extractor: torch.nn.Module | None = None,
                 probes: tuple = ()):
        self.cfg = cfg
        # Measurements taken at every log step (rank 0): probe(trainer) -> {name: float}, logged with the losses.
        # They run with the global generators saved and put back, so a run draws the same with or without them.
        self.probes = tuple(probes)
        self.run_dir = Path(run_dir)
        t = cfg.train
        self.runtime = Runtime.resolve(t.device, t.precision, channels_last=t.channels_last,
                                       what="train.precision", device_option="train.device")
        self.device, self.precision = self.runtime.device, self.runtime.precision
        self.rank, self.world_size = get_rank(), get_world_size()
        # The run's random state lives in the global generators (torch, CUDA, NumPy, Python: what data
        # augmentation, dropout and weight init draw from) only while the run computes: here while the nets are
        # built, and inside fit(). Outside, the caller's state is as it was (an app or a test that builds a
        # Trainer is not reseeded).
        caller = ckpt_io.rng_state()
        torch.manual_seed(cfg.seed + self.rank)
        np.random.seed((cfg.seed + self.rank) % 2**32)
        random.seed(cfg.seed + self.rank)
        try:
            self._build(cfg, resume, vgg_weights, tracker, feature_extractor)
        finally:
            if not hasattr(self, "_rng"):  # set by _restore from the checkpoint; else the state after building
                self._rng = ckpt_io.rng_state()
            ckpt_io.set_rng_state(caller)
        self._in_run = False

    def _build(self, cfg: Config, resume: dict | None, vgg_weights: str | None, tracker: Tracker | None,
               feature_extractor: torch.nn.Module | None) -> None:
        t = cfg.train
        kind = kind_class(cfg.model.kind)
        if cfg.eval.every > 0 and not kind.generators:
            raise GanError(f"eval.every={cfg.eval.every}: model kind {cfg.model.kind} has no one-input generator to "
                           "evaluate (set eval.every=0)")
        self.data: TrainData = build_train_data(cfg, self.rank, self.world_size, self.device, kind.domains,
                                                kind.extra_images(cfg))
        self.model: TrainModel = kind.build(cfg, self.device, self.rank, vgg_weights)
        self.memory_format = self.runtime.memory_format
        if self.runtime.channels_last:
            self.model.to(memory_format=self.memory_format)
        # The plain modules: checkpoints hold their state_dicts, whatever wraps them for training.
        self.nets = self.model.nets
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model.wrap(lambda m: DDP(m, device_ids=ids, broadcast_buffers=False))
        if t.compile:
            self.model.wrap(torch.compile)

        scale = {"none": 1.0, "linear": float(self.world_size), "sqrt": math.sqrt(self.world_size)}[t.scale_lr]
        self.base_lr = t.lr * scale
        unknown = sorted(set(t.lr_scales) - set(self.model.optimizers))
        if unknown:
            raise GanError(f"train.lr_scales: {', '.join(unknown)} is not an optimizer of model kind "
                           f"{cfg.model.kind} (it has: {', '.join(self.model.optimizers)})")
        self.optimizers = {
            name: torch.optim.Adam(itertools.chain.from_iterable(self.nets[n].parameters() for n in net_names),
                                   lr=self.base_lr, betas=(t.beta1, t.beta2))
            for name, net_names in self.model.optimizers.items()}
        # One scaler per optimizer so an overflow in one update does not shrink another's scale.
        # Disabled (fp32, bf16) = pass-through.
        self.scalers = {name: torch.amp.GradScaler(self.device.type, enabled=self.precision.name == "fp16")
                        for name in self.optimizers}
        # Exponential moving average of the generators (train.ema_decay > 0): plain frozen copies, updated
        # after every step; what samples, evaluation, test.py and export use.
        self.ema = {name: copy.deepcopy(self.nets[name]).requires_grad_(False).eval()
                    for name in dict.fromkeys(self.model.generators.values())} if t.ema_decay > 0 else {}
        self.steps_per_epoch = self.data.steps_per_epoch
        self.epoch, self.in_epoch = 0, 0  # position: epoch, and optimizer steps taken in it
        self.step = 0
        self.tracker = tracker
        self.wandb_run_id = resume.get("wandb_run_id") if resume else None
        self._stop_signal: str | None = None
        self._acc: dict[str, torch.Tensor] = {}
        self._acc_n = 0
        self._step_terms: list[tuple[str, dict[str, torch.Tensor]]] = []
        self._batch: dict[str, torch.Tensor] = {}
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
        for name, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = self.base_lr * factor * self.cfg.train.lr_scales.get(name, 1.0)

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema <- ema + (1 - d) (net - ema), with d = min(ema_decay, (1 + step) / (10 + step)): the usual
        warm-up, so early averages are not dominated by the random initial weights. Buffers are copied."""
        if not self.ema:
            return
        d = min(self.cfg.train.ema_decay, (1 + self.step) / (10 + self.step))
        for name, avg in self.ema.items():
            live = self.nets[name]
            avg_p, live_p = list(avg.parameters()), list(live.parameters())
            torch._foreach_lerp_(avg_p, live_p, 1.0 - d)
            for b_avg, b_live in zip(avg.buffers(), live.buffers()):
                b_avg.copy_(b_live)

    def generator_for(self, direction: str) -> torch.nn.Module:
        """The generator of `direction` that samples and evaluation use: the EMA when kept, else the net."""
        name = self.model.generators[direction]
        return self.ema.get(name, self.nets[name])

    def lr(self, name: str) -> float:
        return self.optimizers[name].param_groups[0]["lr"]

    def state_dict(self) -> dict:
        """The whole training state, in the checkpoint schema. Collective under DDP: every rank must call it
        (the per-process state and RNGs of all ranks are gathered)."""
        rank_state = dist_utils.all_gather_object(self.model.rank_state())
        rngs = dist_utils.all_gather_object(ckpt_io.rng_state() if self._in_run else self._rng)
        return ckpt_io.pack(
            kind=self.cfg.model.kind,
            config=to_dict(self.cfg),
            step=self.step,
            epoch=self.epoch,
            position={"epoch": self.epoch, "in_epoch": self.in_epoch, "steps_per_epoch": self.steps_per_epoch,
                      "batch_size": self.cfg.data.batch_size, "world_size": self.world_size},
            nets={k: net.state_dict() for k, net in self.nets.items()},
            ema={k: net.state_dict() for k, net in self.ema.items()} or None,
            optimizers={k: opt.state_dict() for k, opt in self.optimizers.items()},
            scalers={k: sc.state_dict() for k, sc in self.scalers.items()},
            schedule={"policy": self.cfg.train.lr_policy, "base_lr": self.base_lr,
                      "lr": {k: self.lr(k) for k in self.optimizers}},
            rank_state=rank_state,
            rng=rngs,
            wandb_run_id=self.tracker.run_id if self.tracker is not None else self.wandb_run_id,
            best=self.best,
        )

    def _restore(self, state: dict) -> None:
        path = Path(state.get("path", "checkpoint"))
        for name, net in self.nets.items():
            net.load_state_dict(ckpt_io.require(state, f"nets.{name}", path, dict))
        for name, avg in self.ema.items():
            saved = (state.get("ema") or {}).get(name)
            # A run that turns the EMA on when resuming starts it from the current weights.
            avg.load_state_dict(saved if saved is not None else self.nets[name].state_dict())
        for name, opt in self.optimizers.items():
            opt.load_state_dict(ckpt_io.require(state, f"optimizers.{name}", path, dict))
            scaler_state = state["scalers"].get(name)
            if scaler_state:
                self.scalers[name].load_state_dict(scaler_state)
        if state["rank_state"]:
            self.model.load_rank_state(state["rank_state"][self.rank % len(state["rank_state"])], self.device)
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
            self._rng = state["rng"][self.rank]
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
        """The step's forward passes run under this: autocast to bf16/fp16, or nothing in fp32."""
        return self.precision.autocast()

    def update(self, name: str | tuple[str, ...], loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """Backward `loss` once and step optimizer `name` (or each of a tuple of names, e.g. a generator and
        the heads its loss also trains) through the first one's GradScaler. The terms are kept for the
        end-of-step finite check (no host synchronisation here)."""
        names = (name,) if isinstance(name, str) else tuple(name)
        self._step_terms.append((names[0], {f"loss_{names[0]}": loss, **terms}))
        scaler = self.scalers[names[0]]
        for n in names:
            self.optimizers[n].zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        for n in names:
            scaler.step(self.optimizers[n])
        scaler.update()

    def train_step(self, batch: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One step of the model kind. Returns (loss terms, images for the sample grid), detached."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        batch = {k: v.contiguous(memory_format=self.memory_format) if v.dim() == 4 else v for k, v in batch.items()}
        self.set_lr()
        # model.generator.skip_fade: the generators' skip paths weigh 1 - step / skip_fade from this step on
        fade_skips([self.nets[n] for n in set(self.model.generators.values())], self.step,
                   self.cfg.model.generator.skip_fade)
        self._step_terms = []
        self._batch = batch
        return self.model.training_step(batch, self)

    def _end_of_step(self) -> bool:
        """The step's one synchronisation: non-finite terms (any rank) and stop requests (any rank) in one
        flag vector. Raises DivergenceError; returns True when training should stop."""
        values = torch.stack([v.detach().float().reshape(()) for _, terms in self._step_terms
                              for v in terms.values()]) if self._step_terms else torch.zeros(1, device=self.device)
        bad = (~torch.isfinite(values)).any().float()
        stop = torch.tensor(float(self._stop_signal is not None), device=bad.device)
        any_bad, any_stop = dist_utils.max_over_ranks(torch.stack([bad, stop])).tolist()
        if any_bad:
            self._diverged(values)
        return bool(any_stop)

    def _diverged(self, values: torch.Tensor) -> None:
        latest = self.run_dir / "latest.pt"
        kept = f"the last good checkpoint is {latest}" if latest.exists() else "no checkpoint was written yet"
        named = [(upd, k) for upd, terms in self._step_terms for k in terms]
        bad = [(upd, k, v) for (upd, k), v in zip(named, values.tolist()) if not math.isfinite(v)]
        if not bad:
            raise DivergenceError(f"a loss became non-finite on another process at step {self.step}: "
                                  f"training stopped without saving this step; {kept}")
        upd, name, value = next((b for b in bad if not b[1].startswith("loss_")), bad[0])
        nets = ", ".join(self.model.optimizers[upd])
        raise DivergenceError(
            f"loss term {name} is {value} at step {self.step} (in the {upd} update: {nets}): training stopped "
            f"without saving this step; {kept}. Try a lower train.lr, fp32 precision, or another seed.")

    # -------------------------------------------------------------------------------------------- loop

    def open_run(self) -> None:
        """Create the run directory, write config.yaml, start tracking (rank 0; every rank calls it)."""
        if is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self.step == 0:
                (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
            save_config(self.cfg, self.run_dir / "config.yaml")
        if self.tracker is None:
            self.tracker = Tracker(self.run_dir, self.cfg, enabled=is_main(), run_id=self.wandb_run_id)
        barrier()

    @contextlib.contextmanager
    def _run_state(self):
        """Inside: the global RNGs hold this run's state, and cuDNN picks its fastest kernels per input shape
        (when every batch has the crop's size: with preprocess none or scale_width each batch has another size,
        and benchmarking each would cost more than it gains). Outside: the caller's RNGs and setting."""
        caller, bench = ckpt_io.rng_state(), torch.backends.cudnn.benchmark
        ckpt_io.set_rng_state(self._rng)
        fixed = self.cfg.data.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop")
        torch.backends.cudnn.benchmark = self.device.type == "cuda" and fixed
        self._in_run = True
        try:
            yield
        finally:
            self._in_run = False
            self._rng = ckpt_io.rng_state()
            ckpt_io.set_rng_state(caller)
            torch.backends.cudnn.benchmark = bench

    def fit(self) -> Path:
        """Train to the end (or to a stop signal); returns the path of the last checkpoint written."""
        self.open_run()
        t = self.cfg.train
        self._print_summary()
        bar = _progress(self.total_steps(), self.step) if is_main() else None
        window_start, data_wait = time.perf_counter(), 0.0
        estimate = _RunEstimate(self.step, torch.get_num_threads() if self.device.type == "cpu" else 0) \
            if is_main() else None
        waited = 0.0  # seconds spent waiting for data since the start (the estimate leaves them out of its hint)
        stop = False
        with self._signals(), self._run_state():
            while not self.finished() and not stop:
                self.data.set_position(self.epoch, self.in_epoch)
                fetch_start = time.perf_counter()
                for batch in self.data.loader:
                    data_wait += time.perf_counter() - fetch_start
                    waited += time.perf_counter() - fetch_start
                    terms, images = self.train_step(batch)
                    self.update_ema()
                    self.step += 1
                    self.in_epoch += 1
                    if self.in_epoch == self.steps_per_epoch:
                        self.epoch, self.in_epoch = self.epoch + 1, 0
                    # All ranks agree to stop at the same step, whichever of them got the signal.
                    stop = self._end_of_step()
                    self._accumulate(terms)
                    done = self.finished()
                    if bar is not None:
                        bar.update(1)
                    if estimate is not None:
                        estimate.after_step(self.step, self.total_steps(), waited)
                    if self.step % t.log_every == 0 or done:
                        elapsed = time.perf_counter() - window_start
                        metrics = self._log(elapsed, data_wait)
                        if bar is not None:
                            shown = [k for k in metrics if k.startswith("loss_")][:3]
                            bar.set_postfix({k: f"{metrics[k]:.3f}" for k in shown}
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
        """Test splits, one scorer per generator direction, and the real images' features, once (rank 0).
        AtoB translates test_a and compares with test_b; BtoA the other way."""
        from gan.data.datasets import domain_dir, scan_domain
        from gan.evaluation.metrics import Scorer, add_reference

        e, d = self.cfg.eval, self.cfg.data
        splits = {"AtoB": ("test_a", "test_b"), "BtoA": ("test_b", "test_a")}
        paths = {}
        for split in {s for direction in self.model.generators for s in splits[direction]}:
            paths[split] = scan_domain(domain_dir(d, split), f"data.{split} (eval)").paths[: e.num_images]
        self.scorers = {}
        feature = feature_extractor
        for direction in self.model.generators:
            source, target = splits[direction]
            scorer = Scorer(e.metrics, feature, e.inception_weights, self.device)
            feature = scorer.feature  # one extractor for every direction
            add_reference(scorer, paths[target], d.crop_size)
            self.scorers[direction] = (scorer, paths[source])

    def evaluate(self) -> dict[str, float]:
        """Metrics on the test splits for every generator direction (rank 0; a collective for best.pt). The test
        images are resized to the crop size and translated by the generator as the step runs it (its device,
        precision and layout), as the samples are."""
        from gan.data.io import to_uint8
        from gan.evaluation.metrics import add_translations, better

        results: dict[str, float] = {}
        improved = False
        if is_main():
            size = self.cfg.data.crop_size
            for direction, (scorer, sources) in self.scorers.items():
                net = self.generator_for(direction)
                scorer.reset_fake()
                was_training = net.training
                net.eval()

                def translate(image: torch.Tensor, net=net) -> np.ndarray:  # uint8 (C, H, W) -> uint8 (H, W, C)
                    return to_uint8(self.runtime.run(net, image[None])[0][0].float().cpu())

                add_translations(scorer, translate, sources, size)
                net.train(was_training)
                suffix = {"AtoB": "ab", "BtoA": "ba"}[direction]
                results.update({f"{k}_{suffix}": v for k, v in scorer.compute().items()})
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
        for k, v in terms.items():  # stays on the device: read only when logging
            self._acc[k] = self._acc[k] + v.float() if k in self._acc else v.float()
        self._acc_n += 1

    def _log(self, elapsed: float, data_wait: float) -> dict[str, float]:
        n = max(1, self._acc_n)
        metrics = dist_utils.mean_over_ranks({k: float(v) / n for k, v in self._acc.items()}, self.device)
        for name in self.optimizers:
            metrics[f"lr_{name}"] = self.lr(name)
        metrics["img_per_s"] = n * self.cfg.data.batch_size * self.world_size / max(elapsed, 1e-9)
        metrics["data_wait"] = data_wait / max(elapsed, 1e-9)
        metrics["epoch"] = self.epochs_done()
        if self.device.type == "cuda":
            metrics["cuda_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        if self.probes and is_main():
            saved = ckpt_io.rng_state()
            try:
                for probe in self.probes:
                    metrics.update(probe(self))
            finally:
                ckpt_io.set_rng_state(saved)
        self._acc, self._acc_n = {}, 0
        self.tracker.log(self.step, metrics)
        return metrics

    def _sample(self, images: dict[str, torch.Tensor]) -> None:
        if not is_main():
            return
        rows, caption = self.model.sample_rows(images)
        if self.ema:
            # One more row: each direction's input through the EMA generator (what test.py will use).
            row = []
            with torch.no_grad():
                for direction in self.model.generators:
                    x = self._batch[DIRECTION_INPUT[direction]][:1]
                    row += [x[0], self.generator_for(direction)(x)[0].float()]
            rows.append(row)
            caption += "  /  EMA: " + " | ".join(f"{DIRECTION_INPUT[d]} | {d}" for d in self.model.generators)
        self.tracker.log_sample(self.step, make_grid(rows), caption=caption)

    def _held_out_line(self) -> str | None:
        """Said once at the start when training has no held-out photos to show or score."""
        test_a = domain_dir(self.cfg.data, "test_a")
        if self.cfg.eval.every or test_a.is_dir():
            return None
        return (f"held-out   none: data.test_a ({test_a}) is not a folder, so samples show training crops only and "
                "nothing is evaluated (point data.test_a at held-out photos and set eval.every=N to score them)")

    def _print_summary(self) -> None:
        if not is_main():
            return
        d, t = self.data, self.cfg.train
        b = d.domain_b
        skipped = len(d.domain_a.skipped) + (len(b.skipped) if b else 0)
        params = {name: count_parameters(net) for name, net in self.nets.items()}
        lines = [
            f"run        {self.run_dir}",
            f"device     {self.device} ({t.precision}{', compiled' if t.compile else ''}"
            f"{', ' + _count(torch.get_num_threads(), 'CPU thread') if self.device.type == 'cpu' else ''}"
            f"{f', {self.world_size} processes' if self.world_size > 1 else ''})",
            f"data       A: {len(d.domain_a.paths)} images in {d.domain_a.folder}"
            f"{f' ({len(d.domain_a.skipped)} skipped)' if d.domain_a.skipped else ''}",
            (f"           B: {len(b.paths)} images in {b.folder}"
             f"{f' ({len(b.skipped)} skipped)' if b.skipped else ''}") if b else
            f"           B: not read by model kind {self.cfg.model.kind}",
            f"           {skipped} unreadable file(s) skipped" if skipped else None,
            self._held_out_line(),
            f"model      {self.cfg.model.kind}: " + ", ".join(f"{k} {v:,}" for k, v in params.items()) + " params",
            f"schedule   {self.total_steps()} steps ({self.steps_per_epoch} per epoch, batch "
            f"{self.cfg.data.batch_size} x {self.world_size} process(es)), lr {self.base_lr:g} {t.lr_policy}"
            + (f"; resuming at step {self.step}" if self.step else ""),
        ]
        log.info("\n".join(line for line in lines if line))
        self.tracker.summary({
            "images_a": len(d.domain_a.paths), "images_b": len(b.paths) if b else 0, "skipped_files": skipped,
            **{f"params_{k}": v for k, v in params.items()},
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


class _RunEstimate:
    """Says once, early, what the whole run will cost at the speed measured so far, so that a run which would
    take days is known to in seconds, not found out from a progress bar redrawn every 30 s in a log file.

    And, training on a CPU with several threads, whether the machine looks busy: over the timed steps this
    process got much less CPU time than its threads could use (other programs took the cores; PyTorch's
    threads then spin and wait for each other, which costs 2-3x). It only says so, pointing at the thread
    setting; nothing is changed. Time spent waiting for data is left out (threads idle then on a quiet machine
    too). The clocks and the load reader are arguments, so a test can play a busy machine."""

    STEPS = 10  # steps timed after the first (which includes start-up and warm-up)
    BUSY = 0.6  # below this share of its threads' time, the machine is busy

    def __init__(self, start_step: int, threads: int = 0, clock=time.perf_counter, cpu_clock=time.process_time,
                 load=None, cores=None):
        from gan.cpus import available_cpus

        self.start_step, self.threads, self.t0 = start_step, threads, None
        self.clock, self.cpu_clock = clock, cpu_clock
        self.load = load or (lambda: os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
        self.cores = cores or available_cpus

    def after_step(self, step: int, total: int, waited: float = 0.0) -> None:
        done = step - self.start_step
        if done == 1:
            self.t0, self.c0, self.w0 = self.clock(), self.cpu_clock(), waited
        elif done == 1 + self.STEPS and self.t0 is not None:
            wall = self.clock() - self.t0
            per_step = wall / self.STEPS
            log.info("%.3g s/step over steps %d-%d: the %d steps left take about %s", per_step, step - self.STEPS + 1,
                     step, total - step, _duration(per_step * (total - step)))
            computing = wall - (waited - self.w0)
            if self.threads > 1 and computing > 0:
                share = (self.cpu_clock() - self.c0) / (computing * self.threads)
                if share < self.BUSY:
                    load = self.load()
                    seen = f" (load average {load:.1f} on {self.cores()} cores)" if load is not None else ""
                    log.warning("this process got %.0f%% of its %d CPU threads' time over those steps: the machine "
                                "looks busy%s. Beside other busy programs, train.threads=1 is usually 2-3x faster "
                                "(README, Threads); training goes on as set", 100 * share, self.threads, seen)


def _count(n: int, noun: str) -> str:
    """"1 CPU thread", "2 CPU threads"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# ------------------------------------------------------------------------------------- entry helpers

RESUMABLE_KEYS = (
    "train.epochs", "train.epochs_decay", "train.max_steps", "train.log_every", "train.sample_every",
    "train.save_every", "train.keep_last", "train.device", "train.threads", "train.precision", "train.compile",
    "train.channels_last", "train.scale_lr", "train.ema_decay", "data.root", "data.train_a", "data.train_b", "data.test_a", "data.test_b",
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


def check_run_dir(cfg: Config) -> Path:
    """runs/<name>/ for a new run; refuses a folder that holds a run with checkpoints. Creates nothing."""
    run_dir = Path(cfg.train.output_dir) / cfg.name
    if (run_dir / "latest.pt").exists() or any(run_dir.glob("checkpoints/step_*.pt")):
        raise GanError(f"{run_dir} already holds a training run. Continue it with "
                       f"`python train.py --resume {run_dir}`, or start a new one with name=<other name> "
                       "(or delete the folder).")
    return run_dir


def prepare_run_dir(cfg: Config) -> Path:
    """check_run_dir, then create the folder (for callers that build a Trainer themselves)."""
    run_dir = check_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def train(cfg: Config | None, resume: str | Path | None = None, overrides: list[str] = (),
          vgg_weights: str | None = None, probes: tuple = ()) -> Path:
    """Start (or with `resume`, continue) a run; returns the last checkpoint path. Under torchrun, every
    process calls this; they join the process group here."""
    if resume is not None:
        state = ckpt_io.load_checkpoint(resume)
        cfg = resume_config(state["config"], list(overrides))
        run_dir = ckpt_io.run_dir_of(Path(state["path"]))
    else:
        state = None
    use_threads(cfg.train.threads)
    dist_utils.init(cfg.train.device)
    try:
        if state is None:
            run_dir = check_run_dir(cfg)
        trainer = Trainer(cfg, run_dir, resume=state, vgg_weights=vgg_weights, probes=probes)  # nothing on disk yet
        try:
            last = trainer.fit()
        finally:
            if trainer.tracker is not None:
                trainer.tracker.close()
        barrier()  # every process done before any tears the group down (gloo aborts on a peer already gone)
        return last
    finally:
        dist_utils.shutdown()
