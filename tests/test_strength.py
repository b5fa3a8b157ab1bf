"""--strength: 0 = the input exactly, 1 = the model's output exactly, in between and above: the model's change
scaled (the residual branch of a skip generator, a pixel blend otherwise), in one pass, in bands, in folders and
videos."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gan import GanError
from gan.data.io import load_image, normalize_uint8, to_uint8
from gan.inference.engine import Engine, apply_strength, check_strength
from gan.nn.networks import ResnetGenerator
from tests.helpers import HANG_GUARD, write_images

ROOT = Path(__file__).resolve().parents[1]


def skip_net(skip="identity"):
    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, ngf=4, n_blocks=1, skip=skip).eval()
    with torch.no_grad():  # a trained-looking residual branch (the identity start zeroes it)
        net.model[-1].weight.normal_(0, 0.05)
        net.model[-1].bias.normal_(0, 0.05)
    return net


def image(h=40, w=48, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, h, w), dtype=np.uint8))


def test_strength_zero_is_the_input_and_one_the_output_exactly():
    x = image()
    for net in (skip_net(), skip_net("color"), ResnetGenerator(3, 3, ngf=4, n_blocks=1).eval()):
        with torch.no_grad():
            full = to_uint8(net(normalize_uint8(x)[None])[0])  # the model's own output
        assert np.array_equal(Engine(net, strength=1).image(x, as_uint8=True), full)
        assert np.array_equal(Engine(net, strength=0).image(x, as_uint8=True), x.permute(1, 2, 0).numpy())
        assert not np.array_equal(full, x.permute(1, 2, 0).numpy())


def test_strength_scales_the_residual_branch_of_a_skip_generator():
    net, x = skip_net(), image()
    xf = normalize_uint8(x)[None]
    with torch.no_grad():
        residual = net.model(xf)  # G(x) = x + R(x): the branch itself
    for s in (0.5, 2.0):
        want = (xf + s * residual).clamp(-1, 1)[0]
        got = Engine(net, strength=s).image(x)
        assert torch.allclose(got, want, atol=1e-5), s


def test_strength_blends_in_pixel_space_for_a_plain_generator():
    torch.manual_seed(0)
    net, x = ResnetGenerator(3, 3, ngf=4, n_blocks=1).eval(), image()
    xf = normalize_uint8(x)
    y = Engine(net).image(x)
    assert torch.allclose(Engine(net, strength=0.25).image(x), 0.75 * xf + 0.25 * y, atol=1e-5)
    # Above 1 it extrapolates and stays in the image range.
    over = Engine(net, strength=3).image(x)
    assert over.min() >= -1 and over.max() <= 1
    assert torch.allclose(over, (xf + 3 * (y - xf)).clamp(-1, 1), atol=1e-5)


def test_strength_in_bands_matches_one_pass():
    net, x = skip_net(), image(72, 64)
    one = Engine(net, strength=0.6).image(x, as_uint8=True)
    banded = Engine(net, tile=32, strength=0.6).image(x, as_uint8=True)
    assert Engine(net, tile=32).tile_for(72, 64)
    assert np.abs(one.astype(int) - banded.astype(int)).max() <= 1  # the band output is rounded once more
    assert np.array_equal(Engine(net, tile=32, strength=0).image(x, as_uint8=True), x.permute(1, 2, 0).numpy())


def test_strength_errors_say_what_is_accepted():
    for bad in (-0.1, 4.5, float("nan"), "x"):
        with pytest.raises(GanError, match=r"--strength: invalid value .* from 0 \(the input\)"):
            check_strength(bad)
    gray_to_rgb = ResnetGenerator(1, 3, ngf=4, n_blocks=1).eval()
    with pytest.raises(GanError, match=r"maps 1 channel\(s\) to 3\); use --strength 1"):
        Engine(gray_to_rgb, strength=0.5).image(torch.zeros(1, 16, 16, dtype=torch.uint8))
    y = torch.rand(1, 3, 4, 4)
    assert apply_strength(torch.zeros(1, 3, 4, 4), y, 1) is y  # 1: the output object itself, untouched


def test_test_py_strength(tmp_path):
    ckpt = tmp_path / "latest_net_G.pth"
    torch.manual_seed(0)
    torch.save(ResnetGenerator(3, 3, ngf=4, n_blocks=1).state_dict(), ckpt)
    src = write_images(tmp_path / "in", 2)

    def run(out, *extra):
        return subprocess.run([sys.executable, str(ROOT / "test.py"), "--checkpoint", str(ckpt), "--input",
                               str(tmp_path / "in"), "--output", str(tmp_path / out), "--workers", "0", *extra],
                              capture_output=True, text=True, timeout=HANG_GUARD, cwd=ROOT)

    for out, extra in (("zero", ["--strength", "0"]), ("one", ["--strength", "1"]), ("plain", [])):
        r = run(out, *extra)
        assert r.returncode == 0, r.stderr
    for p in src:
        assert np.array_equal(load_image(tmp_path / "zero" / p.name), load_image(p))
        assert np.array_equal(load_image(tmp_path / "one" / p.name), load_image(tmp_path / "plain" / p.name))
    r = run("bad", "--strength", "-1")
    assert r.returncode == 2 and "--strength: invalid value -1.0" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "bad").exists()


def test_video_frames_take_the_strength(tmp_path):
    av = pytest.importorskip("av")
    from gan.inference.video import VideoOptions, translate_video

    from PIL import Image

    rng = np.random.default_rng(0)  # smooth frames: the codec's 4:2:0 chroma keeps them
    frames = [np.asarray(Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((64, 48),
                                                                                             Image.BILINEAR))
              for _ in range(3)]
    with av.open(str(tmp_path / "clip.mp4"), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt, v.options = 64, 48, "yuv444p", {"qp": "0"}
        for f in frames:
            for packet in v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(packet)
        for packet in v.encode():
            c.mux(packet)
    net = ResnetGenerator(3, 3, ngf=4, n_blocks=1).eval()
    opts = VideoOptions(smooth=0, crf=0)
    errors = {}
    for s in (0.0, 1.0):
        translate_video(Engine(net, strength=s), tmp_path / "clip.mp4", tmp_path / f"s{s}.mp4", opts, progress=False)
        with av.open(str(tmp_path / "clip.mp4")) as a, av.open(str(tmp_path / f"s{s}.mp4")) as b:
            pairs = zip(a.decode(video=0), b.decode(video=0))
            errors[s] = max(np.abs(fa.to_ndarray(format="rgb24").astype(int) - fb.to_ndarray(format="rgb24")).mean()
                            for fa, fb in pairs)
    assert errors[0.0] < 0.2 * errors[1.0], errors  # strength 0: the clip back (up to the codec's 4:2:0)
