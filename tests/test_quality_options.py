"""The recipe options of the quality issue: identity-start generators with a colour path, the generator EMA,
learning-rate warm-up and per-optimizer scales; and the known-map benchmark's smoke run."""

import importlib.util
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
from gan.inference.load import load_generator
from gan.config import ConfigError, load_config
from gan.inference.export import export
from gan.nn.networks import ResnetGenerator, build_generator
from gan.training.trainer import Trainer, lr_factor, prepare_run_dir
from gan.inference.tiling import BandOptions
from tests.helpers import HANG_GUARD, write_images, in_bands
from tests.test_translate import run_test_py

ROOT = Path(__file__).resolve().parents[1]
SKIPS = ["identity", "color"]


@pytest.mark.parametrize("skip", SKIPS)
@pytest.mark.parametrize("upsample", ["transpose", "resize_conv"])
@pytest.mark.parametrize("size", [(37, 53), (64, 64), (5, 3), (1, 1)])
def test_identity_start_returns_its_input_exactly(skip, upsample, size):
    cfg = load_config(None, ["model.generator.ngf=4", "model.generator.n_blocks=1",
                             f"model.generator.skip={skip}", f"model.generator.upsample={upsample}"])
    g = build_generator(cfg.model)  # after the configured weight init
    x = torch.rand(2, 3, *size) * 2 - 1
    assert torch.equal(g(x), x)
    # ... and is trainable: the skip path and the branch's last conv get gradients.
    (g(x) * torch.randn_like(x)).sum().backward()
    assert g.model[-1].weight.grad.abs().sum() > 0
    if skip == "color":
        assert g.skip.affine.weight.grad.abs().sum() > 0 and g.skip.out.weight.grad.abs().sum() > 0


def test_skip_identity_needs_equal_channels():
    with pytest.raises(ConfigError, match="model.generator.skip: invalid value 'identity'"):
        load_config(None, ["model.generator.skip=identity", "model.out_channels=1", "model.cyclegan.lambda_identity=0"])
    g = build_generator(load_config(None, ["model.generator.skip=color", "model.out_channels=1", "model.generator.ngf=4",
                                           "model.generator.n_blocks=1", "model.cyclegan.lambda_identity=0"]).model)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(g(x), x[:, :1])  # the colour path starts as "take the first channel"


def test_color_path_can_apply_a_global_colour_matrix():
    """What instance-normalised ResNet branches cannot do on their own: a global colour grade, here set by
    hand on the colour path, reaches the output unchanged by the image's own statistics."""
    g = ResnetGenerator(3, 3, 4, 1, skip="color").eval()
    m = torch.tensor([[0.9, 0.2, 0.0], [0.0, 1.0, 0.0], [0.1, 0.0, 0.8]])
    with torch.no_grad():
        g.skip.affine.weight.copy_(m[:, :, None, None])
        g.skip.affine.bias.copy_(torch.tensor([0.05, 0.0, -0.05]))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    want = torch.einsum("oc,nchw->nohw", m, x) + torch.tensor([0.05, 0.0, -0.05]).view(1, 3, 1, 1)
    assert torch.allclose(g(x), want, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("skip", SKIPS)
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_skip_generators_export_and_tile(tmp_path, skip, fmt):
    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, ngf=8, n_blocks=2, upsample="resize_conv", skip=skip).eval()
    with torch.no_grad():  # move away from the identity start, so the check means something
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / f"g.{fmt}"
    assert export(net, fmt, path) < 1e-3
    x = torch.rand(1, 3, 29, 70) * 2 - 1
    from gan.checkpoint.exported import OnnxGenerator

    got = OnnxGenerator(path)(x) if fmt == "onnx" else torch.jit.load(str(path))(x)
    with torch.no_grad():
        ref = net(x)
        assert (got - ref).abs().max() < 1e-3
    # Bands (whole-image statistics) as test_tiling checks them for the plain generator: default init,
    # the residual branch's last conv moved off zero so the output differs from the input (by ~0.15 on average).
    torch.manual_seed(0)
    tiny = ResnetGenerator(3, 3, ngf=8, n_blocks=2, upsample="resize_conv", skip=skip).eval()
    with torch.no_grad():
        tiny.model[-1].weight.normal_(0, 0.02)
        big = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 16) * 2 - 1, size=(150, 198),
                                              mode="bicubic").clamp(-1, 1)
        full = tiny(big)
        assert (full - big).abs().mean() > 0.1
    tiled = in_bands(tiny, big, BandOptions(tile=96, store_dtype=torch.float32))
    assert (tiled - full).abs().max() < 1e-4


# ------------------------------------------------------------------------------------------------ EMA


def test_ema_differs_from_raw_weights_and_test_py_uses_it(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.ema_decay=0.9", "train.max_steps=6", "train.sample_every=6"])
    trainer = Trainer(cfg, prepare_run_dir(cfg))
    trainer.fit()
    raw, avg = trainer.nets["g_ab"].state_dict(), trainer.ema["g_ab"].state_dict()
    assert set(trainer.ema) == {"g_ab", "g_ba"}
    assert any(not torch.equal(raw[k], avg[k]) for k in raw)
    state = torch.load(trainer.run_dir / "latest.pt", weights_only=True)
    assert set(state["ema"]) == {"g_ab", "g_ba"}
    # The sample grid has the EMA row: 3 rows of cells instead of 2.
    grid = np.asarray(Image.open(trainer.run_dir / "samples" / "step_0000006.png"))
    assert grid.shape[0] == 3 * (32 + 2) + 2
    net, info = load_generator(trainer.run_dir)
    assert "EMA" in info.description
    x = torch.rand(1, 3, 20, 20) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), trainer.ema["g_ab"](x))
        raw_net, raw_info = load_generator(trainer.run_dir, weights="raw")
        assert "EMA" not in raw_info.description and torch.equal(raw_net(x), trainer.nets["g_ab"].eval()(x))
    write_images(tmp_path / "in", 1, size=(24, 24))
    outs = {}
    for w in ("ema", "raw"):
        r = run_test_py("--checkpoint", str(trainer.run_dir), "--input", str(tmp_path / "in"), "--output",
                        str(tmp_path / w), "--weights", w, "--precision", "fp32")
        assert r.returncode == 0, r.stderr
        outs[w] = np.asarray(Image.open(tmp_path / w / "img_000.png"))
    assert not np.array_equal(outs["ema"], outs["raw"])


def test_ema_update_follows_its_equation(tiny_overrides):
    cfg = load_config(None, tiny_overrides + ["train.ema_decay=0.5"])
    trainer = Trainer(cfg, prepare_run_dir(cfg))
    trainer.step = 100  # past the warm-up: d = min(0.5, 101 / 110) = 0.5
    before = {k: v.clone() for k, v in trainer.ema["g_ab"].state_dict().items()}
    with torch.no_grad():
        for p in trainer.nets["g_ab"].parameters():
            p.add_(1.0)
    trainer.update_ema()
    after, live = trainer.ema["g_ab"].state_dict(), trainer.nets["g_ab"].state_dict()
    for k in before:
        assert torch.allclose(after[k], 0.5 * before[k] + 0.5 * live[k]), k
    trainer.step = 0  # warm-up: d = min(0.5, 1 / 10) = 0.1
    before = {k: v.clone() for k, v in after.items()}
    trainer.update_ema()
    for k, v in trainer.ema["g_ab"].state_dict().items():
        assert torch.allclose(v, 0.1 * before[k] + 0.9 * live[k]), k


def test_ema_resumes_bitwise(tiny_overrides, tmp_path):
    from tests.test_train import straight_and_resumed

    over = tiny_overrides + ["train.ema_decay=0.95", "train.max_steps=7", "train.save_every=100"]
    straight, second = straight_and_resumed(over, tmp_path, stop_at=3)
    for name in ("g_ab", "g_ba"):
        a, b = straight.ema[name].state_dict(), second.ema[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


# -------------------------------------------------------------------------------- learning-rate levers


def test_warmup_and_lr_scales(tiny_overrides):
    cfg = load_config(None, ["train.max_steps=100", "train.warmup_steps=10"])
    assert lr_factor(cfg, 0, 0) == pytest.approx(0.1) and lr_factor(cfg, 0, 4) == pytest.approx(0.5)
    assert lr_factor(cfg, 0, 9) == 1 and lr_factor(cfg, 0, 75) == pytest.approx(0.5)  # then the schedule
    cfg = load_config(None, tiny_overrides + ["train.lr_scales={d: 0.25}", "train.max_steps=1"])
    trainer = Trainer(cfg, prepare_run_dir(cfg))
    trainer.fit()
    assert trainer.lr("d") == pytest.approx(0.25 * trainer.lr("g"))
    bad = load_config(None, tiny_overrides + ["train.lr_scales={disc: 0.5}", "name=bad"])
    with pytest.raises(GanError, match="train.lr_scales: disc is not an optimizer of model kind cyclegan"):
        Trainer(bad, Path("unused"))
    with pytest.raises(ConfigError, match="train.lr_scales.d: invalid value -1"):
        load_config(None, ["train.lr_scales={d: -1}"])


# --------------------------------------------------------------------------------- discriminator levers


def test_multiscale_discriminator_judges_each_scale_of_the_image():
    import torch.nn.functional as F

    from gan.nn.networks import MultiScaleDiscriminator, PatchDiscriminator, build_discriminator

    torch.manual_seed(0)
    d = MultiScaleDiscriminator(3, 8, 2, scales=3)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    parts, y = [], x
    for k, net in enumerate(d.nets):  # the k-th PatchGAN sees the image average-pooled k times
        y = F.avg_pool2d(y, 3, stride=2, padding=1, count_include_pad=False) if k else y
        parts.append(net(y).flatten(1))
    assert [p.shape[1] for p in parts] == [14 * 14, 6 * 6, 2 * 2]
    assert torch.equal(d(x), torch.cat(parts, 1))
    # the three nets are separate PatchGANs (own weights), and the losses reduce over all their patches
    assert len({id(n.model[0].weight) for n in d.nets}) == 3
    from gan.nn import losses

    out = d(x)
    assert torch.allclose(losses.gan_loss(out, True, "lsgan"), ((out - 1) ** 2).mean())
    # one scale is the reference PatchGAN itself: old checkpoints keep their keys
    one = build_discriminator(load_config(None, ["model.discriminator.ndf=8"]).model, 3)
    assert type(one) is PatchDiscriminator
    two = build_discriminator(load_config(None, ["model.discriminator.scales=2", "model.discriminator.ndf=8"]).model, 3)
    assert {k.split(".")[1] for k in two.state_dict()} == {"0", "1"}


def test_multiscale_discriminator_validation():
    with pytest.raises(ConfigError, match=r"model.discriminator.scales: invalid value 3; expected fewer scales .*"
                                          r"the last scale sees 16 px, and a PatchGAN of 3 layers needs at least 24"):
        load_config(None, ["data.crop_size=64", "model.discriminator.scales=3"])
    with pytest.raises(ConfigError, match="model.discriminator.scales: invalid value 0"):
        load_config(None, ["model.discriminator.scales=0"])
    assert load_config(None, ["data.crop_size=64", "model.discriminator.scales=2"]).model.discriminator.scales == 2


def test_diff_augment_policies():
    from gan.nn.networks import PatchDiscriminator, diff_augment

    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 24) + 0.5  # no zeros of its own
    t = diff_augment(x, ("translation",))
    for i in range(4):  # each image is itself shifted by up to 1/8 of the size, zeros shifted in
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-3, 4)
                 if torch.equal(t[i], torch.roll(x[i], (dy, dx), (1, 2)) * shifted_mask(16, 24, dy, dx))]
        assert len(found) == 1, i
    c = diff_augment(x, ("cutout",))
    assert all(int((c[i] == 0).all(0).sum()) == 8 * 12 for i in range(4))  # a half-size square, per image
    assert torch.equal(c[c != 0], x[c != 0])
    k = diff_augment(x, ("color",))
    assert k.shape == x.shape and not torch.allclose(k, x)
    noisy = diff_augment(x, ("noise",)) - x  # instance noise: N(0, 0.1^2) on every pixel
    assert abs(float(noisy.std()) - 0.1) < 0.01 and abs(float(noisy.mean())) < 0.01
    x.requires_grad_(True)  # differentiable: the generators learn through it
    diff_augment(x, ("translation", "cutout", "color")).sum().backward()
    assert x.grad.abs().sum() > 0
    d = PatchDiscriminator(3, 8, 2)
    d.augment = ("translation", "cutout")
    y = torch.rand(2, 3, 32, 32)
    assert not torch.equal(d(y), d.model(y))  # training mode: augmented
    assert torch.equal(d.eval()(y), d.model(y))  # evaluation: the image as it is
    with pytest.raises(ConfigError, match=r"model.discriminator.augment: invalid value \['flip'\]"):
        load_config(None, ["model.discriminator.augment=[flip]"])
    with pytest.raises(ConfigError, match="distinct names"):
        load_config(None, ["model.discriminator.augment=[cutout, cutout]"])


def shifted_mask(h: int, w: int, dy: int, dx: int) -> torch.Tensor:
    m = torch.zeros(h, w)
    m[max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)] = 1
    return m


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("kind, lever", [
    ("cyclegan", "model.discriminator.scales=2"), ("cut", "model.discriminator.scales=2"),
    ("cyclegan", "model.discriminator.augment=[translation,cutout,color]"),
    ("cyclegan", "loss.lambda_fm=2"), ("cyclegan", "loss.lambda_fm=2+loss.fm=swd+model.discriminator.scales=2"),
    ("cut", "loss.lambda_fm=2+loss.fm=swd"),
    ("cyclegan", "loss.r1_gamma=5+loss.r1_every=2"), ("cut", "loss.r1_gamma=5+loss.r1_every=1"),
    ("cyclegan", "model.discriminator.batch=3+model.discriminator.augment=[translation]"),
    ("cyclegan", "loss.lambda_patch=5+loss.patch=nearest+loss.patch_images=2+loss.patch_size=6+loss.patch_stride=3"),
    ("cyclegan", "loss.lambda_patch=5+loss.patch_images=2+loss.patch_scales=2"),
    ("cyclegan", "model.discriminator.recon=1+model.discriminator.augment=[translation]"),
    ("cut", "model.discriminator.recon=1+model.discriminator.scales=2"),
    ("cyclegan", "model.generator.skip=color+model.generator.skip_fade=3+model.cyclegan.lambda_identity=0"),
    ("cyclegan", "loss.g_steps=2+loss.d_steps=3"),
])
def test_discriminator_levers_train_resume_bitwise_translate_band_and_export(tiny_overrides, tmp_path, kind, lever):
    from tests.test_cut import CUT_TINY
    from tests.test_train import straight_and_resumed, weights

    over = tiny_overrides + lever.split("+") + ["train.max_steps=5", "train.save_every=100"]
    over += CUT_TINY if kind == "cut" else []
    straight, second = straight_and_resumed(over, tmp_path, stop_at=2)
    a, b = weights(straight), weights(second)
    assert any(k.startswith("d_b.nets.1.") for k in a) == ("discriminator.scales" in lever)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(x) for x in (straight.run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = set().union(*rows)
    assert ("fm_ab" in logged) == ("lambda_fm" in lever) and ("r1_b" in logged) == ("r1_gamma" in lever)
    assert ("patch_ab" in logged) == ("lambda_patch" in lever) and ("recon_b" in logged) == ("recon" in lever)
    assert any(k.endswith(".decoder.layers.1.weight") for k in a) == ("recon" in lever)
    net, _ = load_generator(straight.run_dir)  # the generator translates, in bands and exported, as any other
    x = torch.rand(1, 3, 44, 36) * 2 - 1
    with torch.no_grad():
        full = net(x)
    assert full.shape == x.shape
    assert (in_bands(net, x, BandOptions(tile=16, store_dtype=torch.float32)) - full).abs().max() < 1e-4
    assert export(net, "torchscript", tmp_path / "g.pt") < 1e-3


# ------------------------------------------------------------------------------------- cycle levers


def test_lowpass_cycle_loss_ignores_texture_finer_than_its_pooling():
    import torch.nn.functional as F

    from gan.nn import losses

    torch.manual_seed(0)
    x = torch.rand(2, 3, 12, 12) * 2 - 1
    texture = torch.tensor([[0.3, -0.3], [-0.3, 0.3]]).repeat(6, 6)  # zero mean in every 2 x 2 block
    rec = x + texture
    assert losses.cycle_loss(rec, x) == pytest.approx(0.3)  # pixel by pixel: the texture costs
    assert losses.cycle_loss(rec, x, lowpass=2) < 1e-6  # pooled: it does not
    shifted = x + 0.1  # a change of colour costs the same either way
    assert losses.cycle_loss(shifted, x, 4) == pytest.approx(0.1, abs=1e-6)
    # sizes that are not multiples of k: the edges are replicated, nothing is dropped
    odd = torch.rand(1, 3, 13, 10)
    want = F.l1_loss(F.avg_pool2d(F.pad(odd + 0.2 * (odd > 0.5), [0, 2, 0, 3], mode="replicate"), 4),
                     F.avg_pool2d(F.pad(odd, [0, 2, 0, 3], mode="replicate"), 4))
    assert torch.allclose(losses.cycle_loss(odd + 0.2 * (odd > 0.5), odd, 4), want)
    with pytest.raises(ConfigError, match="model.cyclegan.cycle_lowpass: invalid value 0"):
        load_config(None, ["model.cyclegan.cycle_lowpass=0"])


def test_lowpass_cycle_reaches_the_cyclegan_objective(tiny_overrides):
    from gan.models.cyclegan import CycleGAN

    torch.manual_seed(0)
    terms = {}
    for k in (1, 4):
        cfg = load_config(None, tiny_overrides + [f"model.cyclegan.cycle_lowpass={k}", "model.cyclegan.lambda_identity=0"])
        torch.manual_seed(0)
        model = CycleGAN.build(cfg, torch.device("cpu"))
        a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
        _, terms[k], images = model.generator_loss(a, b)
        want = cfg.model.options.lambda_cycle * (torch.nn.functional.avg_pool2d(images["rec_a"], k) -
                                        torch.nn.functional.avg_pool2d(a, k)).abs().mean()
        assert torch.allclose(terms[k]["cycle_a"], want)
    assert terms[4]["cycle_a"] < terms[1]["cycle_a"]


# ---------------------------------------------------------------------------------------- benchmark


def test_quality_benchmark_smoke(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--steps", "3", "--size", "32",
                        "--crop", "40", "--ngf", "4", "--blocks", "1", "--ndf", "8", "--train-images", "4",
                        "--test-images", "2", "--recipes", "reference,ema,recommended_idt,cut+loss.gan_mode=hinge",
                        "--map", "edges",
                        "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=HANG_GUARD, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["recipe"] for row in rows] == ["reference", "ema", "recommended_idt", "cut+loss.gan_mode=hinge"]
    for row in rows:
        for key in ("psnr", "ssim", "identity_psnr", "identity_ssim", "psnr_vs_identity", "checkerboard"):
            assert np.isfinite(row[key]), key
        assert Path(row["sheet"]).is_file() and row["map"] == "edges" and row["steps"] == 3
        assert Path(row["terms_plot"]).is_file() and row["terms"]["step"] == 3
    assert [row["ema"] for row in rows] == [False, True, False, False]  # test.py's default: the EMA when kept
    # the weighted terms of each kind, and what comes back through F for the two-way ones (a 4th sheet column)
    assert {"adv_ab", "cycle_a", "idt_a", "d_b"} <= set(rows[2]["terms"]) and {"nce", "d_b"} <= set(rows[3]["terms"])
    assert np.isfinite(rows[2]["rec_psnr"]) and "rec_psnr" not in rows[3]
    widths = [Image.open(row["sheet"]).size[0] for row in rows[2:]]
    assert widths == [4 * (80 + 4) + 4, 3 * (80 + 4) + 4]
    assert Path(rows[3]["sheet"]).name == "quality_edges_cut_loss.gan_mode_hinge.png"
    # 3 steps from the identity start: still (almost) the identity baseline; the reference starts from noise.
    assert abs(rows[2]["psnr_vs_identity"]) < 1 and rows[0]["psnr_vs_identity"] < -3


def test_benchmark_recipes_translate_photos_to_the_mapped_domain(tmp_path):
    """Every recipe learns A = trainA (photos) -> B = trainB (T of photos), whatever the data section of
    the YAML it starts from (photo2monet.yaml maps the public datasets' swapped layout)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import argparse

    import quality

    args = argparse.Namespace(crop=128, size=64, ngf=16, blocks=4, ndf=32, steps=10, seed=0)
    from gan.models import KINDS

    KINDS.setdefault("paired", quality.paired_kind())
    try:
        for name in [*quality.LEVERS, *quality.OWN, "paired", *quality.SINGLE]:
            cfg = quality.recipe_config(name, tmp_path / "data", tmp_path / "runs", args)
            d = cfg.data
            assert (d.train_a, d.train_b, d.test_a, d.test_b) == ("trainA", "trainB", "testA", "testB"), name
            assert cfg.model.generator.ngf == 16 and cfg.train.max_steps == 10
            assert Path(d.root).name == ("paired" if name == "paired" else "data"), name
        assert quality.recipe_config("cut", tmp_path, tmp_path, args).model.options.nce_layers == (0, 4, 8, 12)
    finally:
        KINDS.pop("paired", None)


@pytest.fixture(scope="module")
def quality_module():
    spec = importlib.util.spec_from_file_location("quality_bench", ROOT / "benchmarks" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["oil", "watercolour", "ink", "edges", "color"])
def test_every_map_smoke_gives_every_json_field(quality_module, tmp_path, capsys, kind):
    """The benchmark's smoke run on every map (in this process: the same main() as the command line): the paired
    bound and an unpaired recipe, each with every field of its JSON line (the alignment of the unpaired one's
    terms included), and the shares."""
    code = quality_module.main(["--steps", "2", "--size", "32", "--crop", "40", "--ngf", "4", "--blocks", "1",
                                "--ndf", "8", "--train-images", "3", "--test-images", "2",
                                "--recipes", "paired,recommended", "--map", kind, "--out", str(tmp_path)])
    assert code in (0, None)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(row["benchmark"], row["recipe"]) for row in rows] == [
        ("quality", "paired"), ("quality", "recommended"), ("quality_share", "paired"),
        ("quality_share", "recommended")]
    assert rows[2]["share_psnr"] == rows[2]["share_ssim"] == 1.0  # the bound is all the way, by definition
    every = {"map", "recipe", "steps", "size", "ngf", "blocks", "seed", "paintings", "painting_images", "psnr", "ssim",
             "identity_psnr", "identity_ssim", "checkerboard", "train_seconds", "psnr_vs_identity", "sheet", "terms"}
    assert every <= rows[0].keys() and every | {"rec_psnr", "alignment", "alignment_curve"} <= rows[1].keys()
    assert all(np.isfinite(rows[i][k]) for i in (0, 1) for k in ("psnr", "ssim", "checkerboard", "train_seconds"))
    assert set(rows[1]["alignment"]) == {"cos_adv_ab", "cos_cycle_a", "cos_total", "right"}
    assert all(-1 <= v <= 1 for v in rows[1]["alignment"].values())
    assert all(Path(rows[i]["sheet"]).is_file() for i in (0, 1)) and Path(rows[1]["alignment_plot"]).is_file()
    assert all(Path(rows[i]["sheet"]).is_file() for i in (0, 1)) and Path(rows[1]["alignment_plot"]).is_file()


def test_quality_benchmark_at_equal_wall_time(tmp_path):
    """--seconds: each recipe's step cost is measured on a short run of itself, and it trains as many steps as
    fit in the budget, with its schedule (and log windows) set for that count."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--seconds", "0.4", "--size", "32",
                        "--crop", "40", "--ngf", "4", "--blocks", "1", "--ndf", "8", "--train-images", "3",
                        "--test-images", "2", "--recipes", "paired,fastcut", "--map", "ink", "--out", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=HANG_GUARD, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()][:2]
    for row in rows:
        assert row["seconds_per_step"] > 0
        assert row["steps"] == max(1, round(0.4 / row["seconds_per_step"]))
        assert row["terms"]["step"] == row["steps"]  # trained exactly that many steps
    # a recipe whose config is invalid is refused before any recipe trains, with the config's message
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--recipes",
                        "paired,recommended+data.batch_size=0"], capture_output=True, text=True, env=env, timeout=HANG_GUARD,
                       cwd=ROOT)
    assert r.returncode == 2 and "recipe 'recommended+data.batch_size=0': data.batch_size" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_known_maps_and_scores():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import quality

    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mapped = quality.apply_map(img, "color")
    assert mapped.shape == img.shape and not np.array_equal(mapped, img)
    # a smooth ramp with fine texture on it (no edge strong enough for an outline)
    ramp = np.stack([*np.meshgrid(np.linspace(60, 190, 48), np.linspace(80, 170, 48)), np.full((48, 48), 120.0)], 2)
    photo = np.clip(ramp + np.random.default_rng(2).integers(-12, 13, ramp.shape), 0, 255).astype(np.uint8)
    for kind in ("oil", "watercolour", "ink"):  # structural maps: the texture goes (less high-frequency energy)
        out = quality.apply_map(photo, kind)
        hf = [np.abs(np.diff(a.astype(float), axis=1)).mean() for a in (photo, out)]
        assert out.shape == photo.shape and hf[1] < 0.8 * hf[0], (kind, hf)
    assert quality.psnr(img, img) == float("inf") and quality.ssim(img, img) == pytest.approx(1.0)
    stripes = np.zeros((16, 16, 3), np.uint8)
    stripes[:, ::2] = 255  # period 2 along x: all its energy on the Nyquist column
    smooth = np.repeat(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], 16, 0).repeat(3, 2)
    assert quality.nyquist_share(stripes) == pytest.approx(1.0) and quality.nyquist_share(smooth) < 0.05


def test_demo_score_against_the_sample_sets_painterly_function(tiny_overrides, tmp_path):
    """A generator that (still) returns its input scores exactly what doing nothing scores, on every held-out
    photo of the folder, at their own sizes; the sheet holds the square ones."""
    from gan.data.sample import painterly
    from gan.training.trainer import train

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import quality

    ckpt = train(load_config(None, tiny_overrides + ["model.generator.skip=color", "train.max_steps=1",
                                                     "train.lr=1e-12", "name=still"]))
    write_images(tmp_path / "sample" / "testA", 2, size=(40, 40))
    write_images(tmp_path / "sample" / "testA", 1, size=(36, 52), prefix="wide")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "demo_score.py"), "--checkpoint", str(ckpt),
                        "--data", str(tmp_path / "sample"), "--sheet", str(tmp_path / "sheet.png")],
                       capture_output=True, text=True, env=env, timeout=HANG_GUARD, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    xs = [np.asarray(Image.open(f).convert("RGB")) for f in sorted((tmp_path / "sample" / "testA").iterdir())]
    want = np.mean([quality.psnr(x, painterly(x)) for x in xs])
    assert row["images"] == 3 and row["identity_psnr"] == pytest.approx(want, abs=1e-3)
    assert row["psnr"] == row["identity_psnr"] and row["ssim"] == row["identity_ssim"]
    assert Image.open(tmp_path / "sheet.png").size == (3 * (80 + 4) + 4, 2 * (80 + 4) + 4)
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "demo_score.py"), "--checkpoint", str(ckpt),
                        "--data", str(tmp_path / "none")], capture_output=True, text=True, env=env, timeout=HANG_GUARD)
    assert r.returncode != 0 and "build the sample dataset first" in r.stderr


def test_discriminator_probe(tmp_path):
    """The discriminator alone: the colour grade it is shown is the least-squares colour map of the pairs, it
    learns to put the paintings above the photos, and the script prints one line per window and batch size."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import discriminator_probe as dp

    rng = np.random.default_rng(0)
    xs = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    m = np.array([[0.6, 0.1, 0.0], [0.1, 0.5, 0.1], [0.0, 0.2, 0.4]])
    ts = [np.rint((x / 255 @ m.T + 0.1) * 255).astype(np.uint8) for x in xs]  # an exact affine colour map
    grade = dp.colour_grade(xs, ts)
    assert all(np.abs(grade(x).astype(int) - t).max() <= 1 for x, t in zip(xs, ts))
    # dark photos against bright paintings: after a few steps the paintings score higher, held out too
    cfg = load_config(None, ["model.discriminator.ndf=8", "model.discriminator.n_layers=1", "train.lr=0.002"])
    dark = [rng.integers(0, 60, (20, 20, 3), dtype=np.uint8) for _ in range(4)]
    bright = [rng.integers(190, 256, (20, 20, 3), dtype=np.uint8) for _ in range(4)]
    rows = list(dp.probe(cfg, dark, bright, dark[:2], bright[:2], batch=2, steps=30, every=10, size=16, seed=0))
    assert [r["step"] for r in rows] == [10, 20, 30] and rows[-1]["loss"] < rows[0]["loss"]
    assert rows[-1]["held_out_real"] > rows[-1]["held_out_fake"] + 0.3

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "discriminator_probe.py"), "--steps", "5", "--every", "3",
           "--size", "32", "--crop", "40", "--ndf", "8", "--train-images", "3", "--test-images", "2"]
    r = subprocess.run(cmd + ["--map", "ink", "--batch", "1,2", "--set", "model.discriminator.n_layers=2"],
                       capture_output=True, text=True, env=env, timeout=HANG_GUARD, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(r["batch"], r["step"]) for r in rows] == [(1, 3), (1, 5), (2, 3), (2, 5)]
    assert all(np.isfinite(r["loss"]) and r["overrides"] == ["model.discriminator.n_layers=2"] for r in rows)
    r = subprocess.run(cmd + ["--map", "pencil"], capture_output=True, text=True, env=env, timeout=HANG_GUARD, cwd=ROOT)
    assert r.returncode == 2 and "unknown map 'pencil'" in r.stderr and "Traceback" not in r.stderr


def test_discriminator_batch_judges_more_real_and_history_images_per_update(tiny_overrides):
    """model.discriminator.batch=3 with data.batch_size=2: each discriminator's update sees 6 real images (the
    batch's 2 and 4 more from the loader, all different) and 6 generated ones (the batch's, through the pool, and
    4 drawn from the history); the generators still translate 2."""
    from gan.training.trainer import Trainer, prepare_run_dir

    cfg = load_config(None, tiny_overrides + ["model.discriminator.batch=3", "data.batch_size=2", "train.max_steps=2"])
    t = Trainer(cfg, prepare_run_dir(cfg))
    seen = []
    t.model.d_b.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    t.model.g_ab.register_forward_hook(lambda m, args, out: seen.append(("g", args[0].shape[0])))
    batch = next(iter(t.data.loader))
    assert batch["B_more"].shape == (2, 2, 3, 32, 32) and batch["A_more"].shape == (2, 2, 3, 32, 32)
    flat = torch.cat([batch["B"], batch["B_more"].flatten(0, 1)])
    assert len({tuple(img.flatten()[:50].tolist()) for img in flat}) >= 4  # more than the batch's own
    t.fit()
    assert ("g", 2) in seen and 6 in seen and all(n in (2, 6) for n in seen if isinstance(n, int))
    with pytest.raises(ConfigError, match="model.discriminator.batch: invalid value 2; expected 1 with train.pool"):
        load_config(None, ["model.discriminator.batch=2", "train.pool_size=0"])
    with pytest.raises(ConfigError, match="model.discriminator.batch: invalid value 2; expected 1: model kind cut does "
                                          "not read it"):
        load_config("configs/cut.yaml", ["model.discriminator.batch=2"])
    with pytest.raises(ConfigError, match="expected a cropping preprocess"):
        load_config(None, ["model.discriminator.batch=2", "data.preprocess=none"])


def test_nearest_patch_loss_pulls_each_patch_to_its_nearest_real_one():
    """Known answer: real images made of two flat colours; an output patch near the first colour is pulled to it
    (its squared distance to it, averaged), whatever the other real patches are; an output made of real patches
    costs nothing."""
    from gan.nn import losses

    real = torch.cat([torch.full((1, 3, 8, 8), 0.5), torch.full((1, 3, 8, 8), -0.5)])
    out = torch.full((1, 3, 8, 8), 0.4)
    out[0, 0, 0, 0] = 0.6  # one pixel off
    want = ((out - 0.5) ** 2).mean()
    assert losses.nearest_patch_loss(out, real, 4, 4).item() == pytest.approx(want.item(), rel=1e-6)
    assert losses.nearest_patch_loss(real[1:], real, 4, 2).item() == 0.0
    out.requires_grad_(True)
    losses.nearest_patch_loss(out, real, 8, 8).backward()
    assert (out.grad < 0).all() or (out.grad[0, 0, 0, 0] > 0)  # toward 0.5: up where below, down where above


def test_the_discriminators_rebuild_is_weighed_as_set():
    """model.discriminator.recon = w: the D update's recon_b is w x L1(the decoder's rebuild, the real image)."""
    from gan.models import KINDS
    from tests.helpers import TINY
    from tests.test_losses import RecordingContext

    cfg = load_config(None, TINY + ["model.discriminator.recon=0.7"])
    torch.manual_seed(0)
    m = KINDS["cyclegan"].build(cfg, torch.device("cpu"))
    a, b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    ctx = RecordingContext(m)
    m.training_step({"A": a, "B": b}, ctx)
    with torch.no_grad():
        _, rebuilt, seen = m.d_b(b, recon=True)
        want = 0.7 * (rebuilt - b).abs().mean()
    assert torch.equal(seen, b) and rebuilt.shape == b.shape
    assert ctx.seen["d"][1]["recon_b"].item() == pytest.approx(want.item(), rel=1e-5)


def test_a_fading_skip_path_weighs_one_minus_the_steps_done_and_ends_as_a_plain_generator(tiny_overrides):
    from gan.training.trainer import Trainer, prepare_run_dir

    cfg = load_config(None, tiny_overrides + ["model.generator.skip=color", "model.generator.skip_fade=4",
                                              "model.cyclegan.lambda_identity=0", "train.max_steps=6"])
    t = Trainer(cfg, prepare_run_dir(cfg))
    seen = []
    t.model.g_ab.register_forward_pre_hook(lambda mod, args: seen.append(float(mod.skip_scale)))
    t.fit()
    assert sorted(set(seen), reverse=True) == [1.0, 0.75, 0.5, 0.25, 0.0]
    net, _ = load_generator(t.run_dir)  # the saved generator is the faded one: its branch alone
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        assert float(net.skip_scale) == 0 and torch.equal(net(x), net.model(x))
    with pytest.raises(ConfigError, match="model.generator.skip_fade: invalid value 4; expected 0 with"):
        load_config(None, ["model.generator.skip_fade=4"])


def test_sliced_patch_loss_matches_patch_distributions_not_places():
    """SWD of pixel patches: 0 for the same image, also shifted (a distribution, not places); a flat output
    against a textured real image costs more than a textured one; its gradient flattens texture toward a flat
    real image."""
    from gan.nn import losses

    g = torch.Generator().manual_seed(0)
    real = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1
    rng = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert losses.sliced_patch_loss(real, real, 4, 4, 1, rng()).item() == pytest.approx(0, abs=1e-10)
    shifted = torch.roll(real, (8, 8), (2, 3))  # the same patches elsewhere (stride 4 keeps the grid)
    assert losses.sliced_patch_loss(shifted, real, 4, 4, 1, rng()).item() == pytest.approx(0, abs=1e-10)
    flat = torch.zeros(1, 3, 32, 32)
    assert losses.sliced_patch_loss(flat, real, 4, 4, 2, rng()) > losses.sliced_patch_loss(real * 0.9, real, 4, 4, 2, rng())
    texture = (torch.rand(1, 3, 32, 32, generator=g) * 0.4 - 0.2).requires_grad_(True)
    losses.sliced_patch_loss(texture, torch.zeros(1, 3, 32, 32), 4, 2, 1, rng()).backward()
    assert ((texture - 0.01 * texture.grad).abs().mean() < texture.abs().mean())  # a step makes it flatter


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_reflect_padding_sees_no_dark_border_above_and_left_and_keeps_weights_bands_and_exports(tmp_path):
    """model.generator.padding=reflect: the downsampling convs read the image beyond its top and left edges, not
    zeros (the streaks along the top of the demo's outputs came from that zero row); same weights as zeros, so
    a zeros checkpoint loads; bands and exports reproduce the net."""
    torch.manual_seed(0)
    zeros = ResnetGenerator(3, 3, ngf=4, n_blocks=1, upsample="resize_conv", skip="color")
    reflect = ResnetGenerator(3, 3, ngf=4, n_blocks=1, upsample="resize_conv", skip="color", padding="reflect")
    reflect.load_state_dict(zeros.state_dict())  # the same keys and shapes
    down = zeros.model[4]
    x = torch.ones(1, 4, 8, 8)  # a flat image: the first stride-2 conv's top row differs only by the padding
    with torch.no_grad():
        z, r = down(x), reflect.model[4](x)
        assert not torch.allclose(z[:, :, 0], z[:, :, 2]) and torch.allclose(r[:, :, 0], r[:, :, 2], atol=1e-6)
        assert torch.allclose(z[:, :, -1], z[:, :, 2])  # the bottom edge reads no padding at all
        reflect.model[-1].weight.normal_(0, 0.05)
        big = torch.rand(1, 3, 90, 70) * 2 - 1
        full = reflect.eval()(big)
    assert (in_bands(reflect, big, BandOptions(tile=24, store_dtype=torch.float32)) - full).abs().max() < 1e-4
    assert export(reflect, "onnx", tmp_path / "r.onnx") < 1e-3 and export(reflect, "torchscript", tmp_path / "r.pt") < 1e-3
    assert load_config(None, ["model.generator.padding=reflect"]).model.generator.padding == "reflect"
    with pytest.raises(ConfigError, match="model.generator.padding: invalid value 'circular'"):
        load_config(None, ["model.generator.padding=circular"])


def test_quality_report_tables_the_share_of_the_way_to_the_paired_bound(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("quality_report", ROOT / "benchmarks" / "quality_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    base = {"benchmark": "quality", "map": "oil", "steps": 2000, "size": 64, "ngf": 16, "blocks": 4,
            "identity_psnr": 18.0, "identity_ssim": 0.6, "checkerboard": 0.3, "train_seconds": 100}
    lines = [{**base, "recipe": "paired", "psnr": 22.0, "ssim": 0.8},
             {**base, "recipe": "recommended", "psnr": 19.0, "ssim": 0.65, "alignment": {"cos_total": -0.01},
              "terms": {"d_b": 0.2}}, {"benchmark": "quality_share"}]
    path = tmp_path / "oil.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    text = report.table(report.rows_of(path))
    assert "| recommended | 19.00 | 0.650 | 0.25 / 0.25 | 0.30 | -0.010 | 0.200 | 100 s |" in text
    assert "| doing nothing | 18.00 | 0.600 | 0 / 0 |" in text
    ink = tmp_path / "ink.jsonl"
    ink.write_text("\n".join(json.dumps({**x, "map": "ink"}) for x in lines[:2]))
    table = report.summary([path, ink])
    assert table.splitlines()[0] == "| recipe | `oil` | `ink` |" and "| recommended | 0.25 / 0.25 | 0.25 / 0.25 |" in table
