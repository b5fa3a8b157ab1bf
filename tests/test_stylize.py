"""Optimisation-based style transfer, with a random-weight VGG (ImageNet weights cannot be fetched here)."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from gan import GanError
from gan.nn import losses
from gan.stylize.colour import match_color, rgb_to_yiq
from gan.runtime import Runtime
from gan.inference.stylize_files import stylize_files
from gan.stylize.optimise import load_vgg, stylize
from gan.stylize.options import StylizeOptions, normalised_weights, scale_sizes
from tests.helpers import HANG_GUARD

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(size=32, min_size=16, iterations=4, style_layers=("relu1_1", "relu2_1", "relu3_1"),
            content_layers=("relu2_2",))


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return losses.VGGFeatures(["relu1_1", "relu2_1", "relu2_2", "relu3_1"], "none")


def smooth_image(h, w, seed, lo=0, hi=255):
    rng = np.random.default_rng(seed)
    small = rng.integers(lo, hi + 1, (h // 6 + 2, w // 6 + 2, 3)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_loss_decreases_and_sizes_are_exact_for_odd_aspects(vgg):
    content, style = smooth_image(37, 53, 1), smooth_image(40, 40, 2)
    history, seen = [], []
    opts = StylizeOptions(**{**FAST, "size": 50, "iterations": 30}, lr=0.05)
    out = stylize(content, [style], opts, vgg, callback=lambda img, s, it: seen.append((s, img.shape[:2])),
                  history=history, progress=False)
    assert out.shape == (35, 50, 3) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    per_scale = [[loss for s, _, loss in history if s == k] for k in range(len(scale_sizes(50, 16)))]
    assert all(len(p) == 30 and p[-1] < p[0] for p in per_scale), per_scale  # the loss goes down at every scale
    assert per_scale[0][-1] < 0.5 * per_scale[0][0]  # and a lot at the first, which starts from the photo
    assert scale_sizes(50, 16) == [16, 23, 32, 50]  # x sqrt(2) while below size / sqrt(2), then the size
    assert [shape for _, shape in seen] == [(11, 16), (16, 23), (22, 32), (35, 50)]


def test_scale_sequence():
    assert scale_sizes(512, 128) == [128, 181, 256, 362, 512]
    assert scale_sizes(100, 128) == [100] and scale_sizes(128, 128) == [128]


def test_same_seed_is_bitwise_reproducible_and_noise_init_depends_on_it(vgg):
    content, style = smooth_image(24, 30, 3), smooth_image(24, 24, 4)
    opts = StylizeOptions(**FAST, init="noise", seed=7)
    a = stylize(content, [style], opts, vgg, progress=False)
    b = stylize(content, [style], opts, vgg, progress=False)
    assert np.array_equal(a, b)
    c = stylize(content, [style], StylizeOptions(**FAST, init="noise", seed=8), vgg, progress=False)
    assert not np.array_equal(a, c)


def test_style_weights_are_normalised_and_zero_removes_a_style(vgg):
    assert normalised_weights((2.0, 6.0), 2) == [0.25, 0.75] and normalised_weights((), 3) == [1 / 3] * 3
    content, s1, s2 = smooth_image(24, 24, 5), smooth_image(24, 24, 6), smooth_image(24, 24, 7)
    only_first = stylize(content, [s1], StylizeOptions(**FAST), vgg, progress=False)
    with_zero = stylize(content, [s1, s2], StylizeOptions(**FAST, style_weights=(3.0, 0.0)), vgg, progress=False)
    assert np.array_equal(only_first, with_zero)
    both = stylize(content, [s1, s2], StylizeOptions(**FAST, style_weights=(1.0, 1.0)), vgg, progress=False)
    assert not np.array_equal(only_first, both)
    scaled = stylize(content, [s1, s2], StylizeOptions(**FAST, style_weights=(5.0, 5.0)), vgg, progress=False)
    assert np.array_equal(both, scaled)  # only the ratio counts


@pytest.mark.parametrize("loss", ["gram", "wasserstein"])
def test_both_style_losses_run_with_lbfgs_and_adam(vgg, loss):
    content, style = smooth_image(24, 24, 8), smooth_image(24, 24, 9)
    for optimizer in ("adam", "lbfgs"):
        history = []
        opts = StylizeOptions(**FAST, style_loss=loss, style_weight=1e6 if loss == "gram" else 10,
                              optimizer=optimizer)
        stylize(content, [style], opts, vgg, history=history, progress=False)
        assert all(np.isfinite(h[2]) for h in history)
        for k in range(3):  # every scale ends lower than it started
            losses_k = [h[2] for h in history if h[0] == k]
            assert losses_k[-1] < losses_k[0], (optimizer, k, losses_k)


def test_wasserstein_loss_is_zero_for_the_same_distribution():
    f = torch.randn(1, 8, 6, 6)
    mu, cov = losses.feature_mean_cov(f)
    target = {"x": (mu, cov, losses.sqrtm_psd(cov))}
    assert losses.wasserstein_style_loss({"x": f}, target).item() == pytest.approx(0, abs=1e-3)
    shuffled = f.flatten(2)[..., torch.randperm(36)].reshape(1, 8, 6, 6)  # same distribution, other layout
    assert losses.wasserstein_style_loss({"x": shuffled}, target).item() == pytest.approx(0, abs=1e-3)
    assert losses.wasserstein_style_loss({"x": f * 2 + 1}, target).item() > 1


def test_luminance_preservation_keeps_the_photos_chroma(vgg):
    content = smooth_image(30, 30, 10, lo=80, hi=180)  # mid-tones: no clipping at the gamut's edge
    style = smooth_image(30, 30, 11)
    out = stylize(content, [style], StylizeOptions(**{**FAST, "size": 30}, preserve_color="luminance"), vgg,
                  progress=False)
    out8 = np.rint(out * 255)
    to_t = lambda a: torch.from_numpy(a.astype(np.float32).transpose(2, 0, 1))[None] / 255  # noqa: E731
    chroma_out, chroma_in = rgb_to_yiq(to_t(out8))[0, 1:], rgb_to_yiq(to_t(content.astype(np.float32)))[0, 1:]
    assert (chroma_out - chroma_in).abs().max().item() * 255 <= 1.0  # I and Q within one 8-bit level
    y_out, y_in = rgb_to_yiq(to_t(out8))[0, 0], rgb_to_yiq(to_t(content.astype(np.float32)))[0, 0]
    assert (y_out - y_in).abs().mean().item() * 255 > 1  # the luminance did change


def test_histogram_matching_gives_the_style_the_photos_colour_statistics():
    rng = np.random.default_rng(0)
    style = np.clip(rng.normal([0.7, 0.3, 0.2], [0.08, 0.05, 0.06], (40, 40, 3)), 0, 1).astype(np.float32)
    content = np.clip(rng.normal([0.3, 0.5, 0.6], [0.1, 0.07, 0.05], (30, 50, 3)), 0, 1).astype(np.float32)
    matched = match_color(style, content)
    assert np.allclose(matched.reshape(-1, 3).mean(0), content.reshape(-1, 3).mean(0), atol=2e-3)
    assert np.allclose(matched.reshape(-1, 3).std(0), content.reshape(-1, 3).std(0), rtol=0.03)


# -------------------------------------------------------------------------------------- files and CLI


def run_stylize(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "stylize.py"), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=HANG_GUARD)


def write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def test_cli_folder_16bit_intermediates_and_no_overwrite(tmp_path):
    write(tmp_path / "photos" / "a.png", smooth_image(20, 28, 1))
    write(tmp_path / "photos" / "sub" / "b.jpg", smooth_image(26, 18, 2))
    (tmp_path / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    style = write(tmp_path / "style.png", smooth_image(32, 32, 3))
    common = ["--style", style, "--vgg-weights", "none", "--size", "32", "--min-size", "16", "--iterations", "2",
              "--style-layers", "relu1_1,relu2_1", "--content-layers", "relu2_2", "--precision", "fp32"]
    r = run_stylize("--content", tmp_path / "photos", "--output", tmp_path / "out", "--format", "png",
                    "--bit-depth", "16", "--save-every", "1", *common)
    assert r.returncode == 0, r.stderr
    a = cv2.imread(str(tmp_path / "out" / "a.png"), cv2.IMREAD_UNCHANGED)
    b = cv2.imread(str(tmp_path / "out" / "sub" / "b.png"), cv2.IMREAD_UNCHANGED)
    assert a.dtype == np.uint16 and a.shape == (23, 32, 3) and b.shape == (32, 22, 3)
    assert len(list((tmp_path / "out").glob("a_scale*_it*.png"))) == 3 * 2  # scales 16, 23, 32 x 2 iterations
    assert "broken.png" in r.stderr and not (tmp_path / "out" / "broken.png").exists()
    assert "--vgg-weights=none: VGG19 has random weights" in r.stderr and "pictures will mean nothing" in r.stderr
    stamp = (tmp_path / "out" / "a.png").stat().st_mtime_ns
    r = run_stylize("--content", tmp_path / "photos", "--output", tmp_path / "out", *common)
    assert r.returncode == 2 and "exist already" in r.stderr and "--overwrite" in r.stderr
    assert (tmp_path / "out" / "a.png").stat().st_mtime_ns == stamp
    # One file in, one named file out, format from its extension (TIFF, 16-bit).
    r = run_stylize("--content", tmp_path / "photos" / "a.png", "--output", tmp_path / "one.tif", "--bit-depth",
                    "16", *common)
    assert r.returncode == 0, r.stderr
    t = cv2.imread(str(tmp_path / "one.tif"), cv2.IMREAD_UNCHANGED)
    assert t.dtype == np.uint16 and t.shape == (23, 32, 3)


@pytest.mark.parametrize("changes, message", [
    ({"--content": "{tmp}/missing.png"}, "--content: not found"),
    ({"--style": "{tmp}/broken.png"}, "--style: {tmp}/broken.png: cannot decode image"),
    ({"--style-weights": ["1", "2"]}, "--style-weights: 2 weight(s) for 1 style image(s)"),
    ({"--size": "8"}, "--size: invalid value 8; expected at least 16 px"),
    ({"--iterations": "0"}, "--iterations: invalid value 0"),
    ({"--output": "{tmp}/o.jpg", "--bit-depth": "16"}, "16-bit output needs PNG or TIFF"),
    ({"--style-layers": "relu9_1"}, "--style-layers: invalid value 'relu9_1'"),
])
def test_bad_inputs_get_one_message_and_write_nothing(tmp_path, changes, message):
    write(tmp_path / "c.png", smooth_image(20, 20, 1))
    write(tmp_path / "s.png", smooth_image(20, 20, 2))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    args = {"--content": "{tmp}/c.png", "--style": "{tmp}/s.png", "--output": "{tmp}/out.png",
            "--vgg-weights": "none", "--size": "16", "--min-size": "16", "--iterations": "1", **changes}
    flat = []
    for flag, value in args.items():
        flat += [flag, *([value] if isinstance(value, str) else value)]
    before = set(tmp_path.rglob("*"))
    r = run_stylize(*[a.format(tmp=tmp_path) for a in flat])
    assert r.returncode == 2, r.stderr
    assert message.format(tmp=tmp_path) in r.stderr and "Traceback" not in r.stderr
    assert set(tmp_path.rglob("*")) == before


def test_offline_imagenet_weights_name_the_flag(monkeypatch, tmp_path):
    from torchvision.models import VGG19_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*a, **k):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(type(VGG19_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(GanError) as e:
        load_vgg(StylizeOptions(), "imagenet", torch.device("cpu"))
    msg = str(e.value)
    assert "vgg19-dcbb9e9d.pth" in msg and "--vgg-weights=/path/to/vgg19-dcbb9e9d.pth" in msg
    assert str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in msg


def test_stylize_files_checks_everything_before_starting(tmp_path, vgg):
    write(tmp_path / "c" / "a.png", smooth_image(20, 20, 1))
    write(tmp_path / "s.png", smooth_image(20, 20, 2))
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "a.png").write_bytes(b"keep me")
    with pytest.raises(GanError, match="exist already"):
        stylize_files(tmp_path / "c", [tmp_path / "s.png"], tmp_path / "o", StylizeOptions(**FAST), vgg,
                      Runtime.on("cpu"), progress=False)
    assert (tmp_path / "o" / "a.png").read_bytes() == b"keep me"


def test_scales_too_small_for_the_deepest_layer_are_skipped_or_refused():
    """relu5_1 comes after four halvings: a short side under 16 px has no position left there. Such scales are
    skipped; a photo whose final size is still too small is refused with the numbers (not a traceback)."""
    from gan.stylize.options import vgg_min_side

    assert vgg_min_side(("relu1_1",)) == 1 and vgg_min_side(("relu4_1", "relu2_2")) == 8
    assert vgg_min_side(("relu5_1",)) == 16
    opts = StylizeOptions(size=64, min_size=16, iterations=1, style_layers=("relu5_1",),
                          content_layers=("relu4_2",))
    torch.manual_seed(0)
    vgg = losses.VGGFeatures(["relu4_2", "relu5_1"], "none")
    history = []
    out = stylize(smooth_image(48, 64, 1), [smooth_image(32, 32, 2)], opts, vgg, progress=False, history=history)
    assert out.shape[:2] == (48, 64)
    assert len({si for si, _, _ in history}) == 4  # 16 px wide is 12 px high: that scale is skipped
    with pytest.raises(GanError, match="would be 12 px on its short side, and VGG19 needs at least 16 px"):
        stylize(smooth_image(12, 64, 1), [smooth_image(32, 32, 2)], opts, vgg, progress=False)
