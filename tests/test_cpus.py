"""Threads and worker processes follow the cores this process may really use (affinity, cgroup quota)."""

import logging

import pytest
import torch

from gan import cpus
from gan.config import ConfigError, load_config


def test_available_cpus_follows_affinity_and_the_cgroup_quota(monkeypatch, tmp_path):
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(cpus, "_cgroup_quota", lambda: None)
    assert cpus.available_cpus() == 8
    monkeypatch.setattr(cpus, "_cgroup_quota", lambda: 1.5)  # docker --cpus 1.5
    assert cpus.available_cpus() == 2
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {3})  # taskset -c 3
    assert cpus.available_cpus() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert cpus.auto_threads() == 1


def test_cgroup_files_are_read_v2_and_v1(tmp_path):
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cpus._cgroup_quota(tmp_path) == 2.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpus._cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cpus._cgroup_quota(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert cpus._cgroup_quota(tmp_path) is None


def test_processes_on_one_machine_share_its_cores(monkeypatch):
    monkeypatch.setattr(cpus, "available_cpus", lambda: 8)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun --nproc_per_node 4
    assert cpus.auto_threads() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert cpus.auto_threads() == 1


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_use_threads_explicit_auto_and_omp_num_threads(monkeypatch, keep_threads):
    monkeypatch.setattr(cpus, "available_cpus", lambda: 3)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert cpus.use_threads(1) == 1 and torch.get_num_threads() == 1
    assert cpus.use_threads(0) == 3 and torch.get_num_threads() == 3
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's own setting wins over automatic
    assert cpus.use_threads(0) == 1 and torch.get_num_threads() == 1
    assert cpus.use_threads(2) == 2  # an explicit number wins over it
    from gan import GanError

    with pytest.raises(GanError, match="threads must be >= 0"):
        cpus.use_threads(-1)


def test_entry_points_turn_bad_threads_into_a_message(capsys):
    from gan.cli import run

    assert run(lambda: 0, threads=-2) == 2
    assert "error: threads must be >= 0 (0 = automatic), got -2" in capsys.readouterr().err


def test_threads_config_key(tiny_overrides):
    assert load_config(None, tiny_overrides + ["train.threads=1"]).train.threads == 1
    with pytest.raises(ConfigError, match="train.threads: invalid value -1"):
        load_config(None, tiny_overrides + ["train.threads=-1"])


def test_training_uses_the_configured_threads_and_says_so(tiny_overrides, keep_threads, caplog, monkeypatch):
    from gan.training.trainer import train

    monkeypatch.setattr(logging.getLogger("gan"), "propagate", True)
    torch.set_num_threads(2)
    with caplog.at_level(logging.INFO, logger="gan"):
        train(load_config(None, tiny_overrides + ["train.threads=1", "train.max_steps=1"]))
    assert torch.get_num_threads() == 1
    assert "(fp32, 1 CPU thread)" in caplog.text


def test_data_loader_workers_never_exceed_the_cores(tiny_overrides, monkeypatch, caplog):
    from gan.data.datasets import build_train_data

    monkeypatch.setattr(cpus, "available_cpus", lambda: 1)
    monkeypatch.setattr(logging.getLogger("gan"), "propagate", True)
    cfg = load_config(None, tiny_overrides + ["data.num_workers=4"])
    with caplog.at_level(logging.INFO, logger="gan"):
        data = build_train_data(cfg)
    assert data.loader.num_workers == 1
    assert "data.num_workers=4: 1 CPU core(s) available to this process, using 1 worker(s)" in caplog.text
    cfg = load_config(None, tiny_overrides + ["data.num_workers=0"])
    assert build_train_data(cfg).loader.num_workers == 0
