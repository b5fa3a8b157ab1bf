"""The gradient-alignment measure (gan.evaluation.alignment) on cases whose answer is known, and its probe in a
training run."""

import pytest
import torch

from gan.config import load_config
from gan.evaluation.alignment import AlignmentProbe, gradient_alignment
from gan.nn import losses
from gan.training.trainer import Trainer, prepare_run_dir


def test_an_output_that_already_is_its_target_has_nothing_to_point_at():
    t = torch.rand(2, 3, 8, 8)
    out = t.clone().requires_grad_(True)
    r = gradient_alignment({"adv": (out ** 2).mean(), "zero": out.sum() * 0}, out, t)
    assert r == {"cos_adv": 0.0, "cos_zero": 0.0, "cos_total": 0.0, "right": 0.0}


def test_a_discriminator_that_scores_distance_to_the_target_points_the_right_way():
    """D(y) = -|y - T|^2 per pixel (higher = closer to the truth): the LSGAN generator term (D - 1)^2 pushes every
    pixel straight at T; a term that holds the photo (|y - x|^2) pulls straight away from it; a push unrelated to
    T is near 0."""
    g = torch.Generator().manual_seed(0)
    x, t = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 16, 16, generator=g)
    out = x.clone().requires_grad_(True)
    d = -((out - t) ** 2)
    r = gradient_alignment({"adv": losses.generator_adv_loss(d, "hinge")}, out, t)  # -mean(D): pushes 2 (T - y)
    assert r["cos_adv"] == pytest.approx(1.0, abs=1e-5) and r["cos_total"] == pytest.approx(1.0, abs=1e-5)
    assert r["right"] == 1.0
    # LSGAN's (D - 1)^2 weighs each pixel's push by 1 - D = 1 + |y - T|^2: still every pixel toward T
    r = gradient_alignment({"adv": losses.generator_adv_loss(d, "lsgan")}, out, t)
    assert 0.9 < r["cos_adv"] < 1 and r["right"] == 1.0
    # A term pulling back to the photo x, from an output halfway to T: exactly against the way to T.
    half = (0.5 * (x + t)).requires_grad_(True)
    r = gradient_alignment({"hold": ((half - x) ** 2).sum()}, half, t)
    assert r["cos_hold"] == pytest.approx(-1.0, abs=1e-5) and r["right"] == 0.0
    # A push that has nothing to do with T: near 0.
    noise = torch.randn(1, 3, 16, 16, generator=g)
    r = gradient_alignment({"noise": (out * noise).sum()}, out, t)
    assert abs(r["cos_noise"]) < 0.15


def test_the_probe_logs_each_term_and_leaves_training_as_it_was(tiny_overrides, tmp_path):
    """Logged at every log step with the losses; a run with the probe ends with the same weights as one
    without (the probe draws nothing from the run's generators and updates nothing)."""
    import json

    photos = torch.rand(2, 3, 24, 24) * 2 - 1
    probe = AlignmentProbe(photos, photos.flip(-1), torch.rand(2, 3, 24, 24) * 2 - 1)
    over = tiny_overrides + ["train.max_steps=4", "model.discriminator.augment=[translation]", "loss.lambda_fm=1",
                             "loss.fm=swd", "loss.lambda_patch=1", "loss.patch_images=1"]
    runs = {}
    for name, probes in (("with", (probe,)), ("without", ())):
        cfg = load_config(None, over + [f"name={name}"])
        t = Trainer(cfg, prepare_run_dir(cfg), probes=probes)
        t.fit()
        runs[name] = {k: v.clone() for k, v in t.nets["g_ab"].state_dict().items()}
    assert all(torch.equal(runs["with"][k], runs["without"][k]) for k in runs["with"])
    rows = [json.loads(x) for x in (tmp_path / "runs" / "with" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    for row in rows:
        assert {"align_cos_adv_ab", "align_cos_cycle_a", "align_cos_fm_ab", "align_cos_patch_ab", "align_cos_total",
                "align_right"} <= set(row)
        assert all(-1 <= row[k] <= 1 for k in row if k.startswith("align_cos"))
    without = json.loads((tmp_path / "runs" / "without" / "metrics.jsonl").read_text().splitlines()[-1])
    assert not any(k.startswith("align_") for k in without)
