"""Image files: the only code that finds, decodes, converts and writes them.

    find_images(folder)          recursive, deterministic, hidden files skipped
    load_image(path)             any common file -> uint8 RGB (H, W, 3); ImageDecodeError when it can't
    to_tensor / to_uint8         uint8 <-> float in [-1, 1] (and unit_to_uint8 for [0, 1] arrays)
    write_image(img, path)       the one writer: formats, transparency, 16 bits, never a half-written file
    plan_outputs(input, output)  where each result goes, with the guards (never over an input, never outside)

The files read are never written to.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from gan import GanError, ImageDecodeError


log = logging.getLogger("gan")


def _still_image_extensions() -> tuple[str, ...]:
    """Every file extension Pillow can open as a still image: jpg, png, webp, bmp, tif, gif (first frame),
    ppm/pgm/pbm/pnm, tga, avif, jp2, psd, ico, qoi, ... Left out: formats Pillow only identifies or needs an
    outside program for (MPEG video, EPS/PostScript via Ghostscript, Windows metafiles, GRIB/BUFR/HDF5 data
    stubs, IPTC), and FLI/FLC animations."""
    Image.init()
    not_stills = {"MPEG", "EPS", "WMF", "GRIB", "BUFR", "HDF5", "IPTC", "FLI"}
    return tuple(sorted(ext for ext, fmt in Image.registered_extensions().items()
                        if fmt in Image.OPEN and fmt not in not_stills))


IMAGE_EXTENSIONS = _still_image_extensions()


# ------------------------------------------------------------------------------------------ discovery


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def find_images(folder: str | Path, extensions: tuple[str, ...] = ()) -> list[Path]:
    """Image files (and files with the extra `extensions`) under `folder` (recursive, or the file itself),
    sorted, skipping hidden files/folders."""
    folder = Path(folder)

    def wanted(p: Path) -> bool:
        return is_image_file(p) or p.suffix.lower() in extensions

    if folder.is_file():
        return [folder] if wanted(folder) else []
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            p = Path(dirpath) / name
            if not name.startswith(".") and wanted(p):
                found.append(p)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


# ------------------------------------------------------------------------------------------- decoding


def load_image(path: str | Path) -> np.ndarray:
    """Decode any common image file to uint8 RGB (H, W, 3): EXIF orientation applied; grayscale, palette,
    CMYK and 16-bit converted; transparency composited on white. Raises ImageDecodeError."""
    return load_image_alpha(path)[0]


def load_image_alpha(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """load_image, and the alpha channel (uint8 (H, W)) of an image with transparency, else None."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)  # also forces a full decode (truncation shows here)
            return _to_rgb_alpha(img)
    except Image.DecompressionBombError as e:
        raise ImageDecodeError(f"{path}: larger than the decompression-bomb limit "
                               f"({2 * Image.MAX_IMAGE_PIXELS:,} pixels), refused: {e}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        reason = "empty file" if path.is_file() and path.stat().st_size == 0 else str(e) or type(e).__name__
        raise ImageDecodeError(f"{path}: cannot decode image: {reason}") from None


def _to_rgb(img: Image.Image) -> np.ndarray:
    return _to_rgb_alpha(img)[0]


def _to_rgb_alpha(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if mode == "F" and arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
        elif mode.startswith("I;16") or (arr.size and arr.max() > 255):
            arr = arr / 257.0  # 16-bit range -> 8-bit
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2)), None
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info) or (
            mode in ("RGB", "L") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        alpha = np.asarray(rgba.getchannel("A")).copy()
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB")).copy(), alpha
    return np.asarray(img.convert("RGB")).copy(), None


def check_image(path: Path) -> str | None:
    """None if `path` decodes, else the reason. JPEGs decode at 1/8 scale (libjpeg's draft mode), which
    still reads the whole file, so truncation is found at a fraction of the cost."""
    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
        return None
    except Image.DecompressionBombError:
        return f"larger than the decompression-bomb limit ({2 * Image.MAX_IMAGE_PIXELS:,} pixels)"
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        return "empty file" if path.stat().st_size == 0 else (str(e) or type(e).__name__)


# ------------------------------------------------------------------------------ tensors <-> uint8


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, C) -> float32 (C, H, W) in [-1, 1]."""
    return normalize_uint8(to_chw(img))


def to_chw(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, C) array -> uint8 (C, H, W) tensor, still uint8 (a quarter of the float size)."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def normalize_uint8(t: torch.Tensor) -> torch.Tensor:
    """uint8 tensor (any shape, any device) -> float32 in [-1, 1]. The one place uint8 becomes float."""
    return t.float().div_(127.5).sub_(1.0)


def to_uint8(t: torch.Tensor, inplace: bool = False) -> np.ndarray:
    """float (C, H, W) in [-1, 1] -> uint8 (H, W, C). The one place a tensor becomes uint8. `inplace` reuses
    `t` (a float32 CPU tensor the caller gives up) instead of a full-size copy."""
    t = t.detach().float()
    t = t.clamp_(-1, 1) if inplace and t.device.type == "cpu" else t.clamp(-1, 1)
    t = t.add_(1).mul_(127.5).round_().to(torch.uint8)
    return t.permute(1, 2, 0).cpu().numpy()


def unit_to_uint8(img: np.ndarray) -> np.ndarray:
    """float (H, W, C) in [0, 1] (stylization's output) -> uint8, rounded. The one place such an array becomes
    8-bit (and `to_uint8` the one place a [-1, 1] tensor does)."""
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


# -------------------------------------------------------------------------------------------- writing

# Output formats by extension (without the dot): Pillow's name, whether it keeps transparency and 16 bits
OUTPUT_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "bmp": "BMP", "tif": "TIFF",
                  "tiff": "TIFF"}
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")  # keep an input's transparency (JPEG, BMP: opaque, on white)
DEEP_FORMATS = ("PNG", "TIFF")  # take 16 bits per channel


def output_format(path: Path) -> str | None:
    """Pillow's format name for an output file's extension, or None for an extension that is not written."""
    return OUTPUT_FORMATS.get(path.suffix.lower().lstrip("."))


def write_image(img: np.ndarray, path: str | Path, alpha: np.ndarray | None = None, bit_depth: int = 8) -> None:
    """uint8 (H, W, C), or float (H, W, C) in [0, 1], -> the file `path` (format from its extension; JPEG and
    WebP at quality 95; `alpha` (uint8 (H, W)) kept where the format has transparency; 16-bit PNG/TIFF from a
    float image through OpenCV). Written under a temporary name, then renamed: no half-written file is ever
    left under the final name. The one place image files are written."""
    path = Path(path)
    fmt = output_format(path)
    if fmt is None:
        raise GanError(f"{path}: unknown output format (use one of .{', .'.join(OUTPUT_FORMATS)})")
    if bit_depth == 16 and fmt not in DEEP_FORMATS:
        raise GanError(f"{path}: 16-bit output needs PNG or TIFF (JPEG, WebP and BMP are 8-bit)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.part{path.suffix}")
    try:
        if bit_depth == 16:
            data = np.clip(np.rint(img * 65535), 0, 65535).astype(np.uint16)
            if not cv2.imwrite(str(tmp), np.ascontiguousarray(data[:, :, ::-1])):
                raise GanError(f"could not write {path}")
        else:
            out = Image.fromarray(img if img.dtype == np.uint8 else unit_to_uint8(img))
            if alpha is not None and fmt in ALPHA_FORMATS and alpha.shape == img.shape[:2]:
                out.putalpha(Image.fromarray(alpha))
            out.save(tmp, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def plan_outputs(input_path: str | Path, output: str | Path, fmt: str, extensions: tuple[str, ...] = (),
                 keep_suffix=lambda p: False, to_file: bool = False, what: str = "input"
                 ) -> list[tuple[Path, Path]]:
    """(source, destination) pairs for the image files (and files with the extra `extensions`) under
    input_path: the same relative paths under the folder `output`, with the extension of `fmt` (or their own,
    for sources where `keep_suffix` says so, e.g. videos). Two sources that would map to one file keep their
    original extension in the name. `to_file`: a single input file and an `output` with an image extension
    writes that file. The guards every caller gets: sources inside the output folder (when it lies inside the
    input) are not inputs, the output is never the input itself, and nothing is ever planned outside `output`."""
    if fmt not in OUTPUT_FORMATS:
        raise GanError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
    input_path, output = Path(input_path), Path(output)
    if not input_path.exists():
        raise GanError(f"{what} not found: {input_path}")
    if to_file and input_path.is_file() and output_format(output) is not None:
        if output.resolve() == input_path.resolve():
            raise GanError(f"--output {output} is the input itself: choose another file")
        return [(input_path, output)]
    out_abs = output.resolve()
    found = find_images(input_path, extensions)
    sources = [p for p in found if not p.resolve().is_relative_to(out_abs)]
    if found and not sources:
        raise GanError(f"every input is inside the output folder {output} (the results would overwrite "
                       "them): choose another --output")
    if not sources:
        raise GanError(f"no image{' or video' if extensions else ''} files in {input_path} (looked for "
                       f"{', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS + extensions)}, recursively; "
                       "hidden files are skipped)")
    base = input_path if input_path.is_dir() else input_path.parent
    pairs, taken = [], set()
    for src in sources:
        rel = src.relative_to(base)
        dst = output / (rel if keep_suffix(src) else rel.with_suffix("." + fmt))
        if dst in taken:
            dst = output / rel.with_name(f"{rel.stem}_{rel.suffix.lstrip('.')}{dst.suffix}")
        taken.add(dst)
        if not dst.resolve().is_relative_to(out_abs):  # defence in depth: never write outside the output folder
            raise GanError(f"refusing to write {dst}: outside {output}")
        pairs.append((src, dst))
    return pairs


def resized_hw(h: int, w: int, short_side: int | None) -> tuple[int, int]:
    """(h, w) scaled so the short side is `short_side` (unchanged when None)."""
    if not short_side:
        return h, w
    s = short_side / min(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def resize_short_side(img: np.ndarray, short_side: int | None) -> np.ndarray:
    """uint8 HWC resized so its short side is `short_side` (area filter down, cubic up; unchanged when None)."""
    if not short_side:
        return img
    return resize_to(img, resized_hw(*img.shape[:2], short_side))


def resize_to(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """uint8 HW or HWC resized to hw = (h, w): area filter down, cubic up; the array itself when already so."""
    import cv2

    h = img.shape[0]
    if tuple(img.shape[:2]) == tuple(hw):
        return img
    return cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA if hw[0] < h else cv2.INTER_CUBIC)


def resize_center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> (size, size, 3): short side resized to `size`, then the centre square."""
    h, w = img.shape[:2]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y, x = (nh - size) // 2, (nw - size) // 2
    return img[y:y + size, x:x + size]


# ------------------------------------------------------------------------------------ animated images


def is_animated(path: Path) -> bool:
    """An animated GIF or WebP (more than one frame); a single-frame one is a still image."""
    try:
        with Image.open(path) as img:
            return getattr(img, "n_frames", 1) > 1
    except (OSError, ValueError, SyntaxError, EOFError):
        return False


def read_animation(path: Path):
    """(frame count, loop count, (h, w), frames()) of an animated GIF/WebP: frames() yields (uint8 RGB (H, W, 3),
    duration in ms) in order, each time it is called. Raises ImageDecodeError."""
    from PIL import ImageSequence

    try:
        with Image.open(path) as img:
            n, loop, hw = getattr(img, "n_frames", 1), img.info.get("loop", 0), (img.height, img.width)
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageDecodeError(f"{path}: cannot read it as an animation ({str(e) or type(e).__name__})") from None

    def frames():
        try:
            with Image.open(path) as img:
                for frame in ImageSequence.Iterator(img):
                    yield _to_rgb(frame.convert("RGBA") if frame.mode == "P" else frame), frame.info.get("duration", 100)
        except (OSError, ValueError, SyntaxError, EOFError) as e:
            raise ImageDecodeError(f"{path}: cannot read it as an animation ({str(e) or type(e).__name__})") from None

    return n, loop, hw, frames


def write_animation(frames: list[np.ndarray], durations: list[int], loop: int, path: str | Path) -> None:
    """uint8 RGB frames as an animated GIF or WebP (by the file's suffix), with each frame's duration (ms) and the
    loop count; written under a temporary name and renamed, so a failure leaves no half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.part{path.suffix}")
    fmt = "GIF" if path.suffix.lower() == ".gif" else "WEBP"
    extra = {"quality": 90} if fmt == "WEBP" else {"optimize": False}
    images = [Image.fromarray(f) for f in frames]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        images[0].save(tmp, format=fmt, save_all=True, append_images=images[1:], duration=list(durations),
                       loop=loop, **extra)
        tmp.replace(path)
    except OSError as e:
        raise GanError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------- contact sheets


def side_by_side(rows: list[list[np.ndarray]], height: int, gap: int = 4) -> np.ndarray:
    """Rows of uint8 RGB images, each scaled (Lanczos) to `height` px keeping its aspect, laid out left to right
    with `gap` px of white between and around them: one sheet (input | output rows, a comparison strip)."""
    scaled = [[np.asarray(Image.fromarray(img).resize((max(1, round(img.shape[1] * height / img.shape[0])), height),
                                                      Image.LANCZOS)) for img in row] for row in rows]
    width = max(sum(c.shape[1] for c in row) + gap * (len(row) + 1) for row in scaled)
    sheet = np.full((len(scaled) * (height + gap) + gap, width, 3), 255, np.uint8)
    for r, row in enumerate(scaled):
        x = gap
        for cell in row:
            sheet[gap + r * (height + gap): gap + r * (height + gap) + height, x: x + cell.shape[1]] = cell
            x += cell.shape[1] + gap
    return sheet
