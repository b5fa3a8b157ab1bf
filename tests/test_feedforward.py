"""Feed-forward style kinds: `style` (one network per painting) and `adain` (any painting), both driven by the
one training loop, with random VGG weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan import GanError
from gan.inference.load import load_generator, load_style_network
from gan.config import ConfigError, load_config
from gan.models.adain import adain, mean_std, mix_features
from gan.models.style import StyleNet
from gan.training.trainer import Trainer, prepare_run_dir
from tests.helpers import HANG_GUARD, write_images
from tests.test_train import straight_and_resumed

ROOT = Path(__file__).resolve().parents[1]

STYLE_KIND = ["model.kind=style", "loss.lambda_content=1", "loss.lambda_style=1000", "model.style.lambda_tv=0.5",
              "loss.vgg.weights=none", "loss.vgg.content_layers=[relu2_2]",
              "loss.vgg.style_layers=[relu1_2, relu2_2]", "data.batch_size=2", "eval.metrics=[edge_ssim]",
              "eval.best=edge_ssim_ab"]
ADAIN_KIND = ["model.kind=adain", "loss.lambda_content=1", "loss.lambda_style=10", "loss.vgg.weights=none",
              "loss.vgg.style_layers=[relu1_1, relu2_1, relu3_1, relu4_1]", "data.batch_size=2", "train.lr=1e-4"]


def run_py(*args, timeout=HANG_GUARD):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)


# ------------------------------------------------------------------------------------------- style kind


def test_style_kind_trains_through_train_py_and_translates(tiny_overrides, tmp_path):
    style_img = tmp_path / "starry.png"
    write_images(tmp_path, 1, size=(40, 40), seed=5, prefix="starry")
    (tmp_path / "starry_000.png").rename(style_img)
    r = run_py(ROOT / "train.py", *tiny_overrides, *STYLE_KIND, f"loss.vgg.style_images={style_img}",
               "train.max_steps=4", "eval.every=4")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "tiny"
    state = torch.load(run / "latest.pt", weights_only=True)
    assert state["kind"] == "style" and set(state["nets"]) == {"g_ab"} and set(state["optimizers"]) == {"g"}
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"content", "style", "tv", "loss_g", "edge_ssim_ab"} <= set().union(*rows)
    write_images(tmp_path / "photos", 1, size=(37, 50))
    r = run_py(ROOT / "test.py", "--checkpoint", run, "--input", tmp_path / "photos", "--output", tmp_path / "out",
               "--tile", "24", "--tile-overlap", "4", "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out" / "img_000.png").size == (50, 37)
    r = run_py("-m", "gan.export", "--checkpoint", run, "--format", "onnx", "--output", tmp_path / "s.onnx")
    assert r.returncode == 0, r.stderr
    r = run_py(ROOT / "test.py", "--checkpoint", run, "--direction", "BtoA", "--input", tmp_path / "photos",
               "--output", tmp_path / "x")
    assert r.returncode == 2 and "a style model has no BtoA generator" in r.stderr


def test_style_kind_loss_is_pinned_by_a_hand_computation(tiny_overrides, tmp_path):
    write_images(tmp_path / "styles", 3, size=(32, 32), seed=8)
    cfg = load_config(None, tiny_overrides + STYLE_KIND + [f"loss.vgg.style_images={tmp_path / 'styles'}"])
    torch.manual_seed(0)
    m = StyleNet.build(cfg, torch.device("cpu"), vgg_weights="none")
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    total, terms, fake = m.loss(a)
    with torch.no_grad():
        from gan.data.datasets import style_image_batches

        s = torch.cat(list(style_image_batches(tmp_path / "styles", 32, 10)))
        gram = lambda f: torch.einsum("nchw,ndhw->ncd", f, f) / f[0].numel()  # noqa: E731
        y, fa, fs = m.vgg(fake), m.vgg(a), m.vgg(s)
        want = {
            "content": 1 * ((y["relu2_2"] - fa["relu2_2"]) ** 2).mean(),
            "style": 1000 * sum(((gram(y[k]) - gram(fs[k]).mean(0)) ** 2).mean() for k in ("relu1_2", "relu2_2")),
            "tv": 0.5 * (((fake[..., 1:, :] - fake[..., :-1, :]) ** 2).mean()
                         + ((fake[..., 1:] - fake[..., :-1]) ** 2).mean()),
        }
    assert set(terms) == set(want)
    for k, v in want.items():
        assert terms[k].item() == pytest.approx(v.item(), rel=1e-4), k
    assert total.item() == pytest.approx(sum(v.item() for v in want.values()), rel=1e-4)


def test_style_kind_needs_vgg_terms():
    with pytest.raises(ConfigError, match="loss.lambda_style: invalid value 0.0; expected > 0"):
        load_config(None, ["model.kind=style"])


# ------------------------------------------------------------------------------------------ AdaIN kind


def test_adain_statistics():
    torch.manual_seed(0)
    c, s1, s2 = torch.randn(1, 8, 6, 7), torch.randn(1, 8, 5, 5) * 3 + 1, torch.randn(1, 8, 4, 9) - 2
    t = adain(c, s1)
    (mt, st), (ms, ss) = mean_std(t), mean_std(s1)
    assert torch.allclose(mt, ms, atol=1e-5) and torch.allclose(st, ss, rtol=1e-3)
    assert torch.equal(mix_features(c, [s1], alpha=0.0), c)  # alpha 0: the content features exactly
    assert torch.allclose(mix_features(c, [s1], alpha=1.0), t)
    half = mix_features(c, [s1], alpha=0.5)
    assert torch.allclose(half, 0.5 * t + 0.5 * c, atol=1e-6)
    # weights are normalised: (2, 6) == (0.25, 0.75); a zero weight leaves a style out
    both = mix_features(c, [s1, s2], [2.0, 6.0])
    assert torch.allclose(both, 0.25 * adain(c, s1) + 0.75 * adain(c, s2), atol=1e-5)
    assert torch.allclose(mix_features(c, [s1, s2], [1.0, 0.0]), t)
    with pytest.raises(ValueError, match="one per style"):
        mix_features(c, [s1, s2], [1.0])


@pytest.fixture
def adain_run(tiny_overrides, tmp_path):
    r = run_py(ROOT / "train.py", *tiny_overrides, *ADAIN_KIND, "train.max_steps=3")
    assert r.returncode == 0, r.stderr
    return tmp_path / "runs" / "tiny"


def test_adain_trains_and_stylizes_through_the_clis(adain_run, tmp_path):
    state = torch.load(adain_run / "latest.pt", weights_only=True)
    assert state["kind"] == "adain" and set(state["nets"]) == {"encoder", "decoder"}
    assert set(state["optimizers"]) == {"g"}
    rows = [json.loads(x) for x in (adain_run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(row["content"]) and np.isfinite(row["style"]) for row in rows)
    write_images(tmp_path / "photos", 2, size=(37, 53))
    write_images(tmp_path / "paint", 2, size=(30, 30), seed=4, prefix="p")
    common = ["--model", adain_run, "--content", tmp_path / "photos", "--style", tmp_path / "paint" / "p_000.png",
              tmp_path / "paint" / "p_001.png", "--style-weights", "1", "3", "--precision", "fp32"]
    r = run_py(ROOT / "stylize.py", *common, "--output", tmp_path / "out", "--size", "0", "--alpha", "0.7")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out" / "img_000.png").size == (53, 37)
    r = run_py(ROOT / "stylize.py", *common, "--output", tmp_path / "out64", "--size", "64",
               "--preserve-color", "histogram")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out64" / "img_001.png").size == (64, 45)
    r = run_py(ROOT / "stylize.py", *common, "--output", tmp_path / "bad", "--alpha", "1.5")
    assert r.returncode == 2 and "--alpha: invalid value 1.5" in r.stderr
    # A one-input model is pointed to test.py; an adain model is refused by test.py the same way.
    r = run_py(ROOT / "test.py", "--checkpoint", adain_run, "--input", tmp_path / "photos", "--output", tmp_path / "t")
    assert r.returncode == 2 and "an adain model has no AtoB generator" in r.stderr


def test_adain_network_alpha_and_size(adain_run):
    net, _ = load_style_network(adain_run)
    c, s = torch.rand(1, 3, 29, 43) * 2 - 1, torch.rand(1, 3, 20, 20) * 2 - 1
    with torch.no_grad():
        out = net(c, s)
        assert out.shape == c.shape
        assert torch.allclose(net.mix(c, [s, s], [1.0, 1.0]), out, atol=1e-5)  # weights are normalised
        # the production blend, against the paper's formula written out: t = a AdaIN(f(c), f(s)) + (1 - a) f(c)
        c = torch.rand(1, 3, 32, 48) * 2 - 1  # a multiple of 8: no padding around the encoder
        fc, fs = net.encoder(c)["relu4_1"], net.encoder(s)["relu4_1"]
        for a in (0.0, 0.6, 1.0):
            want = net.decoder(a * adain(fc, fs) + (1 - a) * fc)
            assert (net(c, s, alpha=a) - want).abs().max() < 1e-4, a


def test_adain_big_contents_go_in_bands_with_whole_image_statistics(adain_run):
    from gan.inference.feedforward import stylize_feedforward
    from gan.stylize.options import StylizeOptions

    net, _ = load_style_network(adain_run)
    rng = np.random.default_rng(0)
    photo = np.asarray(Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((160, 120)))
    style = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    opts = StylizeOptions(size=0)
    whole = stylize_feedforward(photo, [style], net, opts, 0.8)
    seen = []
    banded = stylize_feedforward(photo, [style], net, opts, 0.8, max_pixels=5000,  # 19,200 px: bands
                                 progress=lambda f, what: seen.append(what))
    assert seen and seen[0].startswith("pass 1/2")  # the content statistics, then the output
    assert banded.shape == whole.shape == (120, 160, 3)
    assert np.abs(banded - whole).max() < 1e-3


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_adain_export_has_two_image_inputs(adain_run, tmp_path, fmt):
    out = tmp_path / f"adain.{fmt}"
    r = run_py("-m", "gan.export", "--checkpoint", adain_run, "--format", fmt, "--output", out)
    assert r.returncode == 0, r.stderr
    assert "inputs content, style, alpha" in r.stderr
    net, _ = load_style_network(adain_run)
    c, s = torch.rand(1, 3, 24, 40) * 2 - 1, torch.rand(1, 3, 16, 32) * 2 - 1
    with torch.no_grad():
        want = net(c, s, alpha=0.6)
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert [i.name for i in sess.get_inputs()] == ["content", "style", "alpha"]
        got = torch.from_numpy(sess.run(None, {"content": c.numpy(), "style": s.numpy(),
                                               "alpha": np.array(0.6, dtype=np.float32)})[0])
    else:
        got = torch.jit.load(str(out))(c, s, torch.tensor(0.6))
    assert (got - want).abs().max() < 1e-3 * max(1.0, want.abs().max().item())


@pytest.mark.parametrize("kind", ["style", "adain"])
def test_feedforward_kinds_resume_exactly(tiny_overrides, tmp_path, kind):
    extra = STYLE_KIND if kind == "style" else ADAIN_KIND
    over = tiny_overrides + extra + ["train.max_steps=5", "train.save_every=100", "data.batch_size=1"]
    straight, second = straight_and_resumed(over, tmp_path, stop_at=2)
    for name, net in straight.nets.items():
        a, b = net.state_dict(), second.nets[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_adain_cannot_evaluate_and_refuses_deep_layers(tiny_overrides):
    cfg = load_config(None, tiny_overrides + ADAIN_KIND + ["eval.every=2"])
    with pytest.raises(GanError, match="model kind adain has no one-input generator to evaluate"):
        Trainer(cfg, Path("unused"))
    with pytest.raises(ConfigError, match=r"loss.vgg.style_layers\[0\]: invalid value 'relu5_1'"):
        load_config(None, ["model.kind=adain", "loss.lambda_style=1", "loss.vgg.style_layers=[relu5_1]"])


def test_stylize_model_refuses_one_input_models(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.max_steps=1"])
    Trainer(cfg, prepare_run_dir(cfg)).fit()
    with pytest.raises(GanError, match=r"is a cyclegan model: stylize.py --model takes a content \+ style model, e.g. adain"):
        load_style_network(tmp_path / "runs" / "tiny")
    assert load_generator(tmp_path / "runs" / "tiny")[1].source == "checkpoint"


def test_style_kind_needs_no_painting_folder_when_style_images_are_given(tiny_overrides, tmp_path):
    style_img = write_images(tmp_path / "style", 1, size=(40, 40), seed=5)[0]
    cfg = load_config(None, tiny_overrides + STYLE_KIND + [f"loss.vgg.style_images={style_img}",
                                                          "data.train_b=no_such_folder", "train.max_steps=1"])
    trainer = Trainer(cfg, prepare_run_dir(cfg))
    assert trainer.data.domain_b is None
    trainer.fit()
    assert trainer.step == 1
    # Without style images the painting folder is where the style comes from, and its absence is named.
    cfg = load_config(None, tiny_overrides + STYLE_KIND + ["data.train_b=no_such_folder", "name=other"])
    with pytest.raises(GanError, match="no_such_folder"):
        Trainer(cfg, tmp_path / "runs" / "other")


def test_feedforward_styles_keep_their_own_scale():
    """A content + style network sees each style image at its own size times --style-scale, whatever the photo's
    size (a 96 px style is not blown up to a big photo's size), at most MAX_STYLE_PIXELS."""
    from torch import nn

    from gan.inference.feedforward import MAX_STYLE_PIXELS, feedforward_style_hw, stylize_feedforward
    from gan.stylize.options import StylizeOptions

    assert feedforward_style_hw(96, 64, 1.0) == (96, 64)
    assert feedforward_style_hw(96, 64, 2.0) == (192, 128)
    h, w = feedforward_style_hw(3000, 4000, 1.0)
    assert h * w <= MAX_STYLE_PIXELS and abs(w / h - 4 / 3) < 0.01
    assert max(feedforward_style_hw(10, 10, 0.1)) == 16

    seen = []

    class Recorder:
        def stylizer(self, styles, weights, alpha):
            seen.extend(tuple(s.shape[-2:]) for s in styles)
            return nn.Identity()

    rng = np.random.default_rng(0)
    style = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    for size in (0, 32):
        photo = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
        out = stylize_feedforward(photo, [style], Recorder(), StylizeOptions(size=size, style_scale=1.5))
        assert out.shape[:2] == ((90, 120) if size == 0 else (24, 32))
    assert seen == [(72, 60), (72, 60)]
