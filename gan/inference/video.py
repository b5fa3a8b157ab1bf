"""Videos in, videos out: decode, translate in batches and encode as a stream, audio copied as it is.

    translate_video(Engine(net, Runtime.resolve()), "clip.mp4", "out/clip.mp4", VideoOptions(stats="running"))

Containers mp4, m4v, mov, mkv, webm and avi go through PyAV (FFmpeg): frames are decoded one at a time, turned
upright when the file says they are stored rotated, translated in batches of `batch_size`, and encoded as they
come (H.264 in yuv420p by default, VP9 for webm; `codec`, `crf`), so memory holds a batch, never the clip. The
output keeps the frame count, the frame timing (each frame's timestamp), the size and the orientation; audio
packets are copied without re-encoding (the output has the input's container, so it takes the same codec).
Animated GIF and WebP go through Pillow (which keeps each frame's duration and the loop count) and come out in
their own format; these formats are small, and Pillow assembles their frames in memory.

Norm statistics across frames (gan.inference.normstats), `stats`:
    frame     each frame its own statistics (what training did; the default): a global brightness change of
              the input is normalised away, but the colours can pump when the content changes a lot
    running   a moving average of the statistics over the frames so far (momentum 0.9: about ten frames),
              which follows slow changes: one pass, the same cost as `frame`
    clip      the pooled statistics of `clip_frames` frames spread over the clip, then fixed for every
              frame: the steadiest, at the cost of decoding the clip twice
Then `smooth` (0.7 by default; 0 = off) blends each output with the previous one moved along the optical flow of
the input, where that motion explains the input (gan.inference.temporal): the generator's strokes stop crawling and
shimmering from frame to frame, and objects entering, occlusions and scene cuts are left as translated.
Frames go through the inference engine (gan.inference.engine) like images: its device, precision, channels-last layout
and band policy, so a frame above `--max-megapixels` (or `--tile`) is computed in bands with the whole frame's
statistics instead of running out of memory (the `running`/`clip` modes then give way to each frame's own).
A file is written under a temporary name and renamed when complete: a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gan import GanError, ImageDecodeError
from gan.data.io import (is_animated, read_animation, resize_short_side, resize_to, resized_hw, to_chw,
                        to_uint8, write_animation)
from gan.inference.engine import Engine
from gan.inference.normstats import NormStats
from gan.inference.temporal import TemporalSmoother

log = logging.getLogger("gan")

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
ANIMATED_EXTENSIONS = (".gif", ".webp")  # videos when they hold more than one frame
STATS_MODES = ("frame", "running", "clip")
CODECS = {"h264": "libx264", "h265": "libx265", "vp9": "libvpx-vp9"}
DEFAULT_CRF = {"h264": 18, "h265": 22, "vp9": 30}
CONTAINER_CODECS = {".webm": ("vp9",), ".avi": ("h264",)}  # others take all of CODECS
SMOOTH_DEFAULT = 0.7  # benchmarks/video.py: 2.5x less flicker than none, 0.9x the frames/s (README, "Videos")


@dataclass(frozen=True)
class VideoOptions:
    stats: str = "frame"  # frame | running | clip (benchmarks/video.py: frame measured best, see README)
    smooth: float = SMOOTH_DEFAULT  # temporal smoothing strength along the motion (gan.inference.temporal); 0 = off
    momentum: float = 0.9  # running: weight of the past
    clip_frames: int = 16  # clip: frames sampled for the statistics
    codec: str | None = None  # h264 | h265 | vp9; default h264 (vp9 for webm)
    crf: int | None = None  # quality (lower is better); default per codec
    batch_size: int = 1
    resize: int | None = None  # short side, before translation

    def check(self) -> None:
        if self.stats not in STATS_MODES:
            raise GanError(f"--video-stats must be one of {', '.join(STATS_MODES)}, got {self.stats!r}")
        if not 0 <= self.smooth < 1:
            raise GanError(f"--video-smooth must be in [0, 1) (0 = off), got {self.smooth}")
        if not 0 <= self.momentum < 1:
            raise GanError(f"--video-momentum must be in [0, 1), got {self.momentum}")
        if self.clip_frames < 1:
            raise GanError("--clip-frames must be >= 1")
        if self.codec is not None and self.codec not in CODECS:
            raise GanError(f"--video-codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise GanError(f"--crf must be in 0..63 (lower is better), got {self.crf}")


def is_video(path: Path) -> bool:
    ext = Path(path).suffix.lower()
    return ext in VIDEO_EXTENSIONS or (ext in ANIMATED_EXTENSIONS and is_animated(Path(path)))


def clip_info(path: str | Path) -> tuple[int, float, int, int]:
    """(frames, seconds, width, height) of a video file, read from its headers (frames counted from the packets
    when the header does not say), or a GanError when it is not a readable video."""
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        frames = _frame_count(stream)
        if not frames:
            frames = sum(1 for packet in container.demux(stream) if packet.size)
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / 1e6
        else:
            seconds = frames / float(stream.average_rate or 25)
        return frames, seconds, stream.codec_context.width, stream.codec_context.height
    except GanError:
        raise
    except Exception as e:
        raise GanError(f"{path}: cannot read it as a video ({_reason(e)})") from None
    finally:
        container.close()


def codec_for(dst: Path, opts: VideoOptions) -> str:
    """The codec name (a key of CODECS) for an output file, or a GanError when its container refuses it."""
    ext = dst.suffix.lower()
    allowed = CONTAINER_CODECS.get(ext, tuple(CODECS))
    codec = opts.codec or allowed[0]
    if ext in VIDEO_EXTENSIONS and codec not in allowed:
        raise GanError(f"{dst.name}: a {ext} file cannot hold {codec} video (it takes: {', '.join(allowed)}); "
                       "choose another --video-codec")
    return codec


# ----------------------------------------------------------------------------------------- frames


class FrameTranslator:
    """Frames (uint8 HWC) -> translated frames (uint8 HWC), in batches, with the norm statistics of `mode`
    (frame | running | clip, see the module docstring), then smoothed along the motion (gan.inference.temporal).
    `translate(frames)` takes consecutive frames in display order (the smoothing carries over from one call to
    the next); `gather(frames)` feeds clip mode's statistics (then `fix()`)."""

    def __init__(self, engine: Engine, opts: VideoOptions):
        self.engine, self.opts = engine, opts
        net = engine.net
        self.stats = NormStats(net, opts.momentum) if isinstance(net, torch.nn.Module) else None
        self.mode = opts.stats
        if self.mode != "frame" and not (self.stats and len(self.stats)):
            if self.stats is None:  # an exported model: no hooks possible
                log.warning("--video-stats %s needs the model's norm layers; an exported model runs frame by "
                            "frame (translate with its checkpoint for steady statistics)", self.mode)
            self.mode = "frame"
        self.smoother = TemporalSmoother(opts.smooth) if opts.smooth > 0 else None
        self._said_bands = False

    def _run(self, frames: list[np.ndarray], mode: str) -> list[torch.Tensor]:
        h, w = frames[0].shape[:2]
        if self.engine.tile_for(h, w):  # a frame too big for one pass: in bands, each with its own statistics
            if not self._said_bands:
                self._said_bands = True
                log.info("frames of %s", self.engine.describe(h, w))
            return [self.engine.image(to_chw(f)) for f in frames]
        hook = self.stats.applied({"frame": "own", "running": "running", "clip": "fixed", "gather": "pooled"}[mode]
                                  ) if self.stats is not None else contextlib.nullcontext()
        with hook:
            return self.engine.batch([to_chw(f) for f in frames])

    def gather(self, frames: list[np.ndarray]) -> None:
        self._run([resize_short_side(f, self.opts.resize) for f in frames], "gather")

    def fix(self) -> None:
        self.stats.freeze_all()

    def size_is(self, width: int, height: int, name: str) -> None:
        """The frames' size, known before the first: frames that go in bands take their own statistics."""
        if self.mode != "frame" and self.engine.tile_for(height, width):
            log.info("%s: frames above the size limit go in bands, each with its own statistics (not %s ones)",
                     name, self.mode)
            self.mode = "frame"

    def translate(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        frames = [resize_short_side(f, self.opts.resize) for f in frames]
        outs = [to_uint8(t, inplace=True) for t in self._run(frames, self.mode)]
        if self.smoother is not None:
            outs = [self.smoother(f, o) for f, o in zip(frames, outs)]
        return outs


def _upright(frame) -> np.ndarray:
    """A decoded frame as uint8 RGB, rotated the way the file says it is displayed."""
    img = frame.to_ndarray(format="rgb24")
    k = round((getattr(frame, "rotation", 0) or 0) / 90) % 4  # counter-clockwise quarter turns
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


# ------------------------------------------------------------------------------------------ PyAV


def _open(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise GanError(f"{path}: cannot read it as a video ({_reason(e)})") from None
    if not container.streams.video:
        container.close()
        raise GanError(f"{path}: has no video stream")
    return container


def _reason(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _frame_count(stream) -> int:
    """Frames in a stream, from the header or estimated from duration and rate (0 when unknown)."""
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.time_base and stream.average_rate:
        return int(round(float(stream.duration * stream.time_base * stream.average_rate)))
    return 0


def _video_frames(container):
    """(frame, decoded upright RGB) for every frame of the first video stream."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    for frame in container.decode(stream):
        yield frame, _upright(frame)


def _gather_clip(path: Path, ft: FrameTranslator) -> int:
    """Clip mode's first pass: pooled statistics of up to clip_frames frames spread over the clip."""
    container = _open(path)
    try:
        total = _frame_count(container.streams.video[0])
        step = max(1, total // ft.opts.clip_frames) if total else 1
        used = 0
        for i, (_, img) in enumerate(_video_frames(container)):
            if i % step == 0 and used < ft.opts.clip_frames:
                ft.gather([img])
                used += 1
            if used >= ft.opts.clip_frames and not total:
                break
    finally:
        container.close()
    if used == 0:
        raise GanError(f"{path}: no frame could be decoded")
    ft.fix()
    return used


def _encode_stream(output, codec: str, crf: int, in_stream, width: int, height: int):
    stream = output.add_stream(CODECS[codec], rate=in_stream.average_rate or in_stream.guessed_rate or 25)
    stream.width, stream.height = width, height
    # 4:2:0 needs even sizes; odd ones are kept exactly in 4:4:4 (fewer players show it).
    stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    stream.time_base = in_stream.time_base  # every frame keeps its own timestamp
    options = {"crf": str(crf)}
    if codec == "vp9":
        options.update({"b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"})
    else:
        options["preset"] = "medium"
    stream.options = options
    return stream


def translate_video(engine: Engine, src: str | Path, dst: str | Path, opts: VideoOptions,
                    progress: bool = True) -> int:
    """Translate one video file (or animated GIF/WebP) into dst through `engine` (its device, precision,
    memory layout and band policy: frames above its limit go in bands). Returns the frames written. GanError
    with one clear message when the input cannot be read or the output cannot be written; nothing is left at
    dst then."""
    opts.check()
    src, dst = Path(src), Path(dst)
    ft = FrameTranslator(engine, opts)
    if src.suffix.lower() in ANIMATED_EXTENSIONS:
        return _translate_animated(src, dst, ft, progress)
    codec = codec_for(dst, opts)
    crf = opts.crf if opts.crf is not None else DEFAULT_CRF[codec]
    width, height = _first_frame_size(src, opts.resize)
    ft.size_is(width, height, src.name)
    if ft.mode == "clip":
        used = _gather_clip(src, ft)
        log.info("%s: clip statistics from %d frames", src.name, used)
    tmp = dst.with_name(f".{dst.stem}.part{dst.suffix}")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        return _transcode(src, tmp, dst, ft, codec, crf, (width, height), progress)
    except GanError:
        raise
    except Exception as e:  # FFmpeg and I/O errors: one message, nothing half-written left
        raise GanError(f"{src}: video translation failed ({type(e).__name__}: {_reason(e)}); nothing was written "
                       f"to {dst}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _first_frame_size(path: Path, resize: int | None) -> tuple[int, int]:
    """(width, height) of the translated frames: the first frame's, upright and resized. Also the check that
    the file decodes at all."""
    container = _open(path)
    try:
        frame = next(container.decode(container.streams.video[0]), None)
    except (Exception,) as e:  # FFmpeg's decode errors
        raise GanError(f"{path}: cannot decode its video ({_reason(e)})") from None
    finally:
        container.close()
    if frame is None:
        raise GanError(f"{path}: no frame could be decoded")
    h, w = _upright(frame).shape[:2]
    h, w = resized_hw(h, w, resize)
    return w, h


def _transcode(src: Path, tmp: Path, dst: Path, ft: FrameTranslator, codec: str, crf: int, size: tuple[int, int],
               progress: bool) -> int:
    import av

    container = _open(src)
    in_video = container.streams.video[0]
    in_video.thread_type = "AUTO"
    in_audio = container.streams.audio[0] if container.streams.audio else None
    total = _frame_count(in_video)
    try:
        output = av.open(str(tmp), "w")
    except (av.error.FFmpegError, OSError) as e:
        container.close()
        raise GanError(f"cannot write {dst}: {_reason(e)}") from None
    bar = None
    written = 0
    pending: list = []  # (pts, image) of the current batch

    def flush_batch() -> None:
        nonlocal written
        if not pending:
            return
        outs = ft.translate([img for _, img in pending])
        for (pts, _), img in zip(pending, outs):
            img = resize_to(img, (size[1], size[0]))  # (a frame whose size changed mid-stream)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = pts, in_video.time_base
            for packet in out_video.encode(frame):
                output.mux(packet)
            written += 1
        if bar is not None:
            bar.update(len(pending))
        pending.clear()

    try:
        # Every output stream exists before the first packet is written (the header goes out with it).
        out_video = _encode_stream(output, codec, crf, in_video, *size)
        out_audio = output.add_stream_from_template(in_audio) if in_audio is not None else None
        bar = _bar(total, src.name) if progress else None
        streams = [in_video] + ([in_audio] if in_audio is not None else [])
        last_pts = -1
        for packet in container.demux(streams):
            if packet.stream.type == "audio":
                if packet.dts is not None:  # (the demuxer's final empty packet has none)
                    packet.stream = out_audio
                    output.mux(packet)
                continue
            for frame in packet.decode():
                pts = frame.pts if frame.pts is not None and frame.pts > last_pts else last_pts + 1
                last_pts = pts
                pending.append((pts, _upright(frame)))
                if len(pending) >= ft.opts.batch_size:
                    flush_batch()
        flush_batch()  # (the decoder was flushed by demux's final empty packet)
        if written == 0:
            raise GanError(f"{src}: no frame could be decoded")
        for packet in out_video.encode():
            output.mux(packet)
    finally:
        if bar is not None:
            bar.close()
        output.close()
        container.close()
    tmp.replace(dst)
    return written


def _bar(total: int, name: str):
    from tqdm import tqdm

    return tqdm(total=total or None, unit="frame", desc=name, position=1, leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------------- animated images


def _translate_animated(src: Path, dst: Path, ft: FrameTranslator, progress: bool) -> int:
    """Animated GIF/WebP (read and written by gan.data.io): same format, per-frame durations and loop count kept."""
    try:
        n, loop, (h, w), frames = read_animation(src)
        w, h = resized_hw(h, w, ft.opts.resize)[::-1]
        ft.size_is(w, h, src.name)
        if ft.mode == "clip":
            step = max(1, n // ft.opts.clip_frames)
            for i, (f, _) in enumerate(frames()):
                if i % step == 0:
                    ft.gather([f])
            ft.fix()
        bar = _bar(n, src.name) if progress else None
        outs, durations = [], []
        for f, duration in frames():
            outs.append(ft.translate([f])[0])
            durations.append(duration)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    except ImageDecodeError as e:
        raise GanError(str(e)) from None
    write_animation(outs, durations, loop, dst)
    return len(outs)
