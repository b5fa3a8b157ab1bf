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

    color        a colour matrix (warm, faded blues), an S-shaped tone curve and a soft posterize (6 levels)
    edges        color, plus dark outlines where the photo has strong luminance edges
    oil          flat patches of paint (mean-shift flattening), a warm grade, dark outlines on the patches
    watercolour  soft washes mixed toward the paper, darker pigment rims where washes meet, the paper's grain
    ink          brown ink lines on cream paper where the photo has edges, a two-tone wash for dark areas
The last three change structure (texture goes, patches and lines appear), not only colour.

Each recipe trains the project's own loop (gan.training.trainer) for --steps steps with one seed, translates the held-out
photos with the run's checkpoint as test.py would (EMA weights when the recipe keeps them), and reports:
PSNR and SSIM of G(x) against T(x); the identity baseline (x against T(x): what doing nothing scores); a
checkerboard score, the share of spectral energy on the Nyquist row and column of the output's luminance
divided by the same share for T(x) (1 = as much period-2 energy as the target; transposed-convolution
checkerboards push it up); and a sample sheet PNG (x | T(x) | G(x) rows). One JSON line per recipe.

Recipes are the paper's recipe (configs/photo2monet.yaml) scaled down to --ngf/--blocks and --size, each
lever added on top of the previous (reference -> resize_conv -> identity -> color -> ema), the recommended
configs/photo2painting.yaml scaled the same way (and `recommended_idt`, with the reference's identity loss 0.5:
the recommended recipe before the structural maps; `recommended_noidt` is the same as `recommended`), CUT and
FastCUT (configs/cut.yaml, fastcut.yaml), single levers on top of `color` (sn_d, lr_d_half, warmup, idt_low),
and `paired`: the paired bound, the recommended generator trained with plain L1 against T(x) of its own
training photos (pairs no unpaired recipe sees), same crops, flips, steps and optimiser. When `paired` runs,
a last line per recipe gives its share of the way from doing nothing to the bound (PSNR and SSIM) and its
training wall time. Default grid: about 22 minutes on 2 CPU cores (4.5 minutes a recipe).

Any recipe can take more overrides: `recommended_noidt+model.discriminator.scales=2+model.cyclegan.cycle_lowpass=4` is
`recommended_noidt` with those two keys set (one lever tried without editing this file). For every recipe the
JSON line also has `terms`, the weighted loss terms of the last tenth of training (what each term costs it),
`terms_plot`, a PNG of each term against steps, and for two-way kinds `rec_psnr`, PSNR of F(G(x)) against x
(how much of the photo the cycle gets back), whose images are the sheet's fourth column.

Equal wall time instead of equal steps: `--seconds S` measures each recipe's step cost on this machine (a
60-step run of the recipe, timed by the trainer's own throughput after the first window) and trains it for
S / cost steps, with its schedule set for that many; `steps` and `seconds_per_step` are in its JSON line. A
recipe whose step costs half trains twice the steps.
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
    "idt_low": ["model.cyclegan.lambda_identity=0.1"],
}
DEFAULT_GRID = ["reference", "resize_conv", "identity", "color", "ema"]
# Recipes of their own config (scaled like the others): the recommended one, with and without an identity loss, the
# CUT kinds (their PatchNCE layers cut to the encoder the scaled generator has)
OWN = {
    "recommended": ("photo2painting.yaml", []),
    # the recommended recipe until the structural maps: with the reference's identity loss
    "recommended_idt": ("photo2painting.yaml", ["model.cyclegan.lambda_identity=0.5"]),
    "recommended_noidt": ("photo2painting.yaml", ["model.cyclegan.lambda_identity=0"]),  # = recommended now (kept name)
    # is it the cycle's cost of lossy changes? the same with a cycle weight of 1 instead of 10
    "recommended_noidt_cycle1": ("photo2painting.yaml", ["model.cyclegan.lambda_identity=0", "model.cyclegan.lambda_cycle=1"]),
    # or the identity start? the plain generator (no skip path), no identity loss
    "plain_noidt": ("photo2painting.yaml", ["model.cyclegan.lambda_identity=0", "model.generator.skip=none"]),
    "cut": ("cut.yaml", []),
    "fastcut": ("fastcut.yaml", []),
}


# The paired bound: the recommended generator trained with plain L1 against T(x) of its own training photos, on
# the same random crops and flips, steps and optimiser. A model kind of the benchmark's own (one class, one
# entry in the kinds dict): its images are x | T(x) side by side, which it cuts into the pair.
PAIRED = ["model.kind=paired", "data.preprocess=none", "data.flip=false"]


def paired_kind():
    import torch

    from gan.models.base import TrainModel
    from gan.nn.networks import build_generator, inference_generator

    class Paired(TrainModel):
        optimizers = {"g": ("g_ab",)}
        generators = {"AtoB": "g_ab"}
        domains = ("A",)

        def __init__(self, g_ab, size: int, seed: int):
            super().__init__()
            self.g_ab, self.size = g_ab, size
            self.rng = torch.Generator().manual_seed(seed)

        @classmethod
        def build(cls, cfg, device, rank=0, vgg_weights=None):
            return cls(build_generator(cfg.model), cfg.data.crop_size, cfg.seed * 1000 + 7).to(device)

        @property
        def nets(self):
            return {"g_ab": self.g_ab}

        @staticmethod
        def inference_net(model_cfg, name):
            return inference_generator(model_cfg, name, ("g_ab",))

        def training_step(self, batch, ctx):
            pair = batch["A"]
            w = pair.shape[-1] // 2
            x, y = pair[..., :w], pair[..., w:]
            top, left = (int(torch.randint(0, n - self.size + 1, (), generator=self.rng)) for n in x.shape[-2:])
            x, y = (t[..., top: top + self.size, left: left + self.size] for t in (x, y))
            if torch.rand((), generator=self.rng) < 0.5:
                x, y = x.flip(-1), y.flip(-1)
            with ctx.autocast():
                fake = self.g_ab(x)
                loss = (fake.float() - y.float()).abs().mean()
            ctx.update("g", loss, {"l1": loss})
            return {"loss_g": loss.detach(), "l1": loss.detach()}, {"real_a": x, "real_b": y, "fake_b": fake.detach()}

        def sample_rows(self, images):
            return [[images[k][0] for k in ("real_a", "real_b", "fake_b")]], "x | T(x) | G(x)"

        def rank_state(self):
            return {"rng": self.rng.get_state()}

        def load_rank_state(self, state, device):
            self.rng.set_state(state["rng"])

    return Paired


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


def oil(img: np.ndarray) -> np.ndarray:
    """Oil-paint-like: flat patches of paint (mean-shift flattening: texture inside a region goes, its edges
    stay), a warm grade, and dark outlines drawn on the patches' borders. uint8 -> float [0, 1]."""
    import cv2

    flat = cv2.pyrMeanShiftFiltering(np.ascontiguousarray(img), 5, 28).astype(np.float64) / 255.0
    warm = np.clip(flat @ np.array([[1.0, 0.12, 0.0], [0.02, 0.95, 0.03], [0.0, 0.1, 0.78]]).T + 0.03, 0, 1)
    return warm * (1 - 0.8 * edge_lines(flat))


def watercolour(img: np.ndarray) -> np.ndarray:
    """Watercolour-like: soft, lightened washes (smoothed colour, mixed toward the paper), pigment pooling as a
    darker rim where washes meet, and the paper's grain. uint8 -> float [0, 1]."""
    import cv2

    soft = cv2.bilateralFilter(np.ascontiguousarray(img), 7, 60, 7).astype(np.float32) / 255.0
    soft = cv2.GaussianBlur(soft, (0, 0), 1.0)
    wash = 0.72 * soft + 0.28 * np.array([0.98, 0.96, 0.9], np.float32)
    lum = soft @ np.array([0.299, 0.587, 0.114], np.float32)
    rim = np.clip(np.abs(lum - cv2.GaussianBlur(lum, (0, 0), 2.0)) * 6, 0, 1)[..., None]
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    grain = 0.03 * (np.sin(xx * 1.7 + yy * 0.3) * np.sin(yy * 1.3 - xx * 0.4))[..., None]  # the paper's tooth
    return np.clip(wash * (1 - 0.45 * rim) + grain, 0, 1).astype(np.float64)


def ink(img: np.ndarray) -> np.ndarray:
    """Ink drawing: dark brown lines on cream paper where the (smoothed) photo has edges, and a light wash in
    two tones for its dark areas; no photo texture left. uint8 -> float [0, 1]."""
    import cv2

    x = cv2.GaussianBlur(img, (0, 0), 1.2).astype(np.float64) / 255.0
    lum = x @ np.array([0.299, 0.587, 0.114])
    wash = np.where(lum < 0.3, 0.55, np.where(lum < 0.55, 0.8, 1.0))[..., None]
    paper, ink_colour = np.array([0.96, 0.93, 0.84]), np.array([0.18, 0.12, 0.08])
    lines = edge_lines(x) ** 0.7
    y = paper * wash
    return y * (1 - lines) + ink_colour * lines


MAPS = ("color", "edges", "oil", "watercolour", "ink")


def apply_map(img: np.ndarray, kind: str) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> the map T of it, uint8."""
    x = img.astype(np.float64) / 255.0
    if kind == "oil":
        y = oil(img)
    elif kind == "watercolour":
        y = watercolour(img)
    elif kind == "ink":
        y = ink(img)
    else:
        y = tone_map(x)
        if kind == "edges":
            y = y * (1 - 0.75 * edge_lines(x))
    return np.clip(np.rint(y * 255), 0, 255).astype(np.uint8)


PHOTOS = ("astronaut", "coffee", "rocket", "motorcycle_left", "chelsea")
# --paintings other: the paintings are T of photos of other things (and the training photos lose chelsea to them),
# as a painter's subjects differ from a user's photos: a recipe that copies content statistics instead of
# learning T fails here
OTHER_PHOTOS = ("chelsea", "motorcycle_right", "hubble", "ihc", "retina")


def photo_crops(seed: int = 0, names: tuple[str, ...] = PHOTOS):
    """crops(n, size): the benchmark's photos (`names`), n random crops resized to size x size, drawn in order
    from one generator seeded by `seed` (every script that builds the maps' data draws the same crops)."""
    from gan.data.sample import _crop, _photos

    photos = _photos()
    if any(n not in photos for n in names):
        from skimage import data

        photos.update(hubble=data.hubble_deep_field(), retina=data.retina())
    rng = np.random.default_rng(seed)
    src = [photos[k] for k in names]

    def crops(n: int, size: int) -> list[np.ndarray]:
        return [cv_resize(_crop(src[i % len(src)], rng), size) for i in range(n)]

    return crops


def build_data(root: Path, kind: str, n_train: int, n_test: int, crop: int, seed: int = 0,
               paintings: str = "same", n_paintings: int = 0) -> list[np.ndarray]:
    """trainA, trainB (mapped), testA (+ returns the held-out photos). `paintings`: "same" (trainB is T of other
    crops of the same photos) or "other" (T of photos of other things: OTHER_PHOTOS); `n_paintings` (0: n_train)
    keeps only the first that many of trainB (the photos and held-out crops stay the same)."""
    from PIL import Image

    crops = photo_crops(seed, PHOTOS if paintings == "same" else tuple(n for n in PHOTOS if n not in OTHER_PHOTOS))
    train_a = crops(n_train, crop)
    painted = crops if paintings == "same" else photo_crops(seed + 1, OTHER_PHOTOS)
    train_b = [apply_map(c, kind) for c in painted(n_train, crop)][: n_paintings or n_train]
    for folder, imgs in (("trainA", train_a), ("trainB", train_b)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(imgs):
            Image.fromarray(img).save(root / folder / f"{i:03d}.png")
    # The paired bound's data: each training photo beside T of it (pairs no unpaired recipe sees)
    paired = root.parent / "paired"
    (paired / "trainA").mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(train_a):
        Image.fromarray(np.concatenate([img, apply_map(img, kind)], 1)).save(paired / "trainA" / f"{i:03d}.png")
    test = crops(n_test, crop)
    for folder in ("testA", "testB"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(test):
        Image.fromarray(img).save(root / "testA" / f"{i:03d}.png")
        Image.fromarray(apply_map(img, kind)).save(root / "testB" / f"{i:03d}.png")
    for folder in ("testA", "testB"):
        (paired / folder).mkdir(exist_ok=True)
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


def scores(xs, targets, outs) -> dict:
    """PSNR and SSIM of the outputs against the targets, the same for doing nothing (the inputs themselves), and
    the checkerboard score: the outputs' mean Nyquist share over the targets'."""
    def mean(f, a, b, digits):
        return round(float(np.mean([f(u, v) for u, v in zip(a, b)])), digits)

    return {"psnr": mean(psnr, outs, targets, 3), "ssim": mean(ssim, outs, targets, 4),
            "identity_psnr": mean(psnr, xs, targets, 3), "identity_ssim": mean(ssim, xs, targets, 4),
            "checkerboard": round(float(np.mean([nyquist_share(o) for o in outs]) /
                                        max(np.mean([nyquist_share(t) for t in targets]), 1e-12)), 3)}


def nyquist_share(img: np.ndarray) -> float:
    """Share of the luminance spectrum's energy (mean removed) on the Nyquist row and column."""
    lum = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    h, w = lum.shape
    power = np.abs(np.fft.fft2(lum - lum.mean())) ** 2
    nyq = power[h // 2, :].sum() + power[:, w // 2].sum() - power[h // 2, w // 2]
    return float(nyq / max(power.sum(), 1e-12))


# ---------------------------------------------------------------------------------------------- runs


def recipe_overrides(name: str, blocks: int = 4) -> tuple[Path, list[str]]:
    """A recipe's config file and overrides. `BASE+KEY=VALUE+KEY=VALUE` is the recipe BASE with more overrides
    (one lever tried without editing this file: `recommended_noidt+model.discriminator.n_layers=2`)."""
    if "+" in name:
        base, *extra = name.split("+")
        config, levers = recipe_overrides(base, blocks)
        return config, levers + extra
    if name in OWN:
        config, levers = OWN[name]
        if config in ("cut.yaml", "fastcut.yaml"):
            layers = [0, 4, 8, 12, 16] if blocks >= 5 else [0, 4, 8, 12][: 3 + (blocks >= 1)]
            levers = levers + [f"model.cut.nce_layers=[{','.join(map(str, layers))}]"]
        return ROOT / "configs" / config, levers
    if name == "paired":
        return ROOT / "configs" / "photo2painting.yaml", PAIRED
    if name in LEVERS:
        return ROOT / "configs" / "photo2monet.yaml", LEVERS[name]
    if name in SINGLE:
        return ROOT / "configs" / "photo2monet.yaml", LEVERS["color"] + SINGLE[name]
    raise SystemExit(f"unknown recipe {name!r}; choose from {', '.join([*LEVERS, *OWN, 'paired', *SINGLE])}")


def recipe_config(name: str, data: Path, work: Path, args, steps: int | None = None, log_every: int | None = None):
    """The Config a recipe trains with: its YAML and levers, scaled down by the benchmark's arguments (`steps`
    instead of --steps: an equal-time run's own count)."""
    from gan.config import load_config

    steps = steps or args.steps
    log_every = log_every or max(1, steps // 10)
    config, levers = recipe_overrides(name, args.blocks)
    if name == "paired":
        data = data.parent / "paired"
    scale = [
        # The recipes' configs map the public *2photo layout (photos in trainB); here A is trainA.
        f"name={slug(name)}", f"data.root={data}", "data.train_a=trainA", "data.train_b=trainB", "data.test_a=testA",
        "data.test_b=testB", "data.preprocess=crop", f"data.load_size={args.crop}",
        f"data.crop_size={args.size}", "data.num_workers=1", f"model.generator.ngf={args.ngf}",
        f"model.generator.n_blocks={args.blocks}", f"model.discriminator.ndf={args.ndf}",
        f"train.max_steps={steps}", f"train.log_every={log_every}",
        f"train.sample_every={steps}", f"train.save_every={steps}", "train.keep_last=1",
        f"train.output_dir={work}", "train.device=cpu", "train.precision=fp32", "tracking.wandb.mode=disabled",
        "eval.every=0", f"seed={args.seed}",
    ]
    return load_config(config, scale + levers)


def run_recipe(name: str, data: Path, work: Path, test: list[np.ndarray], kind: str, args) -> dict:
    import torch

    from gan.inference.load import load_generator
    from gan.data.io import to_tensor, to_uint8
    from gan.models import KINDS
    from gan.checkpoint.schema import run_dir_of
    from gan.training.trainer import train

    steps, per_step = args.steps, None
    if args.seconds:  # equal wall time: as many steps as this recipe's own step cost fits in the budget
        per_step = seconds_per_step(name, data, work / "probe", args)
        steps = max(1, round(args.seconds / per_step))
    cfg = recipe_config(name, data, work, args, steps)
    torch.manual_seed(args.seed)
    probes = (alignment_probe(data, test, kind),) if cfg.model.kind != "paired" and not args.seconds else ()
    start = time.perf_counter()
    ckpt = train(cfg, probes=probes)
    seconds = time.perf_counter() - start
    net, info = load_generator(ckpt, "AtoB", "cpu")
    back = None
    if "BtoA" in KINDS[cfg.model.kind].generators:  # a two-way kind: F(G(x)) goes on the sheet too
        back, _ = load_generator(ckpt, "BtoA", "cpu")
    outs, recs = [], []
    with torch.no_grad():
        for img in test:
            y = net(to_tensor(img)[None])
            outs.append(to_uint8(y[0]))
            if back is not None:
                recs.append(to_uint8(back(y.clamp(-1, 1))[0]))
    targets = [apply_map(img, kind) for img in test]
    result = {
        "benchmark": "quality", "map": kind, "recipe": name, "steps": steps, "size": args.size,
        "ngf": args.ngf, "blocks": args.blocks, "seed": args.seed, "paintings": args.paintings,
        "painting_images": args.painting_images or args.train_images, **scores(test, targets, outs),
        "ema": "EMA" in info.description, "train_seconds": round(seconds, 1),
    }
    result["psnr_vs_identity"] = round(result["psnr"] - result["identity_psnr"], 3)
    if per_step is not None:
        result["seconds_per_step"] = per_step  # unrounded: `steps` is round(seconds / it), exactly
    if recs:  # how much of the photo comes back through F: what the cycle term is paying for
        result["rec_psnr"] = round(float(np.mean([psnr(r, x) for r, x in zip(recs, test)])), 3)
    out = Path(args.out)
    result["sheet"] = str(write_sheet(test, targets, outs, out / f"quality_{kind}_{slug(name)}.png", recs))
    curve = read_terms(run_dir_of(ckpt))
    losses_curve = [{k: v for k, v in row.items() if not k.startswith("align_")} for row in curve]
    result["terms"] = losses_curve[-1] if curve else {}  # the last window's mean of each weighted loss term
    if curve:
        result["terms_plot"] = str(plot_terms(losses_curve, out / f"terms_{kind}_{slug(name)}.png", f"{kind}: {name}"))
    aligned = [{"step": row["step"], **{k[6:]: v for k, v in row.items() if k.startswith("align_")}} for row in curve]
    if len(aligned[-1] if aligned else ()) > 1:  # where the terms push the output (gan.evaluation.alignment)
        result["alignment"] = {k: v for k, v in aligned[-1].items() if k != "step"}
        result["alignment_curve"] = aligned
        result["alignment_plot"] = str(plot_terms(aligned, out / f"alignment_{kind}_{slug(name)}.png",
                                                  f"{kind}: {name}: cosine with T(x) - G(x)", signed=True))
    return result


def alignment_probe(data: Path, test: list[np.ndarray], kind: str):
    """gan.evaluation.alignment's probe on the held-out photos and their known targets, with four training
    paintings for the terms that compare with real ones."""
    from PIL import Image

    from gan.data.io import to_tensor
    from gan.evaluation.alignment import AlignmentProbe

    import torch

    paintings = sorted((data / "trainB").glob("*.png"))[:4]
    size = test[0].shape[0]
    y = [cv_resize(np.asarray(Image.open(p).convert("RGB")), size) for p in paintings]
    stack = lambda imgs: torch.stack([to_tensor(i) for i in imgs])  # noqa: E731
    return AlignmentProbe(stack(test), stack([apply_map(img, kind) for img in test]), stack(y))


def seconds_per_step(name: str, data: Path, work: Path, args, windows: int = 4, window: int = 15) -> float:
    """One training step's wall time for a recipe on this machine: a short run of the recipe itself, timed by
    the trainer's own per-window throughput, the first window (start-up, first-touch allocations) left out."""
    from gan.checkpoint.schema import run_dir_of
    from gan.checkpoint.runs import read_metrics
    from gan.training.trainer import train

    cfg = recipe_config(name, data, work, args, steps=windows * window, log_every=window)
    rows = read_metrics(run_dir_of(train(cfg)))[1:]
    return float(np.mean([cfg.data.batch_size / row["img_per_s"] for row in rows]))


def split_recipes(text: str) -> list[str]:
    """--recipes at the commas outside brackets and braces (`a+key=[x,y],b` is two recipes)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        depth += (ch in "[{") - (ch in "]}")
        if ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    return [r for r in out if r]


def slug(name: str) -> str:
    """A recipe name as a file / run name (`recommended_noidt+train.lr_scales={d: 2}` has characters neither
    may hold)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def read_terms(run_dir: Path) -> list[dict]:
    """Per logged window of a run: step and the weighted loss terms (everything but rates and learning rates)."""
    from gan.checkpoint.runs import read_metrics

    rows = read_metrics(run_dir)
    skip = ("img_per_s", "data_wait", "lr", "epoch", "cuda_mem")
    return [{k: round(v, 4) for k, v in row.items() if isinstance(v, (int, float)) and not k.startswith(skip)}
            for row in rows]


def plot_terms(curve: list[dict], path: Path, title: str, w: int = 520, h: int = 300, signed: bool = False) -> Path:
    """A line per loss term against steps (PIL only): what each term costs the recipe as it trains. `signed`:
    values from -1 to 1 (the alignment cosines), with the zero line drawn."""
    from PIL import Image, ImageDraw

    names = sorted({k for row in curve for k in row if k != "step" and not k.startswith("loss_")},
                   key=lambda k: list(curve[-1]).index(k) if k in curve[-1] else 99)
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = 40, 22, w - 130, h - 24
    top_value = 1.0 if signed else max([row.get(k, 0) for row in curve for k in names] + [1e-6]) * 1.05
    low = -1.0 if signed else 0.0
    last = max(row["step"] for row in curve)
    draw.rectangle([left, top, right, bottom], outline=(120, 120, 120))
    draw.text((left, 4), title, fill="black")
    draw.text((4, top), f"{top_value:.2f}", fill="black")
    draw.text((4, bottom - 10), f"{low:g}", fill="black")
    y_of = lambda v: bottom - (bottom - top) * (v - low) / (top_value - low)  # noqa: E731
    if signed:
        draw.line([(left, y_of(0)), (right, y_of(0))], fill=(180, 180, 180))
    draw.text((right - 40, bottom + 6), f"step {last}", fill="black")
    palette = [(200, 30, 30), (30, 90, 200), (20, 150, 60), (200, 120, 0), (140, 40, 170), (0, 150, 160),
               (120, 120, 120), (0, 0, 0)]
    for i, k in enumerate(names):
        colour = palette[i % len(palette)]
        points = [(left + (right - left) * row["step"] / last, y_of(row[k])) for row in curve if k in row]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        draw.text((right + 8, top + 14 * i), f"{k} {curve[-1].get(k, 0):.3f}", fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def write_sheet(xs, targets, outs, path: Path, recs=(), rows: int = 4) -> Path:
    """Rows of x | T(x) | G(x) (| F(G(x)) for two-way kinds), each doubled in size (nearest) so artifacts stay
    visible."""
    from PIL import Image

    gap = 4
    columns = [xs[:rows], targets, outs] + ([recs] if len(recs) else [])
    cells = [[np.repeat(np.repeat(c, 2, 0), 2, 1) for c in row] for row in zip(*columns)]
    h, w = cells[0][0].shape[:2]
    sheet = np.full((len(cells) * (h + gap) + gap, len(columns) * (w + gap) + gap, 3), 255, np.uint8)
    for r, row in enumerate(cells):
        for c, img in enumerate(row):
            sheet[gap + r * (h + gap): gap + r * (h + gap) + h, gap + c * (w + gap): gap + c * (w + gap) + w] = img
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--map", default="color", choices=MAPS)
    p.add_argument("--recipes", default=",".join(DEFAULT_GRID), help="comma-separated recipe names")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=0,
                   help="equal wall time instead of equal steps: each recipe trains as many steps as its own "
                        "step cost (measured first, on a short run) fits in this many seconds")
    p.add_argument("--size", type=int, default=64, help="training crop size")
    p.add_argument("--crop", type=int, default=128, help="size of the stored images (crops are taken from them)")
    p.add_argument("--ngf", type=int, default=16)
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--train-images", type=int, default=64)
    p.add_argument("--test-images", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--paintings", default="same", choices=["same", "other"],
                   help="same: the paintings are T of other crops of the training photos; other: T of photos of "
                        "other things (a painter's subjects are not the user's)")
    p.add_argument("--painting-images", type=int, default=0,
                   help="paintings in trainB (default: --train-images): few paintings, as people bring 10-30")
    p.add_argument("--out", default=str(ROOT / "results" / "quality"), help="folder for the sample sheets")
    args = p.parse_args(argv)

    import logging

    from gan import ConfigError
    from gan.cli import setup_logging

    setup_logging(logging.WARNING)  # one JSON line per recipe, not the trainer's chatter
    from gan.models import KINDS

    KINDS["paired"] = paired_kind()  # the benchmark's own kind, for the paired bound
    recipes = split_recipes(args.recipes)
    for name in recipes:  # every recipe's config is valid before the first one trains for minutes
        try:
            recipe_config(name, ROOT / "data", ROOT / "runs", args)
        except ConfigError as e:
            hint = (" (the paired bound trains one pair a step: for a recipe with data.batch_size=B, run paired "
                    "with B times the --steps, the same number of images)") if name.startswith("paired+") else ""
            p.error(f"recipe {name!r}: {e}{hint}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        test = build_data(tmp / "data", args.map, args.train_images, args.test_images, args.crop, args.seed,
                          args.paintings, args.painting_images)
        results = []
        for name in recipes:
            results.append(run_recipe(name, tmp / "data", tmp / "runs", test, args.map, args))
            print(json.dumps(results[-1]), flush=True)
    bound = next((r for r in results if r["recipe"] == "paired"), None)
    if bound is not None:  # each recipe as the share of the way from doing nothing to the paired bound
        for r in results:
            share = {k: round((r[k] - r[f"identity_{k}"]) / (bound[k] - r[f"identity_{k}"]), 3)
                     if bound[k] != r[f"identity_{k}"] else None for k in ("psnr", "ssim")}
            print(json.dumps({"benchmark": "quality_share", "map": args.map, "recipe": r["recipe"],
                              "share_psnr": share["psnr"], "share_ssim": share["ssim"], "psnr": r["psnr"],
                              "ssim": r["ssim"], "train_seconds": r["train_seconds"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
