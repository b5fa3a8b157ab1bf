import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gan import GanError
from gan.checkpoint import schema as ckpt_io
from gan.config import load_config
from gan import DivergenceError
from gan.training.trainer import Trainer, lr_factor, prepare_run_dir, train
from tests.helpers import ESTIMATE, HANG_GUARD

ROOT = Path(__file__).resolve().parents[1]


def run_train(*args, timeout=HANG_GUARD, **kw):
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=kw.get("cwd", ROOT))


def test_train_py_end_to_end(tiny_overrides, tmp_path):
    r = run_train(*tiny_overrides, "train.max_steps=6", "train.save_every=4")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "tiny"
    assert (run / "config.yaml").is_file() and (run / "latest.pt").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000004.pt", "step_0000006.pt"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000004.png", "step_0000006.png"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r_["step"] for r_ in rows] == [2, 4, 6]
    for row in rows:
        for k in ("loss_g", "loss_d", "cycle_a", "adv_ab", "d_b", "lr_g", "img_per_s", "data_wait"):
            assert math.isfinite(row[k])
    state = torch.load(run / "latest.pt", weights_only=True)
    assert state["format"] == "gan-checkpoint" and state["step"] == 6
    assert set(state["nets"]) == {"g_ab", "g_ba", "d_a", "d_b"}
    assert {"optimizers", "schedule", "scalers", "rank_state", "rng", "config", "wandb_run_id", "position", "kind", "ema"} <= set(state)
    assert state["config"]["model"]["generator"]["ngf"] == 4
    for name in ("device", "data", "model", "schedule"):
        assert name in r.stderr  # the start-up summary
    # A second run with the same name is refused; nothing is lost.
    r2 = run_train(*tiny_overrides, "train.max_steps=2")
    assert r2.returncode == 2 and "already holds a training run" in r2.stderr and "--resume" in r2.stderr
    assert torch.load(run / "latest.pt", weights_only=True)["step"] == 6


def test_train_py_reports_config_errors_without_traceback(tiny_overrides):
    r = run_train(*tiny_overrides, "train.lrr=1")
    assert r.returncode == 2 and "error: train.lrr: unknown key; did you mean train.lr?" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_train("--config", "nope.yaml")
    assert r.returncode == 2 and "config file not found: nope.yaml" in r.stderr


class StopAt(Trainer):
    """Simulates an interruption after `stop_at` steps (as SIGTERM would)."""

    stop_at = None

    def train_step(self, batch):
        out = super().train_step(batch)
        if self.step + 1 == self.stop_at:
            self._stop_signal = "TEST"
        return out


def straight_and_resumed(over: list[str], tmp_path, stop_at: int) -> tuple[Trainer, Trainer]:
    """The same run twice: straight through (name=straight), and stopped after `stop_at` steps then resumed
    from its checkpoint (name=resumed). Returns (straight, resumed) after both finished."""
    straight_cfg = load_config(None, over + ["name=straight"])
    straight = Trainer(straight_cfg, prepare_run_dir(straight_cfg))
    straight.fit()
    cfg = load_config(None, over + ["name=resumed"])
    first = StopAt(cfg, prepare_run_dir(cfg))
    first.stop_at = stop_at
    first.fit()
    assert first.step == stop_at
    second = Trainer(cfg, tmp_path / "runs" / "resumed", resume=ckpt_io.load_checkpoint(tmp_path / "runs" / "resumed"))
    assert second.step == stop_at and second.lr("g") == first.lr("g")
    second.fit()
    return straight, second


def weights(trainer):
    return {f"{n}.{k}": v.clone() for n, net in trainer.nets.items() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("workers", [0, 2])
def test_exact_resume_is_bitwise_identical(tiny_overrides, tmp_path, workers):
    over = tiny_overrides + [f"data.num_workers={workers}", "train.max_steps=9", "train.save_every=100",
                             "train.pool_size=3", "data.batch_size=1"]
    straight_cfg = load_config(None, over + ["name=straight"])
    straight = Trainer(straight_cfg, prepare_run_dir(straight_cfg))
    straight.fit()

    cfg = load_config(None, over + ["name=resumed"])
    first = StopAt(cfg, prepare_run_dir(cfg))
    first.stop_at = 4  # stop mid-epoch (6 samples per epoch) and mid-schedule
    first.fit()
    assert first.step == 4
    state = ckpt_io.load_checkpoint(tmp_path / "runs" / "resumed")
    assert state["step"] == 4
    second = Trainer(cfg, tmp_path / "runs" / "resumed", resume=state)
    assert second.step == 4 and second.lr("g") == first.lr("g")
    second.fit()
    assert second.step == 9
    a, b = weights(straight), weights(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa, sb = straight.optimizers["g"].state_dict()["state"], second.optimizers["g"].state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    for pool in ("pool_a", "pool_b"):
        xs, ys = getattr(straight.model, pool).images, getattr(second.model, pool).images
        assert len(xs) == len(ys) == 3  # zip below must not truncate
        assert all(torch.equal(x, y) for x, y in zip(xs, ys))


def test_resume_through_train_py_keeps_stored_config(tiny_overrides, tmp_path):
    r = run_train(*tiny_overrides, "train.max_steps=2")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "tiny"
    r = run_train("--resume", str(run), "train.max_steps=4", "train.log_every=1")
    assert r.returncode == 0, r.stderr
    assert "resuming at step 2" in r.stderr
    assert torch.load(run / "latest.pt", weights_only=True)["step"] == 4
    r = run_train("--resume", str(run), "model.generator.ngf=8")
    assert r.returncode == 2 and "model.generator.ngf: cannot be changed when resuming" in r.stderr


def test_sigterm_saves_and_exits_zero(tiny_overrides, tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    p = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *tiny_overrides, "train.max_steps=100000",
                          "train.log_every=1", "train.save_every=100000"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "runs" / "tiny" / "metrics.jsonl"
    deadline = time.time() + HANG_GUARD
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=HANG_GUARD)
    assert p.returncode == 0, err
    assert "SIGTERM" in err and "resume with: python train.py --resume" in err
    state = torch.load(tmp_path / "runs" / "tiny" / "latest.pt", weights_only=True)
    assert 2 <= state["step"] < 100000


def test_non_finite_loss_stops_with_term_and_step(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.max_steps=10", "train.save_every=2"])
    trainer = Trainer(cfg, prepare_run_dir(cfg))
    original = trainer.model.generator_loss

    def poisoned(*args):
        total, terms, images = original(*args)
        if trainer.step == 4:  # the 5th step
            terms["cycle_b"] = terms["cycle_b"] * float("nan")
            total = sum(terms.values())
        return total, terms, images

    trainer.model.generator_loss = poisoned
    with pytest.raises(DivergenceError) as e:
        trainer.fit()
    msg = str(e.value)
    assert "loss term cycle_b is nan at step 5" in msg and "latest.pt" in msg
    state = torch.load(tmp_path / "runs" / "tiny" / "latest.pt", weights_only=True)
    assert state["step"] == 4  # the last good checkpoint, untouched
    assert all(torch.isfinite(v).all() for v in state["nets"]["g_ab"].values())


def test_non_finite_discriminator_term_is_named_with_its_update(tiny_overrides, tmp_path, monkeypatch):
    import gan.distributed as dist_utils

    cfg = load_config(None, tiny_overrides + ["train.max_steps=10", "train.save_every=100"])
    trainer = Trainer(cfg, prepare_run_dir(cfg))
    original = trainer.model.discriminator_loss

    def poisoned(*args):
        total, terms = original(*args)
        if trainer.step == 2:  # the 3rd step
            terms["d_b"] = terms["d_b"] * float("inf")
            total = terms["d_a"] + terms["d_b"]
        return total, terms

    trainer.model.discriminator_loss = poisoned
    # One flag vector per step goes through max_over_ranks (the one all-reduce under DDP); nothing else
    # asks the other processes anything per step.
    reductions = []
    real_max = dist_utils.max_over_ranks
    monkeypatch.setattr(dist_utils, "max_over_ranks", lambda t: reductions.append(t.shape) or real_max(t))
    monkeypatch.setattr(dist_utils, "any_rank", lambda *a: pytest.fail("a second per-step collective"))
    with pytest.raises(DivergenceError) as e:
        trainer.fit()
    msg = str(e.value)
    assert "loss term d_b is inf at step 3 (in the d update: d_a, d_b)" in msg and "without saving" in msg
    assert reductions == [(2,)] * 3
    assert not (tmp_path / "runs" / "tiny" / "latest.pt").exists()


def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    bad = tmp_path / "evil.pt"
    torch.save({"format": "gan-checkpoint", "payload": Evil()}, bad)
    with pytest.raises(GanError, match="refusing to load .*evil.pt: it holds Python objects"):
        ckpt_io.load_checkpoint(bad)
    assert not marker.exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(GanError, match="cannot read .*junk.pt as a PyTorch checkpoint"):
        ckpt_io.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(GanError, match="not a checkpoint of this project"):
        ckpt_io.load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(GanError, match="checkpoint not found"):
        ckpt_io.load_checkpoint(tmp_path / "missing.pt")


def test_bf16_on_cpu(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.precision=bf16", "train.max_steps=3"])
    path = train(cfg)
    state = torch.load(path, weights_only=True)
    assert state["step"] == 3 and state["nets"]["g_ab"]["model.1.weight"].dtype == torch.float32
    rows = [json.loads(x) for x in (tmp_path / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss_g"]) for r in rows)


def test_fp16_on_cpu_refused_after_auto(tiny_overrides):
    cfg = load_config(None, [o for o in tiny_overrides if not o.startswith("train.device")] +
                      ["train.precision=fp16", "train.device=auto"])
    if torch.cuda.is_available():
        pytest.skip("auto resolves to CUDA here")
    with pytest.raises(GanError, match="fp16 needs CUDA"):
        Trainer(cfg, Path("unused"))


def test_lr_schedule_values():
    cfg = load_config(None, ["train.epochs=2", "train.epochs_decay=2"])
    assert lr_factor(cfg, 0.0, 0) == 1 and lr_factor(cfg, 1.95, 39) == 1 and lr_factor(cfg, 2.0, 40) == 1
    assert lr_factor(cfg, 3.0, 60) == pytest.approx(0.5) and lr_factor(cfg, 3.9, 78) == pytest.approx(0.05)
    assert lr_factor(cfg, 4.0, 80) == 0
    steps = load_config(None, ["train.max_steps=100"])
    assert lr_factor(steps, 7.0, 49) == 1 and lr_factor(steps, 11.0, 75) == pytest.approx(0.5)
    s = load_config(None, ["train.lr_policy=step", "train.lr_step_epochs=2", "train.lr_gamma=0.5"])
    assert (lr_factor(s, 1.9, 0), lr_factor(s, 2.0, 0), lr_factor(s, 4.5, 0)) == (1, 0.5, 0.25)
    c = load_config(None, ["train.lr_policy=cosine", "train.max_steps=100"])
    assert lr_factor(c, 0, 0) == 1 and lr_factor(c, 0, 50) == pytest.approx(0.5) and lr_factor(c, 0, 100) == pytest.approx(0)


def test_lr_follows_the_schedule_during_training(tiny_overrides):
    # 6 samples, batch 2 -> 3 steps per epoch; 1 epoch constant + 1 epoch of linear decay
    cfg = load_config(None, tiny_overrides + ["data.batch_size=2", "train.epochs=1", "train.epochs_decay=1"])
    trainer = Trainer(cfg, prepare_run_dir(cfg))
    trainer.fit()
    assert trainer.step == 6 and trainer.epoch == 2
    lrs = [json.loads(x)["lr_g"] for x in (Path(cfg.train.output_dir) / "tiny" / "metrics.jsonl").read_text().splitlines()]
    # logged after steps 2, 4, 6 with the lr those steps used, at epochs done 1/3, 1 and 5/3: factors 1, 1, 1/3
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4 / 3])


def test_compiled_training_runs_and_saves_plain_keys(tiny_overrides, monkeypatch):
    import functools

    import torch._dynamo

    torch._dynamo.reset()
    # Dynamo captures the graphs and AOTAutograd their backward, as with the default backend; only the C++
    # code generation of inductor (PyTorch's business, ~90 s on 2 cores) is left out of the test.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    cfg = load_config(None, tiny_overrides + ["train.compile=true", "loss.lambda_content=1", "loss.vgg.weights=none",
                                              "loss.vgg.content_layers=[relu1_1]", "train.max_steps=2"])
    trainer = Trainer(cfg, prepare_run_dir(cfg))
    from torch._dynamo.eval_frame import OptimizedModule

    assert isinstance(trainer.model.g_pair, OptimizedModule) and isinstance(trainer.model.d_pair, OptimizedModule)
    before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    trainer.fit()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > before  # something was really compiled
    state = trainer.state_dict()
    assert all(not k.startswith("_orig_mod") for k in state["nets"]["g_ab"])
    assert set(state["nets"]) == {"g_ab", "g_ba", "d_a", "d_b"}
    assert not any("vgg" in k for net in state["nets"].values() for k in net)
    n_params = sum(len(g["params"]) for g in trainer.optimizers["g"].param_groups)
    assert n_params == len(list(trainer.nets["g_ab"].parameters())) * 2  # no VGG parameter in the optimizer


def test_keep_last_prunes(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.max_steps=8", "train.save_every=2", "train.keep_last=2"])
    train(cfg)
    names = sorted(p.name for p in (tmp_path / "runs" / "tiny" / "checkpoints").iterdir())
    assert names == ["step_0000006.pt", "step_0000008.pt"]
    assert not list((tmp_path / "runs" / "tiny").rglob("*.tmp-*"))


def test_no_held_out_photos_is_said_once_at_the_start(tiny_overrides, caplog, monkeypatch):
    import logging

    monkeypatch.setattr(logging.getLogger("gan"), "propagate", True)
    cfg = load_config(None, tiny_overrides + ["data.test_a=missing", "train.max_steps=1", "name=nohold"])
    with caplog.at_level(logging.INFO, logger="gan"):
        Trainer(cfg, prepare_run_dir(cfg)).fit()
    assert caplog.text.count("held-out   none: data.test_a") == 1 and "missing) is not a folder" in caplog.text
    caplog.clear()
    cfg = load_config(None, tiny_overrides + ["train.max_steps=1", "name=withhold"])  # testA exists
    with caplog.at_level(logging.INFO, logger="gan"):
        Trainer(cfg, prepare_run_dir(cfg)).fit()
    assert "held-out" not in caplog.text


def test_the_whole_runs_time_is_said_after_the_first_steps(tiny_overrides, caplog, monkeypatch):
    import logging

    from gan.training.trainer import _duration

    monkeypatch.setattr(logging.getLogger("gan"), "propagate", True)
    cfg = load_config(None, tiny_overrides + ["train.max_steps=14", "train.save_every=100"])
    with caplog.at_level(logging.INFO, logger="gan"):
        Trainer(cfg, prepare_run_dir(cfg)).fit()
    said = [r.getMessage() for r in caplog.records if "s/step over steps" in r.getMessage()]
    assert len(said) == 1 and "over steps 2-11: the 3 steps left take about" in said[0]
    assert [_duration(s) for s in (42, 600, 7200, 3 * 86400)] == ["42 s", "10 min", "2.0 h", "3.0 days"]


def test_every_estimate_a_slow_host_can_print_matches_what_the_tests_look_for():
    """A busy host turns "about 31 min" into "about 1.6 h": every length the estimate can print, from a second to
    weeks, is one the tests' pattern (tests.helpers.ESTIMATE) accepts, so no test depends on the host's speed."""
    import re

    from gan.training.trainer import _duration

    for seconds in [0.4, 1, 59, 89.6, 90, 3599, 5400, 5760, 86399, 172799, 172800, 10 ** 6, 10 ** 7]:
        assert re.fullmatch(ESTIMATE, f"about {_duration(seconds)}"), (seconds, _duration(seconds))


def test_a_run_leaves_the_callers_random_state_and_cudnn_setting_alone(tiny_overrides):
    """Building and running a Trainer seeds only the run: a caller (the web app, a notebook, a test) finds the
    global generators where it left them, and cuDNN's benchmark setting too."""
    import random

    import numpy as np

    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    torch.backends.cudnn.benchmark = False
    want = (torch.rand(3), np.random.rand(), random.random())
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    cfg = load_config(None, tiny_overrides + ["train.max_steps=2", "data.preprocess=none"])
    t = Trainer(cfg, prepare_run_dir(cfg))
    t.fit()
    got = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(got[0], want[0]) and got[1:] == want[1:]
    assert torch.backends.cudnn.benchmark is False


def test_training_says_when_the_machine_looks_busy(caplog, monkeypatch):
    """With stubbed clocks: two threads that got 30% of their time over the timed steps (other programs took
    the cores) make the estimate add a hint naming train.threads=1; 95% (a quiet machine), one thread, or
    time spent waiting for data make no hint. Nothing else changes."""
    import logging

    from gan.training.trainer import _RunEstimate

    monkeypatch.setattr(logging.getLogger("gan"), "propagate", True)

    def run(threads, cpu_per_step, wait_per_step=0.0):
        clock, cpu = [0.0], [0.0]
        est = _RunEstimate(0, threads, clock=lambda: clock[0], cpu_clock=lambda: cpu[0], load=lambda: 3.4,
                           cores=lambda: 2)
        caplog.clear()
        waited = 0.0
        with caplog.at_level(logging.INFO, logger="gan"):
            for step in range(1, 13):
                clock[0] += 1.0  # a second a step
                cpu[0] += cpu_per_step
                waited += wait_per_step
                est.after_step(step, 100, waited)
        return [r for r in caplog.records if "s/step over steps" in r.getMessage() or "looks busy" in r.getMessage()]

    said = run(threads=2, cpu_per_step=0.6)  # 0.6 s of CPU for 2 threads x 1 s: 30%
    assert len(said) == 2 and said[1].levelno == logging.WARNING
    assert "got 30% of its 2 CPU threads' time" in said[1].getMessage()
    assert "load average 3.4 on 2 cores" in said[1].getMessage() and "train.threads=1" in said[1].getMessage()
    assert len(run(threads=2, cpu_per_step=1.9)) == 1  # quiet: 95%
    assert len(run(threads=1, cpu_per_step=0.3)) == 1  # one thread: nothing to lower
    assert len(run(threads=2, cpu_per_step=0.6, wait_per_step=0.7)) == 1  # waiting for data, not busy
