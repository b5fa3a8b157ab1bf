"""CUT and FastCUT (model.kind: cut): PatchNCE's arithmetic, the kind's config, training, exact resume, and
every inference path through code that does not know the kind."""

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from gan import ConfigError
from gan.nn import losses
from gan.inference.load import load_generator
from gan.config import load_config
from gan.models.cut import CUT, PatchHeads
from gan.training.trainer import Trainer, prepare_run_dir
from tests.helpers import HANG_GUARD, write_images
from tests.test_train import straight_and_resumed, weights

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
CUT_TINY = ["model.kind=cut", "model.generator.antialias=true", "model.generator.n_blocks=2",
            "model.cut.nce_layers=[0,4,8,12]", "model.cut.num_patches=16", "model.cut.head_dim=8"]


def reference_nce(q, k, batch, tau):
    """The loss written the way the paper's code lays it out: the positive first, then the image's other
    keys with the query's own position masked out, cross-entropy against index 0."""
    n, d = q.shape
    k = k.detach()
    l_pos = (q * k).sum(1, keepdim=True)
    qb, kb = q.view(batch, -1, d), k.view(batch, -1, d)
    p = qb.shape[1]
    l_neg = torch.bmm(qb, kb.transpose(1, 2))
    l_neg = l_neg.masked_fill(torch.eye(p, dtype=torch.bool)[None], float("-inf")).view(-1, p)
    logits = torch.cat([l_pos, l_neg], 1) / tau
    return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long))


@pytest.mark.parametrize("batch", [1, 3])
def test_patch_nce_matches_the_papers_layout_and_keeps_negatives_inside_each_image(batch):
    torch.manual_seed(0)
    q = F.normalize(torch.randn(batch * 5, 8), dim=1)
    k = F.normalize(torch.randn(batch * 5, 8), dim=1)
    got = losses.patch_nce_loss(q, k, batch, 0.07)
    assert torch.allclose(got, reference_nce(q, k, batch, 0.07), atol=1e-5)
    # image by image: the loss of the batch is the mean of each image's own loss
    each = [losses.patch_nce_loss(q[i * 5:(i + 1) * 5], k[i * 5:(i + 1) * 5], 1, 0.07) for i in range(batch)]
    assert torch.allclose(got, torch.stack(each).mean(), atol=1e-6)
    # matching embeddings far apart from each other cost almost nothing; tau sharpens
    eye = torch.eye(8)[:5].repeat(batch, 1)
    assert losses.patch_nce_loss(eye, eye, batch, 0.07) < 1e-4
    assert losses.patch_nce_loss(eye, eye, batch, 1.0) > 0.5
    # keys are constants
    q2, k2 = q.clone().requires_grad_(), k.clone().requires_grad_()
    losses.patch_nce_loss(q2, k2, batch, 0.07).backward()
    assert q2.grad.abs().sum() > 0 and k2.grad is None


def test_heads_take_the_same_positions_of_every_image():
    heads = PatchHeads([3], dim=4)
    f = torch.randn(2, 3, 4, 5)
    ids = [torch.tensor([0, 7, 19])]
    (out,) = heads([f], ids)
    assert out.shape == (6, 4) and torch.allclose(out.norm(dim=1), torch.ones(6))
    manual = F.normalize(heads.mlps[0](f.flatten(2)[1, :, 7]), dim=0)
    assert torch.allclose(out[4], manual, atol=1e-6)


def test_the_kinds_config_and_its_messages():
    cfg = load_config("configs/fastcut.yaml")
    o = cfg.model.options.resolved()
    assert (o.lambda_nce, o.nce_idt, o.flip_equivariance) == (10.0, False, True)
    assert (cfg.train.epochs, cfg.train.epochs_decay) == (150, 50) and cfg.model.generator.antialias
    o = load_config("configs/cut.yaml").model.options.resolved()
    assert (o.lambda_nce, o.nce_idt, o.flip_equivariance, o.nce_layers, o.num_patches, o.nce_t) == (
        1.0, True, False, (0, 4, 8, 12, 16), 256, 0.07)
    with pytest.raises(ConfigError, match="model.cut.nce_layers.*0 to 13"):
        load_config("configs/cut.yaml", ["model.generator.n_blocks=2"])
    with pytest.raises(ConfigError, match="model.cut: a section of model kind cut, but model.kind is cyclegan"):
        load_config(None, ["model.cut.mode=fastcut"])
    with pytest.raises(ConfigError, match="model.cut.mode"):
        load_config(None, ["model.kind=cut", "model.cut.mode=fast"])


def test_cut_trains_its_three_optimizers_and_resumes_bitwise(tiny_overrides, tmp_path):
    over = tiny_overrides + CUT_TINY + ["train.max_steps=5", "train.save_every=100", "data.batch_size=2"]
    cfg = load_config(None, over + ["name=probe"])
    t = Trainer(cfg, prepare_run_dir(cfg))
    assert set(t.optimizers) == {"g", "f", "d"} and not hasattr(t.model, "pool_b")
    before = weights(t)
    t.fit()
    after = weights(t)
    for net in ("g_ab", "d_b", "heads"):  # each optimizer moved its own net
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net + ".")), net
    line = (tmp_path / "runs" / "probe" / "metrics.jsonl").read_text().splitlines()[-1]
    for term in ("adv_ab", "nce", "nce_idt", "d_b"):
        assert f'"{term}"' in line
    straight, resumed = straight_and_resumed(over, tmp_path, stop_at=2)
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fastcut_flips_and_weights_nce_by_ten(tiny_overrides, monkeypatch):
    cfg = load_config(None, tiny_overrides + CUT_TINY + ["model.cut.mode=fastcut", "train.max_steps=1"])
    model = CUT.build(cfg, torch.device("cpu"))
    seen = []
    real_nce = type(model.g_call).nce

    def spy(self, src, out, flipped):
        seen.append(flipped)
        return real_nce(self, src, out, flipped) * 0 + 0.5  # a known value, still attached to the graph

    monkeypatch.setattr(type(model.g_call), "nce", spy)

    class Ctx:
        step = 0

        def autocast(self):
            return torch.autocast("cpu", enabled=False)

        def update(self, name, loss, terms):
            self.last = (name, terms)

    x = torch.rand(1, 3, 32, 32) * 2 - 1
    ctx = Ctx()
    for _ in range(8):
        terms, images = model.training_step({"A": x, "B": x}, ctx)
    assert set(seen) == {True, False}  # some steps translate the flipped photo
    assert ctx.last[0] == ("g", "f") and set(ctx.last[1]) == {"adv_ab", "nce"}
    assert float(ctx.last[1]["nce"].detach()) == pytest.approx(5.0)  # lambda_nce 10, no identity term to average with
    assert "idt_b" not in images
    cut = CUT.build(load_config(None, tiny_overrides + CUT_TINY), torch.device("cpu"))
    monkeypatch.setattr(type(cut.g_call), "nce", spy)
    cut.training_step({"A": x, "B": x}, ctx)
    assert set(ctx.last[1]) == {"adv_ab", "nce", "nce_idt"}
    assert float(ctx.last[1]["nce"].detach()) == float(ctx.last[1]["nce_idt"].detach()) == pytest.approx(0.25)  # 1 * mean of two


def test_a_cut_checkpoint_through_every_inference_path(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + CUT_TINY + ["train.max_steps=2", "name=cutrun"])
    Trainer(cfg, prepare_run_dir(cfg)).fit()
    run = tmp_path / "runs" / "cutrun"
    net, info = load_generator(run, "AtoB")
    assert info.kind == "cut"
    with pytest.raises(Exception, match="no BtoA generator"):
        load_generator(run, "BtoA")
    write_images(tmp_path / "photos", 2, size=(37, 45))
    for args in (["--tile", "16"], ["--format", "png"]):
        out = tmp_path / ("out" + args[0])
        r = subprocess.run([sys.executable, str(ROOT / "test.py"), "--checkpoint", str(run), "--input",
                            str(tmp_path / "photos"), "--output", str(out), "--device", "cpu", *args],
                           capture_output=True, text=True, timeout=HANG_GUARD)
        assert r.returncode == 0, r.stderr
        assert len(list(out.glob("*.png"))) == 2
    for fmt, suffix in (("onnx", "onnx"), ("torchscript", "pt")):
        target = tmp_path / f"cut.{suffix}"
        r = subprocess.run([sys.executable, "-m", "gan.export", "--checkpoint", str(run), "--format", fmt,
                            "--output", str(target)], capture_output=True, text=True, timeout=HANG_GUARD, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        assert target.is_file()
    x = torch.rand(1, 3, 40, 52) * 2 - 1
    loaded, _ = load_generator(tmp_path / "cut.pt", "AtoB")
    with torch.no_grad():
        assert (loaded(x) - net(x)).abs().max() < 1e-5
    assert math.isfinite(float(net(x).mean()))


def test_a_cut_run_evaluates_makes_videos_and_shows_in_the_app(tiny_overrides, tmp_path):
    """The paths that know nothing of CUT: evaluation, videos, the web app's catalog and its translation."""
    import json

    import numpy as np

    from gan.app import Backend, Settings, build_catalog
    from gan.models.base import CONTENT_STYLE, ONE_IMAGE
    from gan.runtime import Runtime
    from gan.commands.evaluate import main as evaluate_main

    cfg = load_config(None, tiny_overrides + CUT_TINY + ["train.max_steps=2", "name=cutrun"])
    Trainer(cfg, prepare_run_dir(cfg)).fit()
    run = tmp_path / "runs" / "cutrun"
    write_images(tmp_path / "photos", 2, size=(36, 44))
    assert evaluate_main(["--checkpoint", str(run), "--input", str(tmp_path / "photos"), "--reference",
                          str(tmp_path / "photos"), "--metrics", "edge_ssim", "--json", str(tmp_path / "e.json"),
                          "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["results"]["n_input"] == 2

    pytest.importorskip("av")
    from gan.inference.engine import Engine
    from gan.inference.video import VideoOptions, translate_video
    from tests.test_video import moving_square, read_frames, write_video

    net, _ = load_generator(run, "AtoB")
    write_video(tmp_path / "clip.mp4", moving_square(4), audio_s=None)
    assert translate_video(Engine(net), tmp_path / "clip.mp4", tmp_path / "out.mp4", VideoOptions(),
                           progress=False) == 4
    assert read_frames(tmp_path / "out.mp4").shape[0] == 4

    catalog = build_catalog(tmp_path / "runs", [])
    labels = catalog.taking(ONE_IMAGE)
    assert any(label.startswith("cutrun") for label in labels) and not catalog.taking(CONTENT_STYLE)
    app = Backend(catalog, Settings(Runtime.on("cpu"), workdir=tmp_path / "w"))
    photo = (np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)
    out = app.translate(next(label for label in labels if label.startswith("cutrun")), "AtoB", photo)
    assert out.shape == photo.shape and out.dtype == np.uint8
