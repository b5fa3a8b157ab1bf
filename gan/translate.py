"""Inference: load any generator, translate whole image sets at full resolution, batched or tiled.

    net, info = checkpoint.load_generator("runs/photo2monet", "AtoB")   # or a step file, latest_net_G.pth, .onnx
    translate_folder(net, "photos/", "out/", TranslateOptions(batch_size=8))

Full resolution: the generator pads to a multiple of 4 and crops back, so the output has the input's size.

Tiling (`tile` > 0, or automatic above the memory budget) runs the generator on overlapping tiles and blends
them with a smooth window, so memory is bounded by the tile. Instance norm normalises each feature map by
its whole-image mean/variance; a tile alone would see its own statistics and come out in a different tint.
So every InstanceNorm layer is given whole-image statistics while tiling:
    tile_stats="exact"      gathered layer by layer, one pass over the tiles per norm layer: the same
                            statistics as an untiled run (costs about (norm layers / 2) extra passes)
    tile_stats="downscale"  measured once on the image shrunk to `stats_size` px (long side; default: the tile
                            size, so memory stays bounded by the tile): one cheap extra pass; exact when the
                            image fits in stats_size, an approximation above
                            (a net's feature statistics change with scale), still far better than per-tile
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from gan import GanError, ImageDecodeError
from gan.data import IMAGE_EXTENSIONS, find_images, load_image, normalize_uint8, to_chw, to_uint8

log = logging.getLogger("gan")

FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF"}


# ------------------------------------------------------------------------------- tiled inference


class _NormStats:
    """Forward hooks on every InstanceNorm2d: `record` whole-map mean/var, or `fixed` ones to apply."""

    def __init__(self, net: nn.Module):
        self.norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
        self.fixed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.mode = "off"
        self.target: int | None = None  # exact mode: the layer whose statistics are being gathered
        self.region: tuple[int, int, int, int] | None = None  # core region in input pixels (y0, y1, x0, x1)
        self.input_hw: tuple[int, int] = (1, 1)
        self.acc: list[torch.Tensor] | None = None
        self.handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.norms)]

    def close(self) -> None:
        for h in self.handles:
            h.remove()

    def _hook(self, i: int):
        def hook(module, inputs, output):
            x = inputs[0]
            if self.mode == "record":
                self.fixed[i] = (x.float().mean((2, 3), keepdim=True), x.float().var((2, 3), unbiased=False,
                                                                                     keepdim=True))
                return output
            if self.mode == "gather" and i == self.target:
                # Sum over this tile's core region only, mapped to this layer's resolution.
                sy, sx = x.shape[2] / self.input_hw[0], x.shape[3] / self.input_hw[1]
                y0, y1, x0, x1 = self.region
                core = x[:, :, round(y0 * sy): round(y1 * sy), round(x0 * sx): round(x1 * sx)].double()
                s = torch.stack([core.sum((0, 2, 3)), (core * core).sum((0, 2, 3))])
                n = torch.tensor(core.shape[2] * core.shape[3], dtype=torch.float64)
                self.acc = [s, n] if self.acc is None else [self.acc[0] + s, self.acc[1] + n]
                raise _StopForward
            if self.mode in ("fixed", "gather") and i in self.fixed:
                mean, var = self.fixed[i]
                return ((x.float() - mean) / torch.sqrt(var + module.eps)).to(x.dtype)
            return output

        return hook


class _StopForward(Exception):
    pass


def _tile_starts(size: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Tiles along one axis as (start, end, core_start, core_end): cores partition [0, size) exactly,
    each tile is its core plus up to `overlap` on each side. All multiples of 4 when inputs are."""
    if size <= tile:
        return [(0, size, 0, size)]
    core = tile - 2 * overlap
    n = math.ceil(size / core)
    cuts = [min(size, round(i * size / n / 4) * 4) for i in range(n + 1)]
    cuts[-1] = size
    out = []
    for c0, c1 in zip(cuts[:-1], cuts[1:]):
        out.append((max(0, c0 - overlap), min(size, c1 + overlap), c0, c1))
    return out


def _window(length: int, lead: int, trail: int) -> torch.Tensor:
    """1-D blending weights: raised-cosine ramps over the overlaps, 1 elsewhere (never exactly 0)."""
    w = torch.ones(length, dtype=torch.float32)
    for n, flip in ((lead, False), (trail, True)):
        if n > 0:
            ramp = 0.5 - 0.5 * torch.cos(torch.linspace(0, math.pi, 2 * n + 2)[1:n * 2 + 1:2])  # (0, 1)
            if flip:
                w[-n:] = torch.minimum(w[-n:], ramp.flip(0))
            else:
                w[:n] = torch.minimum(w[:n], ramp)
    return w


@torch.no_grad()
def translate_tiled(net: nn.Module, x: torch.Tensor, tile: int, overlap: int, stats: str = "exact",
                    stats_size: int | None = None, autocast=None, device: torch.device | None = None) -> torch.Tensor:
    """x (1, C, H, W), uint8 or float in [-1, 1], on the CPU -> (1, C', H, W) float on the CPU, computed tile
    by tile on `device`. Memory: the image as given, one float accumulator of the output, and one tile's
    activations; a uint8 input is converted tile by tile."""
    autocast = autocast or contextlib.nullcontext
    device = device or net_device(net)
    h, w = x.shape[-2:]
    tile = max(16, tile // 4 * 4)
    overlap = min(max(0, overlap // 4 * 4), (tile - 8) // 2)
    pad_h, pad_w = (-h) % 4, (-w) % 4
    if pad_h or pad_w:  # the tile grid works in multiples of 4 (the generator's two stride-2 stages)
        mode = "reflect" if pad_h < h and pad_w < w else "edge"
        x = torch.from_numpy(np.pad(x.cpu().numpy(), ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode=mode))
    hp, wp = x.shape[-2:]
    ys, xs = _tile_starts(hp, tile, overlap), _tile_starts(wp, tile, overlap)

    def crop(y0, y1, x0, x1) -> torch.Tensor:
        t = x[:, :, y0:y1, x0:x1].to(device)
        return normalize_uint8(t) if t.dtype == torch.uint8 else t.float()

    hooks = _NormStats(net)
    try:
        if hooks.norms:
            if stats == "downscale":
                # At most tile-sized by default, so the extra pass needs no more memory than a tile.
                s = min(1.0, (stats_size or tile) / max(hp, wp))
                hooks.mode = "record"
                with autocast():
                    net(_shrink(x, s).to(device) if s < 1 else crop(0, hp, 0, wp))
            elif stats == "exact":
                hooks.mode = "gather"
                for i in range(len(hooks.norms)):
                    hooks.target, hooks.acc = i, None
                    for y0, y1, cy0, cy1 in ys:
                        for x0, x1, cx0, cx1 in xs:
                            hooks.input_hw = (y1 - y0, x1 - x0)
                            hooks.region = (cy0 - y0, cy1 - y0, cx0 - x0, cx1 - x0)
                            try:
                                with autocast():
                                    net(crop(y0, y1, x0, x1))
                            except _StopForward:
                                pass
                    s, n = hooks.acc
                    mean = s[0] / n
                    var = (s[1] / n - mean * mean).clamp_min(0)
                    hooks.fixed[i] = (mean.float().view(1, -1, 1, 1).to(device),
                                      var.float().view(1, -1, 1, 1).to(device))
            else:
                raise ValueError(f"tile_stats must be exact or downscale, got {stats!r}")
        hooks.mode = "fixed"
        out = None
        # The window is separable and the tiles form a grid, so the sum of weights at (y, x) is
        # sum_y(y) * sum_x(x): two vectors instead of a full-size weight image.
        win_y = [_window(y1 - y0, cy0 - y0, y1 - cy1) for y0, y1, cy0, cy1 in ys]
        win_x = [_window(x1 - x0, cx0 - x0, x1 - cx1) for x0, x1, cx0, cx1 in xs]
        sum_y, sum_x = torch.zeros(hp), torch.zeros(wp)
        for (y0, y1, _, _), wy in zip(ys, win_y):
            sum_y[y0:y1] += wy
        for (x0, x1, _, _), wx in zip(xs, win_x):
            sum_x[x0:x1] += wx
        for (y0, y1, _, _), wy in zip(ys, win_y):
            for (x0, x1, _, _), wx in zip(xs, win_x):
                with autocast():
                    y = net(crop(y0, y1, x0, x1)).float().cpu()
                if out is None:
                    out = torch.zeros(1, y.shape[1], hp, wp)
                out[:, :, y0:y1, x0:x1] += y * (wy[:, None] * wx[None, :])
    finally:
        hooks.close()
    out.div_(sum_y[:, None]).div_(sum_x[None, :])
    return out[..., :h, :w]


def _shrink(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Area-downscale a (1, C, H, W) uint8 or float image; returns float in [-1, 1]."""
    import cv2

    h, w = x.shape[-2:]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = x[0].permute(1, 2, 0).cpu()
    # In float, so a uint8 image gives the same statistics as its float version (no rounding when shrinking).
    img = (normalize_uint8(img) if img.dtype == torch.uint8 else img.float()).numpy()
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    if small.ndim == 2:
        small = small[..., None]
    return torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)))[None]


def net_device(net) -> torch.device:
    """Where a generator's weights are (the CPU for parameterless callables such as OnnxGenerator)."""
    params = net.parameters() if isinstance(net, nn.Module) else iter(())
    return next((p.device for p in params), torch.device("cpu"))


# ---------------------------------------------------------------------------------- folder runs


def inference_precision(requested: str, device: torch.device) -> str:
    """`auto`: bf16 autocast where the hardware runs it natively (CUDA with bf16, else fp16; CPUs with AMX or
    AVX512-BF16, about 2.5x faster than fp32 there), fp32 elsewhere. Output differences are below one
    8-bit level on average."""
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    cpu = getattr(torch, "cpu", None)
    native = any(getattr(cpu, f, lambda: False)() for f in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return "bf16" if native else "fp32"


@dataclass
class TranslateOptions:
    batch_size: int = 1
    tile: int = 0  # 0 = only when the image would exceed max_pixels untiled
    tile_overlap: int = 32
    tile_stats: str = "exact"
    stats_size: int | None = None  # downscale statistics: long side in px (default: the tile size)
    max_pixels: int = 4_000_000  # untiled above this many pixels (memory budget); tiles of 512 then
    resize: int | None = None  # short side, before translation
    fmt: str = "png"
    overwrite: bool = False
    workers: int = 2
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 needs CUDA) | auto (see inference_precision)


@dataclass
class Report:
    written: int
    skipped: list[tuple[Path, str]]
    seconds: float


def plan_outputs(input_path: Path, output_dir: Path, fmt: str) -> list[tuple[Path, Path]]:
    """(source, destination) pairs: same relative paths under output_dir, extension from `fmt`. Files already
    under output_dir (when it lies inside the input) are not inputs; two inputs that would map to one output
    keep their original extension in the name."""
    if fmt not in FORMATS:
        raise GanError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    input_path, output_dir = Path(input_path), Path(output_dir)
    if not input_path.exists():
        raise GanError(f"input not found: {input_path}")
    out_abs = output_dir.resolve()
    sources = [p for p in find_images(input_path) if not p.resolve().is_relative_to(out_abs)]
    if not sources:
        raise GanError(f"no image files in {input_path} (looked for {', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)}"
                       ", recursively; hidden files are skipped)")
    base = input_path if input_path.is_dir() else input_path.parent
    pairs, taken = [], set()
    for src in sources:
        rel = src.relative_to(base)
        dst = output_dir / rel.with_suffix("." + fmt)
        if dst in taken:
            dst = output_dir / rel.with_name(f"{rel.stem}_{rel.suffix.lstrip('.')}.{fmt}")
        taken.add(dst)
        if not dst.resolve().is_relative_to(out_abs):  # defence in depth: never write outside output_dir
            raise GanError(f"refusing to write {dst}: outside {output_dir}")
        pairs.append((src, dst))
    return pairs


class _Images(torch.utils.data.Dataset):
    """Decodes (and optionally resizes) in DataLoader workers into uint8 (C, H, W) tensors (a quarter of the
    float size to pass between processes and to the GPU); a failure comes back as its message."""

    def __init__(self, paths: list[Path], resize: int | None):
        self.paths, self.resize = paths, resize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            img = load_image(self.paths[i])
        except ImageDecodeError as e:
            return i, None, str(e)
        if self.resize:
            import cv2

            h, w = img.shape[:2]
            nh, nw = resized_hw(h, w, self.resize)
            img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if nh < h else cv2.INTER_CUBIC)
        return i, to_chw(img), None


def resized_hw(h: int, w: int, short_side: int | None) -> tuple[int, int]:
    """(h, w) scaled so the short side is `short_side` (unchanged when None)."""
    if not short_side:
        return h, w
    s = short_side / min(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


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
                     opts: TranslateOptions | None = None, progress: bool = True) -> Report:
    """Translate every image under input_path into output_dir (same relative paths). Nothing is written if
    any output exists already and opts.overwrite is off. `net` is used as given (the caller decides its
    device and memory format)."""
    opts = opts or TranslateOptions()
    start = time.perf_counter()
    pairs = plan_outputs(Path(input_path), Path(output_dir), opts.fmt)
    existing = [dst for _, dst in pairs if dst.exists()]
    if existing and not opts.overwrite:
        shown = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise GanError(f"{len(existing)} output file(s) exist already ({shown}); nothing was written. "
                       "Pass --overwrite to replace them, or choose another --output.")
    device = net_device(net)
    precision = inference_precision(opts.precision, device)
    if precision == "fp16" and device.type != "cuda":
        raise GanError("--precision fp16 needs CUDA (use bf16 or fp32 on the CPU)")
    amp = precision in ("bf16", "fp16") and getattr(net, "supports_autocast", True)
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=amp)

    # Inputs in channels_last on CUDA: fastest there when the caller's net is channels_last too.
    channels_last = device.type == "cuda"
    sources = [s for s, _ in pairs]
    loader = torch.utils.data.DataLoader(
        _Images(sources, opts.resize), batch_sampler=_size_batches(sources, opts.batch_size, opts.resize),
        num_workers=opts.workers, collate_fn=_collate, pin_memory=device.type == "cuda",
    )
    skipped: list[tuple[Path, str]] = []
    written = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pairs), unit="img", dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=2) as writer, torch.no_grad():
        pending = []
        for items in loader:
            good = [(i, t) for i, t, _ in items if t is not None]
            for i, _, err in items:
                if err is not None:
                    skipped.append((sources[i], err))
                    log.warning("skipping unreadable image %s", err)
            if good:
                outs = translate_batch(net, [t for _, t in good], device, opts, autocast, channels_last)
                for (i, _), out in zip(good, outs):
                    pending.append(writer.submit(_write, to_uint8(out, inplace=True), pairs[i][1], opts.fmt))
                    written += 1
            if bar is not None:
                bar.update(len(items))
        for f in pending:
            f.result()
    if bar is not None:
        bar.close()
    return Report(written, skipped, time.perf_counter() - start)


@torch.no_grad()
def translate_batch(net, images: list[torch.Tensor], device: torch.device, opts: TranslateOptions | None = None,
                    autocast=None, channels_last: bool = False) -> list[torch.Tensor]:
    """Same-size (C, H, W) images, uint8 or float in [-1, 1] -> their translations (float, on the CPU),
    tiled when opts say so."""
    opts = opts or TranslateOptions()
    autocast = autocast or contextlib.nullcontext
    h, w = images[0].shape[-2:]
    tile = opts.tile or (512 if h * w > opts.max_pixels else 0)
    if tile and max(h, w) > tile:
        return [translate_tiled(net, t[None], tile, opts.tile_overlap, opts.tile_stats, opts.stats_size, autocast,
                                device)[0] for t in images]
    x = torch.stack(images).to(device, non_blocking=True)
    x = normalize_uint8(x) if x.dtype == torch.uint8 else x
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast():
        y = net(x)
    return list(y.float().cpu())


def _write(img: np.ndarray, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"quality": 95} if FORMATS[fmt] in ("JPEG", "WEBP") else {}
    tmp = path.with_name(f".{path.name}.part")
    Image.fromarray(img).save(tmp, format=FORMATS[fmt], **kwargs)
    tmp.replace(path)


def side_by_side(pairs: list[tuple[Path, Path]], path: str | Path, height: int = 192, max_rows: int = 12) -> Path:
    """One PNG with a row per image: input | translation, each scaled to `height` px."""
    rows = []
    for src, dst in pairs[:max_rows]:
        if not dst.exists():
            continue
        cells = []
        for p in (src, dst):
            img = Image.fromarray(load_image(p))
            cells.append(img.resize((max(1, round(img.width * height / img.height)), height), Image.LANCZOS))
        rows.append(cells)
    if not rows:
        raise GanError("nothing to show side by side: no translated image")
    gap = 4
    width = max(sum(c.width for c in row) + gap * 3 for row in rows)
    sheet = Image.new("RGB", (width, len(rows) * (height + gap) + gap), (255, 255, 255))
    for r, row in enumerate(rows):
        x = gap
        for cell in row:
            sheet.paste(cell, (x, gap + r * (height + gap)))
            x += cell.width + gap
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
