"""Can a recipe's discriminator see a map's structure within the budget? The discriminator alone, trained as
the GAN trains it at the identity start: "real" = T(photo) (the paintings), "fake" = photos with the best
global colour grade toward T already applied (what the generator's colour path learns first), so what is left
to tell them apart is structure: flat patches, outlines, washes, lines.

    python benchmarks/discriminator_probe.py --map oil --batch 1,4
    python benchmarks/discriminator_probe.py --map ink --set model.discriminator.norm=none

Data: the quality benchmark's photos and maps (benchmarks/quality.py), random --size crops of --crop px images
with flips, like the training loader. The colour grade is the least-squares affine colour map from x to T(x)
over all training pixels (a global map, as the colour path is). The discriminator is the recipe's
(--config + --set overrides), trained with its optimiser settings (Adam, train.lr x lr_scales.d, beta1, beta2)
and loss.gan_mode, without a generator. Every --every steps one JSON line: the mean training loss of the window
(LSGAN: 0.25 is a discriminator that cannot tell, 0 one that always can), and on held-out photos the mean
output for the graded photos and for T of them (the wider apart, the more the generator can learn from it),
with the wall time so far. A discriminator that ends near 0.25 gives the generator nothing toward structure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def colour_grade(xs: list[np.ndarray], ts: list[np.ndarray]):
    """The least-squares affine colour map x -> T(x) over all pixels of the pairs, as a function of uint8 RGB."""
    x = np.concatenate([a.reshape(-1, 3) for a in xs]).astype(np.float64) / 255
    t = np.concatenate([b.reshape(-1, 3) for b in ts]).astype(np.float64) / 255
    m, *_ = np.linalg.lstsq(np.c_[x, np.ones(len(x))], t, rcond=None)

    def grade(img: np.ndarray) -> np.ndarray:
        y = np.c_[img.reshape(-1, 3).astype(np.float64) / 255, np.ones(img.shape[0] * img.shape[1])] @ m
        return np.clip(np.rint(y * 255), 0, 255).astype(np.uint8).reshape(img.shape)

    return grade


def probe(cfg, fakes: list[np.ndarray], reals: list[np.ndarray], test_fake, test_real, batch: int, steps: int,
          every: int, size: int, seed: int):
    """Yield one dict per window of `every` steps (see the module's docstring)."""
    import torch

    from gan.data.io import to_tensor
    from gan.nn import losses
    from gan.nn.networks import build_discriminator

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    d = build_discriminator(cfg.model, cfg.model.out_channels)
    t = cfg.train
    opt = torch.optim.Adam(d.parameters(), t.lr * t.lr_scales.get("d", 1.0), betas=(t.beta1, t.beta2))

    def draw(imgs):
        out = []
        for _ in range(batch):
            img = imgs[rng.integers(len(imgs))]
            i, j = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
            x = to_tensor(img[i:i + size, j:j + size])
            out.append(x.flip(-1) if rng.random() < 0.5 else x)
        return torch.stack(out)

    held_fake = torch.stack([to_tensor(a) for a in test_fake])
    held_real = torch.stack([to_tensor(b) for b in test_real])
    start, total = time.perf_counter(), 0.0
    for step in range(1, steps + 1):
        loss = losses.discriminator_loss(d(draw(reals)), d(draw(fakes)), cfg.loss.gan_mode)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
        if step % every == 0 or step == steps:
            d.eval()
            with torch.no_grad():
                out_fake, out_real = d(held_fake).mean().item(), d(held_real).mean().item()
            d.train()
            yield {"step": step, "loss": round(total / (every if step % every == 0 else step % every), 4),
                   "held_out_fake": round(out_fake, 3), "held_out_real": round(out_real, 3),
                   "seconds": round(time.perf_counter() - start, 1)}
            total = 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--map", default="oil", help="a map of benchmarks/quality.py")
    p.add_argument("--config", default=str(ROOT / "configs" / "photo2painting.yaml"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override (repeat)")
    p.add_argument("--batch", default="1", help="comma-separated batch sizes, one probe each")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--size", type=int, default=64, help="training crop size")
    p.add_argument("--crop", type=int, default=128, help="size of the images crops are taken from")
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--train-images", type=int, default=64)
    p.add_argument("--test-images", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from quality import MAPS, apply_map, photo_crops

    from gan.config import ConfigError, load_config

    if args.map not in MAPS:
        p.error(f"unknown map {args.map!r}; choose from {', '.join(MAPS)}")
    try:
        batches = [int(b) for b in args.batch.split(",")]
        cfg = load_config(args.config, [f"model.discriminator.ndf={args.ndf}", *args.set])
    except (ValueError, ConfigError) as e:
        p.error(str(e))
    crops = photo_crops(args.seed)
    photos, others, test = (crops(n, args.crop) for n in (args.train_images, args.train_images, args.test_images))
    grade = colour_grade(photos, [apply_map(x, args.map) for x in photos])
    fakes, reals = [grade(x) for x in photos], [apply_map(x, args.map) for x in others]
    test_fake, test_real = [grade(x) for x in test], [apply_map(x, args.map) for x in test]
    for batch in batches:
        for row in probe(cfg, fakes, reals, test_fake, test_real, batch, args.steps, args.every, args.size,
                         args.seed):
            print(json.dumps({"benchmark": "discriminator_probe", "map": args.map, "batch": batch,
                              "overrides": args.set, **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
