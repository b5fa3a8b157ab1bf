import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan import GanError
from gan.config import load_config
from gan.training.trainer import Trainer, prepare_run_dir
from gan.inference.load import load_generator
from gan.inference.translate import TranslateOptions, plan_outputs, translate_folder
from tests.helpers import HANG_GUARD, write_images
from tests.test_networks import reference_generator

ROOT = Path(__file__).resolve().parents[1]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a - b) ** 2).mean().item()  # images in [-1, 1]: peak-to-peak 2
    return 10 * np.log10(4 / mse) if mse > 0 else float("inf")


@pytest.fixture
def run_dir(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.max_steps=2"])
    Trainer(cfg, prepare_run_dir(cfg)).fit()
    return tmp_path / "runs" / "tiny"


def run_test_py(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "test.py"), *args], capture_output=True, text=True,
                          timeout=HANG_GUARD, env=env, cwd=ROOT)


def test_nested_folders_odd_sizes_and_no_overwrite(run_dir, tmp_path):
    src = tmp_path / "in"
    write_images(src, 2, size=(37, 53), prefix="odd")
    write_images(src / "sub" / "deeper", 3, size=(20, 24), prefix="small")
    Image.fromarray(np.zeros((9, 11, 3), np.uint8)).save(src / "sub" / "tiny.jpg")
    (src / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    r = run_test_py("--checkpoint", str(run_dir), "--input", str(src), "--output", str(out), "--batch-size", "2")
    assert r.returncode == 0, r.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["odd_000.png", "odd_001.png", "sub/deeper/small_000.png", "sub/deeper/small_001.png",
                       "sub/deeper/small_002.png", "sub/tiny.png"]
    assert Image.open(out / "odd_000.png").size == (53, 37) and Image.open(out / "sub/tiny.png").size == (11, 9)
    assert "broken.png" in r.stderr and "skipped 1 unreadable" in r.stderr
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before  # inputs untouched
    # Existing outputs: refused, nothing written or changed.
    stamp = (out / "odd_000.png").stat().st_mtime_ns
    r = run_test_py("--checkpoint", str(run_dir), "--input", str(src), "--output", str(out))
    assert r.returncode == 2 and "6 output file(s) exist already" in r.stderr and "--overwrite" in r.stderr
    assert (out / "odd_000.png").stat().st_mtime_ns == stamp
    r = run_test_py("--checkpoint", str(run_dir), "--input", str(src), "--output", str(out), "--overwrite",
                    "--format", "jpg", "--direction", "BtoA")
    assert r.returncode == 0 and (out / "sub" / "tiny.jpg").is_file()


def test_single_file_and_resize(run_dir, tmp_path):
    write_images(tmp_path, 1, size=(40, 60), prefix="one")
    r = run_test_py("--checkpoint", str(run_dir / "latest.pt"), "--input", str(tmp_path / "one_000.png"),
                    "--output", str(tmp_path / "o"), "--resize", "20")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "o" / "one_000.png").size == (30, 20)


def test_outputs_never_outside_output_dir(tmp_path):
    src = tmp_path / "in"
    write_images(src, 2)
    out = src / "results"  # output inside the input: earlier results are not re-translated
    write_images(out, 1, prefix="old")
    pairs = plan_outputs(src, out, "png")
    assert [s.name for s, _ in pairs] == ["img_000.png", "img_001.png"]
    assert all(d.resolve().is_relative_to(out.resolve()) for _, d in pairs)
    (src / "img_000.jpg").write_bytes((src / "img_000.png").read_bytes())
    dsts = [d.name for _, d in plan_outputs(src, out, "png")]
    assert len(dsts) == len(set(dsts)) == 3  # a.jpg and a.png do not collide
    with pytest.raises(GanError, match="--format must be one of"):
        plan_outputs(src, out, "gif")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanError, match="no image or video files in"):
        plan_outputs(tmp_path / "empty", tmp_path / "x", "png")
    # The output folder is the input folder (or holds the input file): refused, saying why.
    for inp in (src, src / "img_001.png"):
        with pytest.raises(GanError, match="every input is inside the output folder .* choose another --output"):
            plan_outputs(inp, src, "png")


def test_reference_checkpoint_translates(tmp_path):
    torch.manual_seed(0)
    ref = reference_generator(8, 6)
    sd = ref.state_dict()
    sd["model.2.running_mean"] = torch.zeros(8)
    torch.save(sd, tmp_path / "latest_net_G_A.pth")
    net, info = load_generator(tmp_path / "latest_net_G_A.pth")
    assert info.source == "reference" and "6 blocks" in info.description
    write_images(tmp_path / "in", 1, size=(32, 44))  # a multiple of 4: the reference net keeps its size
    rep = translate_folder(net, tmp_path / "in", tmp_path / "out", TranslateOptions(workers=0), progress=False)
    assert rep.written == 1
    out = np.asarray(Image.open(tmp_path / "out" / "img_000.png"))
    x = torch.from_numpy(np.array(Image.open(tmp_path / "in" / "img_000.png"))).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        expected = ((ref.model(x)[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    assert out.shape == (32, 44, 3) and np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_side_by_side_sheet(run_dir, tmp_path):
    write_images(tmp_path / "in", 2, size=(32, 48))
    sheet = tmp_path / "sheet.png"
    r = run_test_py("--checkpoint", str(run_dir), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"),
                    "--side-by-side", str(sheet))
    assert r.returncode == 0, r.stderr
    img = Image.open(sheet)
    assert img.height == 2 * (192 + 4) + 4 and img.width > 2 * 288


def test_bad_checkpoint_and_device_messages(tmp_path):
    write_images(tmp_path / "in", 1)
    (tmp_path / "x.pt").write_bytes(b"nope")
    r = run_test_py("--checkpoint", str(tmp_path / "x.pt"), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"))
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr
    r = run_test_py("--checkpoint", str(tmp_path / "nothing"), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"))
    assert r.returncode == 2 and "checkpoint not found" in r.stderr
    torch.save({"a": 1}, tmp_path / "y.pt")
    r = run_test_py("--checkpoint", str(tmp_path / "y.pt"), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"))
    assert r.returncode == 2 and "neither a checkpoint of this project nor a reference" in r.stderr


def test_transparency_is_kept_where_the_format_has_it(run_dir, tmp_path):  # noqa: F811
    """A PNG cut-out stays a cut-out: the generator sees it on white, the output gets the input's alpha back
    (PNG, WebP, TIFF); a JPEG output is opaque, composited on white."""
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (24, 32, 4), dtype=np.uint8)
    rgba[:, :10, 3] = 0  # a transparent band on the left
    Image.fromarray(rgba, "RGBA").save(src / "cut.png")
    outs = {}
    for fmt in ("png", "webp", "jpg"):
        translate_folder(load_generator(run_dir)[0], src, tmp_path / fmt,
                         TranslateOptions(fmt=fmt, workers=0), progress=False)
        outs[fmt] = Image.open(tmp_path / fmt / f"cut.{fmt}")
    assert outs["png"].mode == "RGBA" and np.array_equal(np.asarray(outs["png"])[..., 3], rgba[..., 3])
    assert outs["webp"].mode == "RGBA"
    assert outs["jpg"].mode == "RGB"


def test_messages_go_above_the_progress_bar_never_glued_to_it(run_dir, tmp_path):
    """A single unreadable input used to print `0%| ... | 0/1 [00:00<?, ?img/s]error: ...` and the bar again:
    the bar is closed first and the message has a line of its own; a folder's skip warning too."""
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    r = run_test_py("--checkpoint", str(run_dir), "--input", str(tmp_path / "bad.png"), "--output", str(tmp_path / "o"),
                    "--workers", "0")
    assert r.returncode == 2
    lines = r.stderr.replace("\r", "\n").splitlines()
    errors = [line for line in lines if "error:" in line]
    assert errors and all(line.startswith("error: ") for line in errors), r.stderr
    after = r.stderr[r.stderr.index("error: "):]
    assert "img/s" not in after  # no bar drawn again after the message
    write_images(tmp_path / "folder", 1)
    (tmp_path / "folder" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    r = run_test_py("--checkpoint", str(run_dir), "--input", str(tmp_path / "folder"), "--output",
                    str(tmp_path / "o2"), "--workers", "0")
    assert r.returncode == 0
    warned = [line for line in r.stderr.replace("\r", "\n").splitlines() if "skipping unreadable image" in line]
    assert warned and all(line.startswith("warning: skipping") for line in warned), r.stderr
