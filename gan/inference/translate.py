"""Inference: load any generator, translate whole image sets (and videos, gan.inference.video) at full resolution.

    net, info = load_generator("runs/photo2monet", "AtoB")   # or a step file, latest_net_G.pth, .onnx, zoo:NAME
    translate_folder(net, "photos/", "out/", TranslateOptions(batch_size=8), runtime=Runtime.resolve())

Full resolution: the generator pads to a multiple of 4 and crops back, so the output has the input's size.
Same-size images are batched. An image above `max_pixels` (or above tile x tile pixels when `tile` is set) is
computed in bands with whole-image norm statistics (gan.inference.tiling), so memory is bounded and the result is the
untiled one; exported models, which cannot be run stage by stage, get overlapping blended tiles instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from gan import GanError, ImageDecodeError
from gan.cpus import worker_count
from gan.data.io import load_image, load_image_alpha
from gan.data.io import side_by_side as io_side_by_side
from gan.data.io import plan_outputs as data_plan_outputs
from gan.data.io import resize_short_side, resized_hw, to_chw, to_uint8, write_image
from gan.inference.engine import Engine
from gan.runtime import Runtime
from gan.inference.video import VIDEO_EXTENSIONS, VideoOptions, is_video, translate_video

log = logging.getLogger("gan")

# ---------------------------------------------------------------------------------- folder runs


@dataclass
class TranslateOptions:
    batch_size: int = 1
    tile: int = 0  # > 0: images above tile x tile pixels go in bands (or tiles) of that many pixels
    tile_overlap: int = 32  # blended tiles (exported models only)
    max_pixels: int = 4_000_000  # images above this many pixels go in bands of engine.AUTO_TILE^2 pixels
    cache_mb: int = 256  # band runs: stored activations in RAM up to this, beyond it in a temporary file
    resize: int | None = None  # short side, before translation
    fmt: str = "png"
    overwrite: bool = False
    workers: int = 2
    strength: float = 1.0  # 0 = the input, 1 = the model's output, above 1 exaggerates (engine.apply_strength)
    video: VideoOptions = field(default_factory=VideoOptions)  # videos and animated GIF/WebP (gan.inference.video)


@dataclass
class Report:
    written: int  # images and videos
    skipped: list[tuple[Path, str]]
    seconds: float
    videos: int = 0
    frames: int = 0


def plan_outputs(input_path: Path, output_dir: Path, fmt: str) -> list[tuple[Path, Path]]:
    """(source, destination) pairs for the images and videos under input_path (gan.data.io.plan_outputs, with its
    guards): images get the extension of `fmt`, videos (and animated GIF/WebP) keep their own."""
    return data_plan_outputs(input_path, output_dir, fmt, VIDEO_EXTENSIONS, keep_suffix=is_video)


class _Images(torch.utils.data.Dataset):
    """Decodes (and optionally resizes) in DataLoader workers into uint8 (C, H, W) tensors (a quarter of the
    float size to pass between processes and to the GPU), with the alpha channel of an image that has one
    (the RGB composited on white is what the generator sees); a failure comes back as its message."""

    def __init__(self, paths: list[Path], resize: int | None):
        self.paths, self.resize = paths, resize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            img, alpha = load_image_alpha(self.paths[i])
        except ImageDecodeError as e:
            return i, None, str(e), None
        alpha = None if alpha is None else resize_short_side(alpha, self.resize)
        return i, to_chw(resize_short_side(img, self.resize)), None, alpha


def _size_batches(paths: list[Path], batch_size: int, resize: int | None) -> list[list[int]]:
    """Group indices by image size (read from headers only) so each batch stacks without padding."""
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(paths):
        key: tuple = ("?", i)  # unreadable header: a batch of its own, the worker reports the error
        try:
            with Image.open(p) as img:
                w, h = img.size
                if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF orientations that swap axes
                    w, h = h, w
            key = resized_hw(h, w, resize)
        except Exception:
            pass
        groups.setdefault(key, []).append(i)
    batches = []
    for idx in groups.values():
        batches += [idx[k:k + batch_size] for k in range(0, len(idx), batch_size)]
    return batches


def _collate(items):
    return items


def translate_folder(net: nn.Module, input_path: str | Path, output_dir: str | Path,
                     opts: TranslateOptions | None = None, progress: bool = True, runtime: Runtime | None = None
                     ) -> Report:
    """Translate every image and video under input_path into output_dir (same relative paths). Nothing is
    written if any output exists already and opts.overwrite is off. In a folder, an unreadable file is skipped
    with a warning and counted; a single input file that cannot be read is an error. `runtime`: the entry
    point's policy (gan.runtime; default fp32 where the net is), which the engine prepares the net for."""
    opts = opts or TranslateOptions()
    opts.video.check()
    start = time.perf_counter()
    everything = plan_outputs(Path(input_path), Path(output_dir), opts.fmt)
    existing = [dst for _, dst in everything if dst.exists()]
    if existing and not opts.overwrite:
        shown = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise GanError(f"{len(existing)} output file(s) exist already ({shown}); nothing was written. "
                       "Pass --overwrite to replace them, or choose another --output.")
    _check_writable(Path(output_dir))
    single = len(everything) == 1 and Path(input_path).is_file()
    videos = [(s, d) for s, d in everything if is_video(s)]
    pairs = [(s, d) for s, d in everything if not is_video(s)]
    engine = Engine.for_options(net, opts, runtime)
    device = engine.device
    sources = [s for s, _ in pairs]
    loader = torch.utils.data.DataLoader(
        _Images(sources, opts.resize), batch_sampler=_size_batches(sources, opts.batch_size, opts.resize),
        num_workers=worker_count(opts.workers, "--workers"), collate_fn=_collate, pin_memory=device.type == "cuda",
    )
    skipped: list[tuple[Path, str]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pairs), unit="img", dynamic_ncols=True) if pairs else None
    try:
        written = _images(engine, loader, sources, pairs, single, skipped, bar)
    finally:  # the bar goes before any message about why it stopped: messages stay on lines of their own
        if bar is not None:
            bar.close()
    n_videos = frames = 0
    for i, (src, dst) in enumerate(videos):
        log.info("video %d/%d: %s -> %s (%s statistics)", i + 1, len(videos), src, dst, opts.video.stats)
        try:
            n = translate_video(engine, src, dst, _with_resize(opts.video, opts), progress)
        except GanError as e:
            if single:
                raise
            skipped.append((src, str(e)))
            log.warning("skipping %s", e)
            continue
        n_videos, frames, written = n_videos + 1, frames + n, written + 1
    return Report(written, skipped, time.perf_counter() - start, n_videos, frames)


def _images(engine: Engine, loader, sources: list[Path], pairs: list[tuple[Path, Path]], single: bool,
            skipped: list[tuple[Path, str]], bar) -> int:
    """The still images of a folder run: decoded by the loader's workers, translated, written by a thread."""
    written = 0
    with ThreadPoolExecutor(max_workers=2) as writer, torch.no_grad():
        pending = []
        for items in loader:
            good = [(i, t) for i, t, _, _ in items if t is not None]
            alphas = {i: a for i, _, _, a in items if a is not None}
            for i, _, err, _ in items:
                if err is not None and single:
                    raise GanError(err)
                if err is not None:
                    skipped.append((sources[i], err))
                    log.warning("skipping unreadable image %s", err)
            if good and engine.tile_for(*good[0][1].shape[-2:]):
                outs = []
                for i, t in good:
                    log.info("%s: %s", sources[i], engine.describe(*t.shape[-2:]))
                    with _fraction_bar(bar is not None, sources[i].name) as report:
                        outs.append(engine.image(t, report, as_uint8=True))
            elif good:
                outs = engine.batch([t for _, t in good])
            if good:
                for (i, _), out in zip(good, outs):
                    img = out if isinstance(out, np.ndarray) else to_uint8(out, inplace=True)
                    pending.append(writer.submit(write_image, img, pairs[i][1], alphas.get(i)))
                    written += 1
            if bar is not None:
                bar.update(len(items))
        for f in pending:
            f.result()
    return written


def _with_resize(video: VideoOptions, opts: TranslateOptions) -> VideoOptions:
    import dataclasses

    return dataclasses.replace(video, resize=opts.resize, batch_size=opts.batch_size)


def _check_writable(folder: Path) -> None:
    """The output folder exists (created) and takes files, or a GanError before any work is done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".gan-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise GanError(f"cannot write to the output folder {folder}: {e.strerror or e}") from None


@contextlib.contextmanager
def _fraction_bar(enabled: bool, name: str):
    """A second progress bar for one big image: percent of its work done, with the current pass and band."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=100, unit="%", desc=name, position=1, leave=False, dynamic_ncols=True,
               bar_format="{desc}{postfix}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")

    def report(fraction: float, what: str) -> None:
        bar.n = min(100.0, round(100 * fraction, 1))
        bar.set_postfix_str(what, refresh=False)
        bar.refresh()

    try:
        yield report
    finally:
        bar.close()


def side_by_side(pairs: list[tuple[Path, Path]], path: str | Path, height: int = 192, max_rows: int = 12) -> Path:
    """One PNG with a row per translated image: input | translation (gan.data.io.side_by_side)."""
    rows = [[load_image(src), load_image(dst)] for src, dst in pairs[:max_rows] if dst.exists()]
    if not rows:
        raise GanError("nothing to show side by side: no translated image")
    path = Path(path)
    write_image(io_side_by_side(rows, height), path)
    return path
