import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gan.config import to_dict, load_config, replace
from gan.training.tracking import Tracker
from gan.training.trainer import Trainer, prepare_run_dir, train
from tests import wandb_reader
from tests.helpers import HANG_GUARD

ROOT = Path(__file__).resolve().parents[1]


def wandb_files(folder: Path) -> list[Path]:
    files = sorted(folder.rglob("run-*.wandb"))
    for f in files:
        wandb_reader.wait_complete(f)
    return files


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    (tmp_path / "wb").mkdir()
    return tmp_path / "wb"


def test_offline_run_logs_config_scalars_images_summary(tiny_overrides, offline, caplog):
    cfg = load_config(None, tiny_overrides + ["tracking.wandb.mode=offline", "train.max_steps=4",
                                              "train.log_every=2", "train.sample_every=2",
                                              "tracking.wandb.tags=[smoke]", "tracking.wandb.group=g1"])
    with caplog.at_level(logging.INFO, logger="gan"):
        train(cfg)
    assert "wandb sync" in caplog.text
    files = wandb_files(offline)
    assert len(files) == 1
    info = wandb_reader.run_info(files[0])
    assert info["name"] == "tiny" and info["project"] == "gan" and info["tags"] == ["smoke"] and info["group"] == "g1"
    conf = wandb_reader.config(files[0])
    assert conf["train"]["max_steps"] == 4 and conf["model"]["generator"]["ngf"] == 4
    rows = wandb_reader.history(files[0])
    scalar_steps = [r["_step"] for r in rows if "loss_g" in r]
    assert scalar_steps == [2, 4]
    for r in rows:
        if "loss_g" in r:
            assert {"loss_d", "cycle_a", "idt_b", "adv_ab", "d_a", "lr_g", "lr_d", "img_per_s", "data_wait"} <= set(r)
    images = [r for r in rows if r.get("samples/_type") == "image-file"]
    assert [r["_step"] for r in images] == [2, 4] and "real_a | fake_b | rec_a" in images[0]["samples/caption"]
    summ = wandb_reader.summary(files[0])
    assert summ["images_a"] == 6 and summ["images_b"] == 5 and summ["params_g_ab"] > 0 and summ["final_step"] == 4
    # the local records are there too
    assert len((Path(cfg.train.output_dir) / "tiny" / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_continues_the_same_wandb_run(tiny_overrides, offline, tmp_path):
    cfg = load_config(None, tiny_overrides + ["tracking.wandb.mode=offline", "train.max_steps=2"])
    first_ckpt = train(cfg)
    import torch

    run_id = torch.load(first_ckpt, weights_only=True)["wandb_run_id"]
    assert run_id
    train(None, resume=tmp_path / "runs" / "tiny", overrides=["train.max_steps=4"])
    files = wandb_files(offline)
    assert len(files) == 2 and {wandb_reader.run_info(f)["id"] for f in files} == {run_id}
    steps = [r["_step"] for f in files for r in wandb_reader.history(f) if "loss_g" in r]
    assert steps == [2, 4]  # monotonic across the resume


def test_disabled_creates_no_wandb_files(tiny_overrides, offline, tmp_path):
    cfg = load_config(None, tiny_overrides + ["tracking.wandb.mode=disabled", "train.max_steps=2"])
    train(cfg)
    assert not list(offline.rglob("*")) and not list((tmp_path / "runs").rglob("*wandb*"))


def test_auto_without_credentials_is_offline(monkeypatch, tmp_path):
    from gan.training.tracking import resolve_wandb_mode

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert resolve_wandb_mode("auto") == "offline"
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    os.chmod(tmp_path / "netrc", 0o600)
    assert resolve_wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode("auto") == "disabled"
    assert resolve_wandb_mode("offline") == "offline"


def test_wandb_failures_warn_once_and_training_goes_on(tiny_overrides, offline, monkeypatch, caplog):
    import wandb

    def broken_init(**kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(wandb, "init", broken_init)
    monkeypatch.setattr(Tracker, "_online_or_offline", staticmethod(lambda: ("online", "")))  # the server answers
    cfg = load_config(None, tiny_overrides + ["tracking.wandb.mode=online", "train.max_steps=4"])
    with caplog.at_level(logging.WARNING, logger="gan"):
        path = train(cfg)
    assert path.is_file()
    warnings = [r for r in caplog.records if "W&B" in r.getMessage()]
    assert len(warnings) == 1 and "no route to host" in warnings[0].getMessage()


def test_wandb_log_failure_mid_run(tiny_overrides, offline, monkeypatch, caplog):
    cfg = load_config(None, tiny_overrides + ["tracking.wandb.mode=offline", "train.max_steps=6", "train.log_every=1"])
    trainer = Trainer(cfg, prepare_run_dir(cfg))
    calls = []

    def failing_log(*a, **k):
        calls.append(1)
        raise RuntimeError("quota exceeded")

    trainer.open_run()  # fit() opens it too (once); here early, to reach the W&B run
    monkeypatch.setattr(trainer.tracker.wandb_run, "log", failing_log)
    with caplog.at_level(logging.WARNING, logger="gan"):
        trainer.fit()
    trainer.tracker.close()
    assert trainer.step == 6 and len(calls) == 1  # W&B switched off after the first failure
    assert len([r for r in caplog.records if "quota exceeded" in r.getMessage()]) == 1
    rows = [json.loads(x) for x in (Path(cfg.train.output_dir) / "tiny" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]


def test_sweep_parameters_validate_as_overrides():
    sweep = yaml.safe_load((ROOT / "configs" / "sweep_quickstart.yaml").read_text())
    assert "${args_no_hyphens}" in sweep["command"]
    base = load_config(ROOT / "configs" / "quickstart.yaml")
    for key, spec in sweep["parameters"].items():
        for value in spec["values"]:
            node = to_dict(replace(base, [f"{key}={value}"]))  # the config as written (kinds' sections by name)
            for part in key.split("."):
                node = node[part]
            assert node == value


def test_sweep_agent_style_arguments(tiny_overrides, tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_SWEEP_ID": "abc", "WANDB_RUN_ID": "r123"}
    args = [f"--{o}" if o.startswith(("train.", "data.", "model.")) else o for o in tiny_overrides if o != "name=tiny"]
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), *args, "--train.max_steps=2", "--train.lr=0.001"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    saved = yaml.safe_load((tmp_path / "runs" / "quickstart-r123" / "config.yaml").read_text())
    assert saved["train"]["lr"] == 0.001 and saved["name"] == "quickstart-r123"
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), *args, "--train.lrr=0.001"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=HANG_GUARD)
    assert r.returncode == 2 and "train.lrr: unknown key; did you mean train.lr?" in r.stderr


def test_read_metrics_returns_the_logged_rows_and_skips_a_cut_line(tmp_path):
    from gan.checkpoint.runs import read_metrics
    from gan.training.tracking import Tracker

    assert read_metrics(tmp_path) == []
    t = Tracker(tmp_path, enabled=True)
    t.log(2, {"loss_g": 1.5, "kid_ab": float("nan")})
    t.log(4, {"loss_g": 1.25})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "loss_')  # a run killed mid-write
    assert read_metrics(tmp_path) == [{"step": 2, "loss_g": 1.5, "kid_ab": "nan"}, {"step": 4, "loss_g": 1.25}]
