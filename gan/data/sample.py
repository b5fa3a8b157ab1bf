"""The embedded sample dataset: a few seconds to build, from the colour photographs scikit-image ships.

    trainA/  photo crops (astronaut, coffee, rocket)
    trainB/  "paintings": crops of other photos (a motorcycle scene, a microscope slide)
             rendered with OpenCV's edge-preserving stylization filter, colour quantisation and dark outlines
    testA/   held-out photos (Chelsea the cat, the other view of the motorcycle, regions of the trainA photos
             no training crop touches) at their natural size, for translation
    testB/   more paintings from held-out regions

A demo set to see the whole pipeline work in minutes, not a benchmark. Deterministic: the same bytes on
every build (given the same library versions).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from gan.data.io import write_image

CROP = 128  # stored crop size
N_TRAIN = 48  # images per training domain
N_TEST_B = 8


def _photos() -> dict[str, np.ndarray]:
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    return {
        "astronaut": data.astronaut(), "coffee": data.coffee(), "rocket": data.rocket(),
        "chelsea": data.chelsea(), "motorcycle_left": left, "motorcycle_right": right,
        "ihc": data.immunohistochemistry(),
    }


def painterly(rgb: np.ndarray, colours: int = 12, seed: int = 0) -> np.ndarray:
    """Edge-preserving stylization (Gastal & Oliveira 2011, as cv2.stylization), k-means colour
    quantisation, and darkened edges: flat patches of a small palette with outlines."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    smooth = cv2.stylization(bgr, sigma_s=40, sigma_r=0.35)
    pixels = smooth.reshape(-1, 3).astype(np.float32)
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    _, labels, centres = cv2.kmeans(pixels, colours, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    quant = centres[labels.ravel()].reshape(smooth.shape)
    # Warm the palette a little and boost saturation, as an oil palette would.
    hsv = cv2.cvtColor(np.clip(quant, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.35 + 10, 0, 255)
    quant = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    quant[..., 2] = np.clip(quant[..., 2] * 1.06 + 6, 0, 255)
    edges = cv2.Canny(cv2.cvtColor(smooth, cv2.COLOR_BGR2GRAY), 60, 140)
    edges = cv2.dilate(edges, np.ones((2, 2), np.uint8)).astype(np.float32)[..., None] / 255.0
    out = quant * (1 - 0.65 * edges)
    return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8)[:, :, ::-1])


def _crop(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random square crop (side 35-70% of the short side), resized to CROP x CROP."""
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.35, 0.7))
    x = int(rng.integers(0, w - side + 1))
    y = int(rng.integers(0, h - side + 1))
    return cv2.resize(img[y:y + side, x:x + side], (CROP, CROP), interpolation=cv2.INTER_AREA)


def _fit(img: np.ndarray, short_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = short_side / min(h, w)
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def _save(img: np.ndarray, path: Path) -> None:
    write_image(img, path)


def build_sample_dataset(root: str | Path, log=print) -> Path:
    """Write trainA/trainB/testA/testB under `root` (built in a temp folder, then moved into place)."""
    root = Path(root)
    photos = _photos()
    rng = np.random.default_rng(20170330)  # CycleGAN's arXiv date
    tmp = Path(tempfile.mkdtemp(prefix=".sample-", dir=root.parent if root.parent.exists() else None))
    try:
        # Photos: crops from the left 70% of each training photo; the right 30% is held out for testA.
        photo_names = ("astronaut", "coffee", "rocket")
        for i in range(N_TRAIN):
            name = photo_names[i % len(photo_names)]
            img = photos[name]
            w = img.shape[1]
            held = img[:, : int(0.7 * w)]
            _save(_crop(held, rng), tmp / "trainA" / f"{name}_{i:03d}.png")
        # Paintings from other photos; left 75% for trainB, the rest for testB.
        paint_names = ("motorcycle_right", "ihc", "motorcycle_right")
        for i in range(N_TRAIN + N_TEST_B):
            name = paint_names[i % len(paint_names)]
            img = photos[name]
            train = i < N_TRAIN
            w = img.shape[1]
            part = img[:, : int(0.75 * w)] if train else img[:, int(0.6 * w):]
            crop = _crop(part, rng)
            split = "trainB" if train else "testB"
            _save(painterly(crop, seed=i), tmp / split / f"{name}_{i:03d}.png")
        # Held-out photos at a natural size (full-resolution translation keeps it).
        _save(_fit(photos["chelsea"], 128), tmp / "testA" / "chelsea.png")
        _save(_fit(photos["motorcycle_left"], 160), tmp / "testA" / "motorcycle.png")
        for name in photo_names:  # a square from the held-out right 30% of each training photo
            img = photos[name]
            right = img[:, int(0.7 * img.shape[1]):]
            side = min(right.shape[:2])
            y = (right.shape[0] - side) // 2
            _save(cv2.resize(right[y:y + side, :side], (128, 128), interpolation=cv2.INTER_AREA),
                  tmp / "testA" / f"{name}_heldout.png")
        if root.exists():
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    counts = {d: len(list((root / d).glob("*.png"))) for d in ("trainA", "trainB", "testA", "testB")}
    log(f"built the sample dataset in {root}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the embedded sample dataset.")
    parser.add_argument("root", nargs="?", default="datasets/sample")
    args = parser.parse_args(argv)
    build_sample_dataset(args.root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
