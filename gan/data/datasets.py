"""From folders of image files to batches of tensors for training.

    scan_domain(folder)          a domain's readable images (each rank checks its share)
    build_transform(cfg.data)    albumentations pipeline for a preset + flip + extra transforms
    UnpairedDataset / UnpairedSampler / build_train_data    the reference's unpaired sampling, made resumable

Randomness: every sample's choices (the B partner, both augmentations) come from a generator seeded with
(seed, epoch, index), so batches are the same with any number of workers and a resumed run picks up at the
same sample.
"""

from __future__ import annotations

import difflib
import functools
import logging
import math
import random
import signal
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gan import ConfigError, GanError, ImageDecodeError
from gan.config.schema import Config, DataConfig, TransformSpec
from gan.cpus import worker_count
from gan.data.io import check_image, find_images, load_image, resize_center_crop, to_tensor

if TYPE_CHECKING:
    import albumentations as A

log = logging.getLogger("gan")


@dataclass
class Domain:
    """The usable images of one folder, and what was skipped (path, reason)."""

    folder: Path
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def scan_domain(folder: str | Path, what: str = "domain", rank: int = 0, world_size: int = 1) -> Domain:
    """Find and check the images of a folder; warn once per unreadable file; fail clearly on none usable.
    Under DDP each process decodes only its share of the files (every world_size-th) and the verdicts are
    gathered, so all processes agree on the list and only rank 0 prints the warnings."""
    from gan.distributed import all_gather_object

    folder = Path(folder)
    if not folder.exists():
        hint = (f" (set {what}=FOLDER, relative to data.root or absolute; the config's default names the public "
                "datasets' folders)") if what.startswith("data.") else ""
        raise GanError(f"{what}: folder not found: {folder}{hint}")
    found = find_images(folder)
    mine = {i: check_image(found[i]) for i in range(rank, len(found), world_size)}
    verdicts: dict[int, str | None] = {}
    for part in all_gather_object(mine):
        verdicts.update(part)
    ok, skipped = [], []
    for i, p in enumerate(found):
        reason = verdicts[i] if i in verdicts else check_image(p)  # (a share no process checked: outside DDP)
        if reason is None:
            ok.append(p)
        else:
            skipped.append((p, reason))
            if rank == 0:
                log.warning("skipping unreadable image %s: %s", p, reason)
    if not ok:
        others = sorted(p.name for p in folder.rglob("*") if p.is_file())
        shown = ", ".join(others[:5]) + (f", ... ({len(others)} files)" if len(others) > 5 else "")
        there = (f"{len(skipped)} unreadable image(s)" if skipped else "no image files") + (
            f"; files there: {shown}" if others else "; the folder is empty")
        raise GanError(f"{what}: no usable image in {folder} ({there}). Expected image files such as "
                       ".jpg, .png, .webp, .tif, .bmp, .gif (searched recursively).")
    return Domain(folder, ok, skipped)


def style_image_batches(source: str | Path, size: int, chunk: int):
    """Style images of a file or folder, short side resized to `size` and centre-cropped square, as float
    batches of at most `chunk` images in [-1, 1]: read lazily, one chunk at a time."""
    paths = find_images(source)
    if not paths:
        raise GanError(f"loss.vgg.style_images: no image in {source}")
    for i in range(0, len(paths), chunk):
        yield torch.stack([to_tensor(resize_center_crop(load_image(p), size)) for p in paths[i:i + chunk]])


# ------------------------------------------------------------------------------------- transforms


def _upscale_to_min(img: np.ndarray, min_side: int, **_) -> np.ndarray:
    """Upscale (keeping aspect) so both sides are >= min_side; images big enough pass untouched."""
    h, w = img.shape[:2]
    scale = min_side / min(h, w)
    if scale <= 1:
        return img
    size = (max(min_side, round(w * scale)), max(min_side, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)


def _scale_width(img: np.ndarray, width: int, min_height: int, **_) -> np.ndarray:
    """The reference's scale_width: width -> `width`, height by aspect but at least `min_height`."""
    h, w = img.shape[:2]
    new_h = max(min_height, round(h * width / w))
    if (w, h) == (width, new_h):
        return img
    return cv2.resize(img, (width, new_h), interpolation=cv2.INTER_CUBIC if width > w else cv2.INTER_AREA)


def _albumentations():
    """Imported on first use: translation and evaluation never need it (saves ~0.4 s of start-up).
    (train.py sets NO_ALBUMENTATIONS_UPDATE=1, which skips albumentations' online version check at import;
    library code leaves the environment alone.)"""
    import albumentations

    return albumentations


def _lambda(fn, **kw) -> A.Lambda:
    return _albumentations().Lambda(image=functools.partial(fn, **kw), p=1.0)


def build_extra_transform(spec: TransformSpec) -> A.BasicTransform:
    """An albumentations transform from its class name and parameters; GanError on unknown name/bad params."""
    A = _albumentations()
    cls = getattr(A, spec.name, None)
    if not (isinstance(cls, type) and issubclass(cls, A.BasicTransform)):
        names = [n for n in dir(A) if isinstance(getattr(A, n), type) and issubclass(getattr(A, n), A.BasicTransform)]
        close = difflib.get_close_matches(spec.name, names, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else " (see albumentations' list of transforms)"
        raise GanError(f"unknown albumentations transform {spec.name!r}{hint}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # albumentations warns (not raises) on some unknown arguments
            return cls(**spec.params)
    except Exception as e:  # TypeError / pydantic ValidationError / ValueError / UserWarning
        msg = " ".join(str(e).split())
        raise GanError(f"{spec.name}({', '.join(f'{k}={v!r}' for k, v in spec.params.items())}): "
                       f"invalid parameters: {msg[:400]}") from None


def build_transform(cfg: DataConfig, train: bool = True) -> A.Compose:
    """Preset geometry (+ horizontal flip and extra transforms when training), on uint8 RGB arrays."""
    A = _albumentations()
    load, crop = cfg.load_size, cfg.crop_size
    crop_op = A.RandomCrop(crop, crop) if train else A.CenterCrop(crop, crop)
    ops: list = []
    if cfg.preprocess == "resize_and_crop":
        ops += [A.Resize(load, load, interpolation=cv2.INTER_CUBIC), crop_op]
    elif cfg.preprocess == "crop":
        ops += [_lambda(_upscale_to_min, min_side=crop), crop_op]
    elif cfg.preprocess == "scale_width":
        ops += [_lambda(_scale_width, width=load, min_height=crop)]
    elif cfg.preprocess == "scale_width_and_crop":
        ops += [_lambda(_scale_width, width=load, min_height=crop), _lambda(_upscale_to_min, min_side=crop), crop_op]
    if cfg.preprocess in ("scale_width", "none"):
        # The generator needs sizes divisible by 4; pad (reflect) rather than distort.
        ops.append(A.PadIfNeeded(min_height=None, min_width=None, pad_height_divisor=4, pad_width_divisor=4,
                                 border_mode=cv2.BORDER_REFLECT_101))
    if train and cfg.flip:
        ops.append(A.HorizontalFlip(p=0.5))
    if train:
        ops += check_extra_transforms(cfg)
    return A.Compose(ops)


def check_extra_transforms(cfg: DataConfig) -> list:
    """The albumentations transforms of data.extra_transforms, or a ConfigError naming the entry."""
    out = []
    for i, spec in enumerate(cfg.extra_transforms):
        try:
            out.append(build_extra_transform(spec))
        except GanError as e:
            raise ConfigError(f"data.extra_transforms[{i}]: {e}") from None
    return out


# ----------------------------------------------------------------------------------- dataset/sampler


class UnpairedDataset(Dataset):
    """Unpaired A/B samples as in the reference: length max(|A|, |B|); item i takes A[i % |A|] and a random B
    (B[i % |B|] with serial_batches). Indexed by (epoch, i) so every draw is a function of (seed, epoch, i)."""

    def __init__(self, paths_a: list[Path], paths_b: list[Path] | None, transform: A.Compose, seed: int = 0,
                 serial_batches: bool = False, warn: bool = True, extra: int = 0):
        # paths_b None: a model kind that reads domain A only (the items then have no "B").
        # extra > 0: each item also carries that many more random images of each domain ("A_more", "B_more":
        # (extra, C, H, W)), for discriminators that judge more images per update than the generators translate.
        self.paths_a, self.paths_b = list(paths_a), (list(paths_b) if paths_b is not None else None)
        self.extra = extra
        self.warn = warn  # False on ranks > 0: rank 0 speaks for all
        self.transform = transform
        self.seed = seed
        self.serial_batches = serial_batches
        self._warned: set[Path] = set()

    def __len__(self) -> int:
        return max(len(self.paths_a), len(self.paths_b or ()))

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, index])
        ia = index % len(self.paths_a)
        nb = len(self.paths_b or [None])
        ib = index % nb if self.serial_batches else int(rng.integers(nb))
        seed_a, seed_b = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
        a, path_a = self._load(self.paths_a, ia)
        item = {"A": self._augment(a, seed_a), "A_path": str(path_a)}
        if self.paths_b is not None:
            b, path_b = self._load(self.paths_b, ib)
            item.update(B=self._augment(b, seed_b), B_path=str(path_b))
        if self.extra:  # drawn after the item's own choices, so they stay what they were without extras
            for key, paths in (("A", self.paths_a), ("B", self.paths_b)):
                if paths is not None:
                    picks = rng.integers(len(paths), size=self.extra)
                    seeds = rng.integers(0, 2**31 - 1, size=self.extra)
                    item[f"{key}_more"] = torch.stack([self._augment(self._load(paths, int(i))[0], int(sd))
                                                       for i, sd in zip(picks, seeds)])
        return item

    def _augment(self, img: np.ndarray, seed: int) -> torch.Tensor:
        self.transform.set_random_seed(seed)
        return to_tensor(self.transform(image=img)["image"])

    def _load(self, paths: list[Path], i: int) -> tuple[np.ndarray, Path]:
        """The image at i, or (if it stopped decoding since the scan) the next one that decodes."""
        for k in range(len(paths)):
            path = paths[(i + k) % len(paths)]
            try:
                return load_image(path), path
            except ImageDecodeError as e:
                if self.warn and path not in self._warned:
                    self._warned.add(path)
                    log.warning("skipping unreadable image %s", e)
        raise GanError(f"no image of {paths[0].parent} decodes any more")


class UnpairedSampler(Sampler):
    """Yields (epoch, index) keys. Shuffled with a generator seeded by (seed + epoch), split across ranks
    exactly like torch's DistributedSampler (padded to a multiple of world_size, rank::world_size), and able
    to start mid-epoch: `set_epoch(e, start=k)` skips this rank's first k samples (resume)."""

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        self.length, self.seed, self.shuffle = length, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def per_rank(self) -> int:
        return math.ceil(self.length / self.world_size)

    def __len__(self) -> int:
        return max(0, self.per_rank() - self.start)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        total = self.per_rank() * self.world_size
        order += (order * math.ceil(total / len(order)))[: total - len(order)]
        for i in order[self.rank: total: self.world_size][self.start:]:
            yield (self.epoch, i)


def _seed_worker(worker_id: int) -> None:
    # Per-sample RNGs make batches independent of workers; this seeds anything else (numpy, random) per
    # worker, keeps OpenCV from spawning threads inside each worker, and leaves Ctrl-C to the main process
    # (which finishes its step and saves a checkpoint: workers must still be alive for that).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    cv2.setNumThreads(0)


@dataclass
class TrainData:
    loader: DataLoader
    sampler: UnpairedSampler
    domain_a: Domain
    domain_b: Domain | None  # None: the model kind reads domain A only

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.per_rank() // self.loader.batch_size

    def set_position(self, epoch: int, step_in_epoch: int) -> None:
        self.sampler.set_epoch(epoch, start=step_in_epoch * self.loader.batch_size)


def domain_dir(cfg: DataConfig, split: str) -> Path:
    """data.root / data.<split> (an absolute data.<split> stands on its own)."""
    return Path(cfg.root) / getattr(cfg, split)


def ensure_sample_dataset(cfg: DataConfig) -> None:
    """Build the embedded sample dataset on first use when the config points at datasets/sample."""
    root = Path(cfg.root)
    if root.parts[-2:] == ("datasets", "sample") and not (root / cfg.train_a).exists():
        from gan.data.sample import build_sample_dataset

        build_sample_dataset(root)


def build_train_data(cfg: Config, rank: int = 0, world_size: int = 1, device: torch.device | None = None,
                     domains: tuple[str, ...] = ("A", "B"), extra: int = 0) -> TrainData:
    """Loader of {"A", "B"} batches; with domains ("A",), of {"A"} only: domain B is then neither needed nor
    scanned (domain_b None). `extra`: more random images of each domain per item (UnpairedDataset)."""
    d = cfg.data
    transform = build_transform(d, train=True)  # config mistakes first, before any folder is scanned
    ensure_sample_dataset(d)
    domain_a = scan_domain(domain_dir(d, "train_a"), "data.train_a", rank, world_size)
    domain_b = scan_domain(domain_dir(d, "train_b"), "data.train_b", rank, world_size) if "B" in domains else None
    dataset = UnpairedDataset(domain_a.paths, domain_b.paths if domain_b else None, transform, cfg.seed,
                              d.serial_batches, warn=rank == 0, extra=extra)
    sampler = UnpairedSampler(len(dataset), cfg.seed, shuffle=not d.serial_batches, rank=rank,
                              world_size=world_size)
    if sampler.per_rank() < d.batch_size:
        raise GanError(f"data.batch_size={d.batch_size} x {world_size} process(es) needs at least "
                       f"{d.batch_size * world_size} images per domain; the larger domain has {len(dataset)}")
    workers = worker_count(d.num_workers, "data.num_workers", announce=rank == 0)
    loader = DataLoader(
        dataset, batch_size=d.batch_size, sampler=sampler, num_workers=workers,
        pin_memory=device is not None and device.type == "cuda", drop_last=True,
        persistent_workers=workers > 0, worker_init_fn=_seed_worker,
        # its own generator for the workers' base seeds: each new iterator draws one, and drawn from the global
        # generator that would shift what training draws from it (DiffAugment, dropout) at every epoch and
        # resume, breaking exact resume
        generator=torch.Generator().manual_seed(cfg.seed * 1000 + rank),
    )
    return TrainData(loader, sampler, domain_a, domain_b)
