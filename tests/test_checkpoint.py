"""The checkpoint format: schema, migration of version 1 files, what inference needs, malformed files."""

import copy

import pytest
import torch

from gan import GanError
from gan.checkpoint import schema as ckpt_io
from gan.checkpoint.schema import load_checkpoint
from gan.inference.load import load_generator
from gan.config import load_config
from gan.training.trainer import Trainer, prepare_run_dir
from tests.test_translate import run_dir  # noqa: F401  (fixture)


def as_version_1(state: dict) -> dict:
    """A version 2 checkpoint written back in the version 1 layout (before model kinds)."""
    old = copy.deepcopy(state)
    old["version"] = 1
    del old["kind"], old["ema"]
    old["pools"] = [{"a": r["pool_a"], "b": r["pool_b"]} for r in old.pop("rank_state")]
    sched = old.pop("schedule")
    old["schedulers"] = {"policy": sched["policy"], "base_lr": sched["base_lr"], "lr_g": sched["lr"]["g"],
                         "lr_d": sched["lr"]["d"]}
    del old["config"]["model"]["kind"]
    return with_old_loss_keys(old)


def with_old_loss_keys(state: dict) -> dict:
    """A checkpoint whose stored config has CycleGAN's own terms where they were before they moved into
    model.cyclegan (loss.lambda_cycle, loss.lambda_identity, loss.cycle_lowpass)."""
    old = copy.deepcopy(state)
    old["config"]["loss"].update(old["config"]["model"].pop("cyclegan"))
    return old


def test_a_checkpoint_with_the_old_loss_keys_resumes_with_them(run_dir, tmp_path):  # noqa: F811
    from gan.training.trainer import train

    state = torch.load(run_dir / "latest.pt", weights_only=True)
    old = with_old_loss_keys(state)
    old["config"]["loss"]["lambda_identity"] = 0.25
    torch.save(old, tmp_path / "old.pt")
    last = train(None, resume=tmp_path / "old.pt", overrides=[f"train.max_steps={state['step'] + 1}"])
    resumed = torch.load(last, weights_only=True)
    assert resumed["step"] == state["step"] + 1
    assert resumed["config"]["model"]["cyclegan"]["lambda_identity"] == 0.25
    assert "lambda_identity" not in resumed["config"]["loss"]


def test_schema_keys_are_exactly_the_documented_ones(run_dir):  # noqa: F811
    state = torch.load(run_dir / "latest.pt", weights_only=True)
    documented = [line.split()[0] for line in ckpt_io.__doc__.split("Schema")[1].split("Version 1")[0].splitlines()
                  if line.startswith("    ") and not line.startswith("     ")]
    assert set(state) == set(documented)
    assert state["version"] == ckpt_io.VERSION and state["kind"] == "cyclegan"


def test_version_1_files_are_migrated_and_resume(run_dir, tmp_path, tiny_overrides):  # noqa: F811
    state = torch.load(run_dir / "latest.pt", weights_only=True)
    v1 = tmp_path / "v1.pt"
    torch.save(as_version_1(state), v1)
    loaded = load_checkpoint(v1)
    assert loaded["version"] == 2 and loaded["kind"] == "cyclegan" and loaded["ema"] is None
    assert torch.equal(loaded["rank_state"][0]["pool_b"]["images"][0], state["rank_state"][0]["pool_b"]["images"][0])
    cfg = load_config(None, tiny_overrides + ["name=from_v1", "train.max_steps=3"])
    trainer = Trainer(cfg, prepare_run_dir(cfg), resume=loaded)
    assert trainer.step == 2 and len(trainer.model.pool_a) == len(state["rank_state"][0]["pool_a"]["images"])
    net, _ = load_generator(v1)
    ref, _ = load_generator(run_dir)
    x = torch.rand(1, 3, 20, 20) * 2 - 1
    assert torch.equal(net(x), ref(x))


def test_inference_reads_only_the_model_section(run_dir, tmp_path):  # noqa: F811
    state = torch.load(run_dir / "latest.pt", weights_only=True)
    state["config"]["train"]["a_key_from_the_future"] = 1  # training-only keys added or renamed
    del state["config"]["data"]
    del state["optimizers"], state["rank_state"]
    path = tmp_path / "trimmed.pt"
    torch.save(state, path)
    net, info = load_generator(path, "BtoA")
    assert info.source == "checkpoint" and "g_ba" in info.description
    assert net(torch.zeros(1, 3, 12, 12)).shape == (1, 3, 12, 12)
    with pytest.raises(GanError, match="trimmed.pt is incomplete: it has no optimizers"):
        load_checkpoint(path)  # but a resume needs them, and says so


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop("nets"), "it has no nets"),
    (lambda s: s["nets"].pop("g_ab"), "it has no nets.g_ab"),
    (lambda s: s["config"].pop("model"), "it has no config.model"),
    (lambda s: s["config"]["model"].update(ngf_typo=3), "model.ngf_typo: unknown key"),
    (lambda s: s["config"]["model"]["generator"].update(ngf=5), "weights of g_ab do not fit"),
    (lambda s: s.update(kind="pix2pix"), "model.kind 'pix2pix' is not a model kind"),
    (lambda s: s.update(version=99), "checkpoint version 99; this version of gan reads up to 2"),
])
def test_malformed_checkpoints_name_what_is_wrong(run_dir, tmp_path, damage, message):  # noqa: F811
    state = torch.load(run_dir / "latest.pt", weights_only=True)
    damage(state)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(GanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_generator(path)


@pytest.mark.parametrize("key", ["position", "step", "rng", "scalers"])
def test_resume_needs_every_training_key(run_dir, tmp_path, key):  # noqa: F811
    state = torch.load(run_dir / "latest.pt", weights_only=True)
    del state[key]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(GanError, match=f"bad.pt is incomplete: it has no {key}"):
        load_checkpoint(tmp_path / "bad.pt")
