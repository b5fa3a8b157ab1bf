import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gan import GanError
from gan.config import load_config
from gan.evaluation.metrics import Scorer, better, edge_ssim
from gan.training.trainer import Trainer, prepare_run_dir
from tests.helpers import HANG_GUARD

ROOT = Path(__file__).resolve().parents[1]


class TinyFeatures(nn.Module):
    """uint8 (N, 3, 299, 299) -> 27 signed colour-layout features; no weights."""

    def forward(self, x):
        f = nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 3) - 0.5
        return f.flatten(1)


def images(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, 8, generator=g)
    x = nn.functional.interpolate(x, size=(64, 64), mode="bilinear") + shift
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def score(real, fake, metrics=("fid", "kid", "mifid")):
    s = Scorer(list(metrics), feature=TinyFeatures())
    s.add_real(real)
    s.add_fake(fake, sources=fake)
    return s.compute()


def test_identical_sets_score_near_zero_and_shifted_higher():
    real = images(40, 0)
    same = score(real, real.clone())
    other = score(real, images(40, 1))  # same distribution, other samples
    shifted = score(real, images(40, 1, shift=0.3))
    # KID is an unbiased estimate: around 0 (slightly negative possible) for the same set
    assert abs(same["fid"]) < 1e-6 and abs(same["kid"]) < 0.01 * shifted["kid"]
    assert shifted["fid"] > 10 * other["fid"] > 0
    assert shifted["kid"] > 10 * other["kid"]


def test_mifid_penalises_copies_of_the_training_images():
    train = images(40, 0)
    copies = (train.float() * 0.97 + 3).round().to(torch.uint8)  # near-copies: memorised
    fresh = images(40, 5)  # new images of the same distribution
    c, f = score(train, copies), score(train, fresh)
    assert c["mifid"] > 5 * c["fid"]  # the memorisation penalty
    assert f["mifid"] == pytest.approx(f["fid"], rel=1e-6)  # no penalty for new images


def test_edge_ssim_needs_no_weights():
    x = images(4, 0)
    assert edge_ssim(x, x).min().item() == pytest.approx(1.0, abs=1e-5)
    blurred = nn.functional.avg_pool2d(x.float(), 5, 1, 2).round().to(torch.uint8)
    assert edge_ssim(x, blurred).mean() < 0.9
    s = Scorer(["edge_ssim"])  # builds no extractor at all
    assert s.feature is None
    s.add_fake(blurred, sources=x)
    assert 0 < s.compute()["edge_ssim"] < 0.9


def test_better():
    assert better("kid_ab", 0.1, 0.2) and not better("fid_ba", 3, 2)
    assert better("edge_ssim_ab", 0.8, 0.7) and better("kid_ab", 5.0, None)


def test_offline_inception_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import torchmetrics.image.fid as fid_module

    def offline(*a, **k):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(fid_module, "NoTrainInceptionV3", offline)
    with pytest.raises(GanError) as e:
        Scorer(["fid"])
    msg = str(e.value)
    # The file named is the one the installed torch-fidelity downloads (its own constant, not a literal here).
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    wanted = URL_INCEPTION_V3.rsplit("/", 1)[-1]
    assert wanted in msg and str(tmp_path / "hub" / "checkpoints" / wanted) in msg
    assert "edge_ssim needs no weights" in msg
    with pytest.raises(GanError, match="Inception weights not found"):
        Scorer(["kid"], inception_weights=str(tmp_path / "missing.pth"))


def test_best_checkpoint_selected_during_training(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.max_steps=8", "eval.every=2", "eval.metrics=[kid, edge_ssim]",
                                              "eval.best=kid_ab", "train.save_every=100"])
    trainer = Trainer(cfg, prepare_run_dir(cfg), feature_extractor=TinyFeatures())
    trainer.fit()
    run = tmp_path / "runs" / "tiny"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "kid_ab" in x]
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert {"kid_ab", "kid_ba", "edge_ssim_ab", "edge_ssim_ba"} <= set(rows[0])
    best = min(rows, key=lambda r: r["kid_ab"])
    state = torch.load(run / "best.pt", weights_only=True)
    assert state["step"] == best["step"] and state["best"]["value"] == pytest.approx(best["kid_ab"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_step"] == best["step"]


def test_evaluate_cli_writes_json(tiny_overrides, tmp_path):
    from gan.training.trainer import train

    train(load_config(None, tiny_overrides + ["train.max_steps=2"]))
    out = tmp_path / "eval.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCH_HOME": str(tmp_path / "th")}
    r = subprocess.run([sys.executable, "-m", "gan.evaluate", "--checkpoint", str(tmp_path / "runs" / "tiny"),
                        "--input", str(tmp_path / "data" / "testA"), "--reference", str(tmp_path / "data" / "testB"),
                        "--metrics", "edge_ssim", "--json", str(out)], capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    record = json.loads(out.read_text())
    assert record["direction"] == "AtoB" and record["results"]["n_input"] == 2
    assert -1 <= record["results"]["edge_ssim"] <= 1 and "edge_ssim" in r.stdout
    # FID offline without cached weights: a clear message, no traceback, exit 2
    r = subprocess.run([sys.executable, "-m", "gan.evaluate", "--checkpoint", str(tmp_path / "runs" / "tiny"),
                        "--input", str(tmp_path / "data" / "testA"), "--reference", str(tmp_path / "data" / "testB"),
                        "--metrics", "fid", "--json", str(out)], capture_output=True, text=True, cwd=ROOT, env=env,
                       timeout=HANG_GUARD)
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    assert r.returncode == 2 and URL_INCEPTION_V3.rsplit("/", 1)[-1] in r.stderr and "Traceback" not in r.stderr
