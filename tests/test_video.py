"""Videos through test.py / gan.inference.video: streams kept, statistics modes, broken inputs and outputs."""

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan import GanError
from gan.inference.engine import Engine
from gan.nn.networks import ResnetGenerator
from gan.inference.video import VideoOptions, translate_video
from tests.helpers import HANG_GUARD, write_images

av = pytest.importorskip("av")
ROOT = Path(__file__).resolve().parents[1]


def run_test_py(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "test.py"), *map(str, args)], capture_output=True, text=True,
                          timeout=HANG_GUARD, env=env, cwd=ROOT)


def write_video(path: Path, frames: list[np.ndarray], fps=Fraction(25), audio_s: float | None = 1.0,
                rotation: int = 0, codec="libx264", crf=10) -> None:
    container = av.open(str(path), "w")
    h, w = frames[0].shape[:2]
    v = container.add_stream(codec, rate=fps)
    v.width, v.height, v.pix_fmt = w, h, "yuv420p"
    v.options = {"crf": str(crf)}
    if rotation:
        v.set_display_rotation(rotation)
    a = None
    if audio_s:
        a = container.add_stream("aac", rate=16000)
        a.layout = "mono"
    for img in frames:
        for packet in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    if a is not None:
        t = np.arange(int(16000 * audio_s)) / 16000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, i: i + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i
            for packet in a.encode(frame):
                container.mux(packet)
        for packet in a.encode():
            container.mux(packet)
    for packet in v.encode():
        container.mux(packet)
    container.close()


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [f for f in c.decode(v)]
        out = {"frames": len(frames), "rate": v.average_rate, "size": (frames[0].width, frames[0].height),
               "pts": [f.pts * v.time_base for f in frames], "rotation": frames[0].rotation}
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            samples = sum(f.samples for f in c.decode(a))
            out["audio"] = (a.codec_context.name, samples / a.codec_context.sample_rate)
    return out


def read_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.float64)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, ngf=8, n_blocks=1)
    path = tmp_path_factory.mktemp("model") / "latest_net_G.pth"  # a reference-layout generator file
    torch.save(net.state_dict(), path)
    return path


def moving_square(n=12, h=48, w=64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    background = np.asarray(Image.fromarray(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)).resize(
        (w, h), Image.BILINEAR))
    frames = []
    for i in range(n):
        img = background.copy()
        x = 2 + i * (w // 2 - 8) // n
        img[4:20, x: x + 12] = (255, 255, 40)  # a bright object crossing the top left
        frames.append(img)
    return frames


def test_video_round_trip_keeps_frames_rate_size_audio_and_orientation(ckpt, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_video(src / "clip.mp4", moving_square(), fps=Fraction(30000, 1001))
    write_video(src / "phone.mov", moving_square(6), rotation=90, audio_s=None)
    r = run_test_py("--checkpoint", ckpt, "--input", src, "--output", tmp_path / "out", "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    assert "translated 2 video(s), 18 frames" in r.stderr
    a, b = probe(src / "clip.mp4"), probe(tmp_path / "out" / "clip.mp4")
    assert b["frames"] == a["frames"] == 12 and b["rate"] == a["rate"] and b["size"] == a["size"] == (64, 48)
    assert b["pts"] == a["pts"]  # every frame keeps its time
    assert b["audio"][0] == "aac" and b["audio"][1] == pytest.approx(a["audio"][1], abs=0.05)
    # A phone clip stored sideways (display rotation) comes out upright, displayed the same way.
    ra, rb = probe(src / "phone.mov"), probe(tmp_path / "out" / "phone.mov")
    assert ra["rotation"] != 0 and ra["size"] == (64, 48)
    assert rb["rotation"] == 0 and rb["size"] == (48, 64) and rb["frames"] == 6 and "audio" not in rb
    assert not list((tmp_path / "out").glob(".*part*"))


def test_folders_mix_images_and_videos_and_animated_gifs(ckpt, tmp_path):
    src = tmp_path / "in"
    write_images(src, 1, size=(40, 48))
    (src / "sub").mkdir()
    write_video(src / "sub" / "clip.mkv", moving_square(5), audio_s=0.5)
    frames = [Image.fromarray(f) for f in moving_square(4)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=[40, 80, 120, 160], loop=0)
    frames[0].save(src / "still.gif")
    out = tmp_path / "out"
    r = run_test_py("--checkpoint", ckpt, "--input", src, "--output", out, "--precision", "fp32",
                    "--side-by-side", tmp_path / "sheet.png", "--video-stats", "clip", "--clip-frames", "2",
                    "--video-smooth", "0.5", "--video-codec", "h265", "--crf", "30")
    assert r.returncode == 0, r.stderr
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == ["anim.gif", "img_000.png", "still.png", "sub/clip.mkv"]
    with Image.open(out / "anim.gif") as g:
        assert g.n_frames == 4 and g.size == (64, 48)
        durations = []
        for k in range(g.n_frames):
            g.seek(k)
            durations.append(g.info["duration"])
        assert durations == [40, 80, 120, 160]
    assert probe(out / "sub" / "clip.mkv")["frames"] == 5
    with av.open(str(out / "sub" / "clip.mkv")) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
    assert "clip statistics from 2 frames" in r.stderr
    assert Image.open(tmp_path / "sheet.png").height == 2 * (192 + 4) + 4  # the two stills, not the videos


def static_region_change(frames: np.ndarray) -> float:
    """Mean frame-to-frame change where the scene does not move (below the object's path)."""
    return float(np.abs(np.diff(frames[:, 28:, :], axis=0)).mean())


def test_clip_and_running_statistics_and_smoothing_reduce_flicker(ckpt, tmp_path):
    from gan.inference.load import load_generator

    write_video(tmp_path / "clip.mp4", moving_square(16), audio_s=None, crf=0)
    net, _ = load_generator(ckpt, "AtoB")
    change = {}
    for name, opts in {"frame": VideoOptions(smooth=0), "running": VideoOptions(stats="running", smooth=0),
                       "clip": VideoOptions(stats="clip", smooth=0), "smooth": VideoOptions()}.items():
        out = tmp_path / f"{name}.mp4"
        n = translate_video(Engine(net), tmp_path / "clip.mp4", out, VideoOptions(**{**opts.__dict__, "crf": 0}),
                            progress=False)
        assert n == 16
        change[name] = static_region_change(read_frames(out))
    # Per-frame statistics follow the moving object and repaint the static background; the clip's fixed
    # statistics leave it alone; the running average is in between. Smoothing (the default, with per-frame
    # statistics) carries the previous output over where the input did not change: it damps the repainting (a
    # steady drift, which a recursive average only delays; tests/test_temporal.py pins the shimmer it removes).
    assert change["clip"] < 0.5 * change["frame"]
    assert change["running"] < 0.8 * change["frame"]
    assert change["smooth"] < 0.8 * change["frame"]
    with pytest.raises(GanError, match=r"--video-smooth must be in \[0, 1\)"):
        VideoOptions(smooth=1.0).check()


def test_broken_videos_and_unwritable_outputs(ckpt, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    r = run_test_py("--checkpoint", ckpt, "--input", src / "broken.mp4", "--output", tmp_path / "out")
    assert r.returncode == 2 and "broken.mp4" in r.stderr and "Traceback" not in r.stderr
    assert not any((tmp_path / "out").rglob("*"))  # nothing, not even a partial file
    # In a folder, a broken video is skipped with a warning and counted; the rest is translated.
    write_video(src / "good.mp4", moving_square(3), audio_s=None)
    r = run_test_py("--checkpoint", ckpt, "--input", src, "--output", tmp_path / "out2")
    assert r.returncode == 0 and "skipping" in r.stderr and "skipped 1 unreadable file" in r.stderr
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["good.mp4"]
    # An output folder that cannot be created: one message, before any work.
    (tmp_path / "taken").write_text("a file where the output folder should be")
    r = run_test_py("--checkpoint", ckpt, "--input", src / "good.mp4", "--output", tmp_path / "taken" / "out")
    assert r.returncode == 2 and "cannot write to the output folder" in r.stderr and "Traceback" not in r.stderr
    # A smoothing strength out of range: one message, nothing written.
    r = run_test_py("--checkpoint", ckpt, "--input", src / "good.mp4", "--output", tmp_path / "out3",
                    "--video-smooth", "1.5")
    assert r.returncode == 2 and "--video-smooth must be in [0, 1)" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out3").exists()
    # A codec the container cannot hold.
    with pytest.raises(GanError, match="cannot hold h264"):
        from gan.inference.video import codec_for

        codec_for(tmp_path / "x.webm", VideoOptions(codec="h264"))


def test_video_encoding_failure_leaves_nothing(ckpt, tmp_path, monkeypatch):
    from gan.inference import video
    from gan.inference.load import load_generator

    write_video(tmp_path / "clip.mp4", moving_square(4), audio_s=None)
    net, _ = load_generator(ckpt, "AtoB")

    def broken(self, frames):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(video.FrameTranslator, "translate", broken)
    with pytest.raises(GanError, match="No space left on device"):
        translate_video(Engine(net), tmp_path / "clip.mp4", tmp_path / "out" / "clip.mp4", VideoOptions(),
                        progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_frames_above_the_size_limit_go_in_bands(ckpt, tmp_path, caplog):
    """A clip whose frames are above --max-megapixels is translated in bands (the frame's own statistics), as
    big images are, instead of running out of memory: the same frames as in one pass."""
    import logging

    from gan.inference.load import load_generator

    write_video(tmp_path / "clip.mp4", moving_square(4), audio_s=None, crf=0)
    net, _ = load_generator(ckpt, "AtoB")
    opts = VideoOptions(smooth=0, crf=0)
    whole = translate_video(Engine(net), tmp_path / "clip.mp4", tmp_path / "whole.mp4", opts, progress=False)
    with caplog.at_level(logging.INFO, logger="gan"):
        banded = translate_video(Engine(net, max_pixels=500), tmp_path / "clip.mp4", tmp_path / "bands.mp4",
                                 VideoOptions(stats="clip", smooth=0, crf=0), progress=False)
    assert whole == banded == 4
    assert "computed in bands" in caplog.text and "each with its own statistics (not clip ones)" in caplog.text
    assert "clip statistics from" not in caplog.text
    a, b = read_frames(tmp_path / "whole.mp4").astype(float), read_frames(tmp_path / "bands.mp4").astype(float)
    assert a.shape == b.shape and np.abs(a - b).mean() < 1.0
