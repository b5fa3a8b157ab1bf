"""test.py throughput against a plain batch-1 eager loop, and peak memory of one huge image, in one run.

    python benchmarks/translate.py [--images 64] [--width 512] [--height 384] [--ngf 64] [--blocks 9]

1. A generated folder of --images images; end-to-end images/s of `python test.py` on it (process start and
   model load included) with its defaults and with --precision fp32, then of a plain fp32 loop over the
   same files (decode, one image through the net, encode, save), and the ratios.
2. One --big-width x --big-height photo-like image (12 MP by default) through test.py, each run in its own
   process: with test.py's defaults (above 4 MP: bands with whole-image statistics) and untiled
   (--max-megapixels 1000): seconds, peak RSS, and the PSNR of the band result against the untiled one.
   Goal: bands within 1.5x the untiled time, under 1.5 GB, at least 45 dB.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan.data.io import find_images, load_image, to_tensor, to_uint8  # noqa: E402
from gan.nn.networks import ResnetGenerator  # noqa: E402

PEAK_RSS = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def make_images(folder: Path, n: int, w: int, h: int) -> None:
    """Photo-like test images: a smooth random field at several scales plus a little fine grain."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        img = np.zeros((h, w, 3), np.float32)
        for cells, amp in ((8, 0.6), (64, 0.3), (max(w, h) // 8, 0.1)):
            small = rng.random((max(2, cells * h // max(w, h)), max(2, cells * w // max(w, h)), 3)).astype(np.float32)
            img += amp * np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC),
                                    np.float32) / 255
        img += rng.normal(0, 0.02, img.shape).astype(np.float32)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / f"{i:04d}.png")


def plain_loop(net, src: Path, dst: Path) -> float:
    dst.mkdir(parents=True)
    start = time.perf_counter()
    with torch.no_grad():
        for p in find_images(src):
            y = net(to_tensor(load_image(p))[None])
            Image.fromarray(to_uint8(y[0])).save(dst / (p.stem + ".png"))
    return time.perf_counter() - start


def run_test_py(ckpt: Path, src: Path, dst: Path, *extra: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "test.py"), "--checkpoint", str(ckpt), "--input", str(src),
                    "--output", str(dst), *extra], check=True, capture_output=True)
    return time.perf_counter() - start


def peak_rss_mb(ckpt: Path, src: Path, dst: Path, *extra: str) -> float:
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, str(ROOT / "test.py"), "--checkpoint",
                          str(ckpt), "--input", str(src), "--output", str(dst), "--workers", "0", *extra],
                         check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=384)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--blocks", type=int, default=9)
    p.add_argument("--batch-size", type=int, default=None, help="default: test.py's (1 on the CPU)")
    p.add_argument("--big-width", type=int, default=4000)
    p.add_argument("--big-height", type=int, default=3000)
    p.add_argument("--big-precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="test.py --precision for the big image (both runs)")
    p.add_argument("--skip-untiled", action="store_true", help="skip the untiled huge image (needs a lot of RAM)")
    args = p.parse_args()

    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, args.ngf, args.blocks).eval()
    result = {"benchmark": "translate", "threads": torch.get_num_threads(), "ngf": args.ngf, "blocks": args.blocks,
              "images": args.images, "size": f"{args.width}x{args.height}",
              "batch_size": args.batch_size or "default"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "latest_net_G.pth"  # our generator's state_dict is in the reference layout
        torch.save(net.state_dict(), ckpt)
        make_images(tmp / "in", args.images, args.width, args.height)
        batch = ["--batch-size", str(args.batch_size)] if args.batch_size else []
        t_cli = run_test_py(ckpt, tmp / "in", tmp / "out_cli", *batch)  # test.py's defaults
        t_cli32 = run_test_py(ckpt, tmp / "in", tmp / "out_cli32", *batch, "--precision", "fp32")
        t_loop = plain_loop(net, tmp / "in", tmp / "out_loop")
        from gan.runtime import Runtime

        result.update(test_py_precision=Runtime.resolve("cpu", "auto").precision.name,
                      test_py_img_s=round(args.images / t_cli, 3), test_py_fp32_img_s=round(args.images / t_cli32, 3),
                      plain_loop_img_s=round(args.images / t_loop, 3), ratio=round(t_loop / t_cli, 3),
                      ratio_fp32=round(t_loop / t_cli32, 3))

        make_images(tmp / "big", 1, args.big_width, args.big_height)
        result["big_image"] = f"{args.big_width}x{args.big_height}"
        result["big_precision"] = args.big_precision
        prec = ["--precision", args.big_precision]
        start = time.perf_counter()
        result["bands_peak_rss_mb"] = round(peak_rss_mb(ckpt, tmp / "big", tmp / "big_bands", *prec))
        result["bands_seconds"] = round(time.perf_counter() - start, 1)
        if not args.skip_untiled:
            start = time.perf_counter()
            result["untiled_peak_rss_mb"] = round(peak_rss_mb(ckpt, tmp / "big", tmp / "big_untiled",
                                                              "--max-megapixels", "1000", *prec))
            result["untiled_seconds"] = round(time.perf_counter() - start, 1)
            result["bands_time_ratio"] = round(result["bands_seconds"] / result["untiled_seconds"], 3)
            a = np.asarray(Image.open(tmp / "big_bands" / "0000.png")).astype(np.float64)
            b = np.asarray(Image.open(tmp / "big_untiled" / "0000.png")).astype(np.float64)
            mse = ((a - b) ** 2).mean()
            result["bands_psnr_db"] = round(10 * np.log10(255**2 / mse), 2) if mse > 0 else "inf"
            result["bands_max_abs_diff_levels"] = int(np.abs(a - b).max())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
