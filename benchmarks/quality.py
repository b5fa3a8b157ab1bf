"""Known-map quality benchmark: how well does each training recipe learn a photo -> "painting" map whose
ground truth we know?

    python benchmarks/quality.py                                  # the default grid (colour map, 5 recipes)
    python benchmarks/quality.py --map edges --recipes reference,recommended
    python benchmarks/quality.py --recipes reference,sn_d,lr_d_half,warmup,idt_low ...

Data (built in a scratch folder from the photographs scikit-image ships, like the sample dataset):
domain A = random crops of five photos; domain B = the map T applied to *other* random crops of the same
photos (unpaired: no B image is T of an A image); held-out photos x = further random crops, with T(x) as
ground truth. Both domains draw their content from the same photos, so T is the only difference between
them and an unpaired method can recover it (with B drawn from other photos, their different colours would
be part of the "map" too). Maps T:

    color   a colour matrix (warm, faded blues), an S-shaped tone curve and a soft posterize (6 levels)
    edges   color, plus dark outlines where the photo has strong luminance edges (a structural change)

Each recipe trains the project's own loop (gan.training.trainer) for --steps steps with one seed, translates the held-out
photos with the run's checkpoint as test.py would (EMA weights when the recipe keeps them), and reports:
PSNR and SSIM of G(x) against T(x); the identity baseline (x against T(x): what doing nothing scores); a
checkerboard score, the share of spectral energy on the Nyquist row and column of the output's luminance
divided by the same share for T(x) (1 = as much period-2 energy as the target; transposed-convolution
checkerboards push it up); and a sample sheet PNG (x | T(x) | G(x) rows). One JSON line per recipe.

Recipes are the paper's recipe (configs/photo2monet.yaml) scaled down to --ngf/--blocks and --size, each
lever added on top of the previous (reference -> resize_conv -> identity -> color -> ema), the recommended
configs/photo2painting.yaml scaled the same way, and single levers on top of `color` (sn_d, lr_d_half,
warmup, idt_low). Default grid: about 22 minutes on 2 CPU cores (4.5 minutes a recipe).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# Cumulative levers on the reference recipe, then single levers on top of `color`.
LEVERS = {
    "reference": [],
    "resize_conv": ["model.generator.upsample=resize_conv"],
    "identity": ["model.generator.upsample=resize_conv", "model.generator.skip=identity"],
    "color": ["model.generator.upsample=resize_conv", "model.generator.skip=color"],
    "ema": ["model.generator.upsample=resize_conv", "model.generator.skip=color", "train.ema_decay=0.999"],
}
SINGLE = {
    "sn_d": ["model.discriminator.spectral_norm=true"],
    "lr_d_half": ["train.lr_scales={d: 0.5}"],
    "warmup": ["train.warmup_steps=200"],
    "idt_low": ["loss.lambda_identity=0.1"],
}
DEFAULT_GRID = ["reference", "resize_conv", "identity", "color", "ema"]


# ------------------------------------------------------------------------------------------------ maps


def tone_map(x: np.ndarray) -> np.ndarray:
    """The colour map on float RGB in [0, 1], (..., 3)."""
    m = np.array([[0.95, 0.15, 0.00], [0.05, 0.85, 0.05], [0.00, 0.15, 0.70]])
    y = x @ m.T + np.array([0.04, 0.02, 0.08])
    y = np.clip(y, 0, 1)
    y = 0.6 * y + 0.4 * (3 * y**2 - 2 * y**3)  # S-curve: more contrast in the mid-tones
    levels = 6
    y = y - 0.6 * np.sin(2 * np.pi * levels * y) / (2 * np.pi * levels)  # soft posterize toward 6 levels
    return np.clip(y, 0, 1)


def edge_lines(x: np.ndarray) -> np.ndarray:
    """Soft dark-line mask in [0, 1] from the luminance gradient of x (H, W, 3) in [0, 1]."""
    import cv2

    lum = (x @ np.array([0.299, 0.587, 0.114])).astype(np.float32)
    gx, gy = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx**2 + gy**2)
    return np.clip((mag - 0.35) / 0.5, 0, 1)[..., None]


def apply_map(img: np.ndarray, kind: str) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> the map T of it, uint8."""
    x = img.astype(np.float64) / 255.0
    y = tone_map(x)
    if kind == "edges":
        y = y * (1 - 0.75 * edge_lines(x))
    return np.clip(np.rint(y * 255), 0, 255).astype(np.uint8)


def build_data(root: Path, kind: str, n_train: int, n_test: int, crop: int, seed: int = 0) -> list[np.ndarray]:
    """trainA, trainB (mapped), testA (+ returns the held-out photos)."""
    from PIL import Image

    from gan.data.sample import _crop, _photos

    photos = _photos()
    rng = np.random.default_rng(seed)
    src = [photos[k] for k in ("astronaut", "coffee", "rocket", "motorcycle_left", "chelsea")]

    def crops(n):
        return [cv_resize(_crop(src[i % len(src)], rng), crop) for i in range(n)]

    for folder, imgs in (("trainA", crops(n_train)), ("trainB", [apply_map(c, kind) for c in crops(n_train)])):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(imgs):
            Image.fromarray(img).save(root / folder / f"{i:03d}.png")
    test = crops(n_test)
    for folder in ("testA", "testB"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(test):
        Image.fromarray(img).save(root / "testA" / f"{i:03d}.png")
        Image.fromarray(apply_map(img, kind)).save(root / "testB" / f"{i:03d}.png")
    return test


def cv_resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return img if img.shape[0] == size else cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


# -------------------------------------------------------------------------------------------- metrics


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse > 0 else float("inf")


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def nyquist_share(img: np.ndarray) -> float:
    """Share of the luminance spectrum's energy (mean removed) on the Nyquist row and column."""
    lum = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    h, w = lum.shape
    power = np.abs(np.fft.fft2(lum - lum.mean())) ** 2
    nyq = power[h // 2, :].sum() + power[:, w // 2].sum() - power[h // 2, w // 2]
    return float(nyq / max(power.sum(), 1e-12))


# ---------------------------------------------------------------------------------------------- runs


def recipe_overrides(name: str) -> tuple[Path, list[str]]:
    if name == "recommended":
        return ROOT / "configs" / "photo2painting.yaml", []
    if name in LEVERS:
        return ROOT / "configs" / "photo2monet.yaml", LEVERS[name]
    if name in SINGLE:
        return ROOT / "configs" / "photo2monet.yaml", LEVERS["color"] + SINGLE[name]
    raise SystemExit(f"unknown recipe {name!r}; choose from {', '.join([*LEVERS, 'recommended', *SINGLE])}")


def recipe_config(name: str, data: Path, work: Path, args):
    """The Config a recipe trains with: its YAML and levers, scaled down by the benchmark's arguments."""
    from gan.config import load_config

    config, levers = recipe_overrides(name)
    scale = [
        # The recipes' configs map the public *2photo layout (photos in trainB); here A is trainA.
        f"name={name}", f"data.root={data}", "data.train_a=trainA", "data.train_b=trainB", "data.test_a=testA",
        "data.test_b=testB", "data.preprocess=crop", f"data.load_size={args.crop}",
        f"data.crop_size={args.size}", "data.num_workers=1", f"model.generator.ngf={args.ngf}",
        f"model.generator.n_blocks={args.blocks}", f"model.discriminator.ndf={args.ndf}",
        f"train.max_steps={args.steps}", f"train.log_every={max(1, args.steps // 4)}",
        f"train.sample_every={args.steps}", f"train.save_every={args.steps}", "train.keep_last=1",
        f"train.output_dir={work}", "train.device=cpu", "train.precision=fp32", "tracking.wandb.mode=disabled",
        "eval.every=0", f"seed={args.seed}",
    ]
    return load_config(config, scale + levers)


def run_recipe(name: str, data: Path, work: Path, test: list[np.ndarray], kind: str, args) -> dict:
    import torch

    from gan.inference.load import load_generator
    from gan.data.io import to_tensor, to_uint8
    from gan.training.trainer import train

    cfg = recipe_config(name, data, work, args)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    ckpt = train(cfg)
    seconds = time.perf_counter() - start
    net, info = load_generator(ckpt, "AtoB", "cpu")
    outs = []
    with torch.no_grad():
        for img in test:
            outs.append(to_uint8(net(to_tensor(img)[None])[0]))
    targets = [apply_map(img, kind) for img in test]
    result = {
        "benchmark": "quality", "map": kind, "recipe": name, "steps": args.steps, "size": args.size,
        "ngf": args.ngf, "blocks": args.blocks, "seed": args.seed,
        "psnr": round(float(np.mean([psnr(o, t) for o, t in zip(outs, targets)])), 3),
        "ssim": round(float(np.mean([ssim(o, t) for o, t in zip(outs, targets)])), 4),
        "identity_psnr": round(float(np.mean([psnr(x, t) for x, t in zip(test, targets)])), 3),
        "identity_ssim": round(float(np.mean([ssim(x, t) for x, t in zip(test, targets)])), 4),
        "checkerboard": round(float(np.mean([nyquist_share(o) for o in outs]) /
                                    max(np.mean([nyquist_share(t) for t in targets]), 1e-12)), 3),
        "ema": "EMA" in info.description, "train_seconds": round(seconds, 1),
    }
    result["psnr_vs_identity"] = round(result["psnr"] - result["identity_psnr"], 3)
    result["sheet"] = str(write_sheet(test, targets, outs, Path(args.out) / f"quality_{kind}_{name}.png"))
    return result


def write_sheet(xs, targets, outs, path: Path, rows: int = 4) -> Path:
    """Rows of x | T(x) | G(x), each doubled in size (nearest) so artifacts stay visible."""
    from PIL import Image

    gap = 4
    cells = [[np.repeat(np.repeat(c, 2, 0), 2, 1) for c in row] for row in zip(xs[:rows], targets, outs)]
    h, w = cells[0][0].shape[:2]
    sheet = np.full((len(cells) * (h + gap) + gap, 3 * (w + gap) + gap, 3), 255, np.uint8)
    for r, row in enumerate(cells):
        for c, img in enumerate(row):
            sheet[gap + r * (h + gap): gap + r * (h + gap) + h, gap + c * (w + gap): gap + c * (w + gap) + w] = img
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--map", default="color", choices=["color", "edges"])
    p.add_argument("--recipes", default=",".join(DEFAULT_GRID), help="comma-separated recipe names")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--size", type=int, default=64, help="training crop size")
    p.add_argument("--crop", type=int, default=128, help="size of the stored images (crops are taken from them)")
    p.add_argument("--ngf", type=int, default=16)
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--train-images", type=int, default=64)
    p.add_argument("--test-images", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "results" / "quality"), help="folder for the sample sheets")
    args = p.parse_args(argv)

    import logging

    from gan.cli import setup_logging

    setup_logging(logging.WARNING)  # one JSON line per recipe, not the trainer's chatter
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        test = build_data(tmp / "data", args.map, args.train_images, args.test_images, args.crop, args.seed)
        for name in args.recipes.split(","):
            print(json.dumps(run_recipe(name.strip(), tmp / "data", tmp / "runs", test, args.map, args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
