"""The configuration schema: the shared sections as typed, frozen dataclasses, and the machinery that reads
YAML into them with strict validation. Each model kind declares its own section (gan/models); the loading
functions here take the kinds dict (`kinds`), which gan.config passes (the one in gan/models/__init__.py):

    cfg = gan.config.load_config("configs/photo2monet.yaml", ["train.lr=1e-4", "data.batch_size=4"])

Every key has a type and a default (the reference CycleGAN recipe). Loading rejects unknown keys (with the
closest valid names), wrong types and impossible values, always naming the dotted path, the value and what
is allowed. `to_dict`/`save_config` write the resolved config; loading it back gives an equal Config.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from gan import ConfigError


Preprocess = Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"]
Norm = Literal["instance", "batch", "none"]
AUGMENTS = ("translation", "cutout", "color", "noise")  # model.discriminator.augment (gan.nn.networks.diff_augment)
# Features of the shared sections that not every kind reads: name -> (dotted key, the value that means off). A kind
# lists those it reads in its `reads` (gan.models.base); `validate` refuses the others when a config turns them on.
SHARED = {
    "fm": ("loss.lambda_fm", 0.0),  # feature matching on the discriminators' features
    "r1": ("loss.r1_gamma", 0.0),  # the R1 penalty
    "patch": ("loss.lambda_patch", 0.0),  # patch matching against real images
    "g_steps": ("loss.g_steps", 1),  # generator updates per step
    "d_steps": ("loss.d_steps", 1),  # discriminator updates per step
    "d_batch": ("model.discriminator.batch", 1),  # images each discriminator judges per update
    "recon": ("model.discriminator.recon", 0.0),  # the discriminators' self-supervised rebuild
}
Metric = Literal["fid", "kid", "mifid", "edge_ssim"]

VGG_LAYERS = (
    "relu1_1", "relu1_2",
    "relu2_1", "relu2_2",
    "relu3_1", "relu3_2", "relu3_3", "relu3_4",
    "relu4_1", "relu4_2", "relu4_3", "relu4_4",
    "relu5_1", "relu5_2", "relu5_3", "relu5_4",
)


@dataclass(frozen=True)
class TransformSpec:
    """One albumentations transform by class name, e.g. {name: ColorJitter, params: {brightness: 0.1}}."""

    name: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    root: str = "datasets/monet2photo"
    train_a: str = "trainA"
    train_b: str = "trainB"
    test_a: str = "testA"
    test_b: str = "testB"
    preprocess: Preprocess = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    extra_transforms: tuple[TransformSpec, ...] = ()
    batch_size: int = 1
    num_workers: int = 4
    serial_batches: bool = False


@dataclass(frozen=True)
class GeneratorConfig:
    ngf: int = 64
    n_blocks: int = 9
    norm: Norm = "instance"
    dropout: bool = False
    upsample: Literal["transpose", "resize_conv"] = "transpose"
    skip: Literal["none", "identity", "color"] = "none"  # start as the identity map (+ a colour path)
    antialias: bool = False  # blur-pooled downsampling, blurred (bilinear) upsampling: CUT's default
    # The skip path fades out over this many steps (weight 1 - step / skip_fade, then 0): starts as the identity,
    # ends as a plain generator whose branch carries the whole image; 0 = it stays
    skip_fade: int = 0
    # What the stride-2 downsampling convs read beyond the image's top and left edges: zeros (the reference) or
    # reflect (the image itself: no dark border for the network to draw streaks from; the same weights)
    padding: Literal["zeros", "reflect"] = "zeros"


@dataclass(frozen=True)
class DiscriminatorConfig:
    ndf: int = 64
    n_layers: int = 3
    norm: Norm = "instance"
    spectral_norm: bool = False
    # pix2pixHD's multi-scale discriminator: this many PatchGANs, the k-th judging the image downsampled k
    # times (3x3 average, stride 2); 1 = the single PatchGAN of the reference
    scales: int = 1
    # DiffAugment (Zhao et al. 2020): what every image a discriminator judges (real or generated, in its own
    # update and the generators') goes through first, differentiably: any of translation, cutout, color.
    # Against a discriminator that memorises a small painting set; () = off
    augment: tuple[str, ...] = ()
    # Images each discriminator judges per update, real and generated alike: the batch's own, plus batch - 1 more
    # real ones of its domain (from the loader) and batch - 1 more generated ones (from its history pool). The
    # discriminator sees more per step at a fraction of a larger data.batch_size's cost (the generators do not
    # translate more); 1 = only the batch's own
    batch: int = 1
    # FastGAN's self-supervised discriminator (Liu et al. 2021): a small decoder rebuilds each real image from the
    # discriminator's coarsest features, and this weighs that L1 error in the discriminator's loss; 0 = off
    recon: float = 0.0


@dataclass(frozen=True)
class InitConfig:
    type: Literal["normal", "xavier", "kaiming", "orthogonal"] = "normal"
    gain: float = 0.02


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "cyclegan"  # a key of the kinds dict (gan/models/__init__.py)
    in_channels: int = 3
    out_channels: int = 3
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    init: InitConfig = field(default_factory=InitConfig)
    # The kind's own section (a frozen dataclass the kind declares as `Section`), written `model.<kind>:` in
    # YAML; None for a kind without one.
    options: Any = field(default=None, metadata={"section_of": "kind"})


@dataclass(frozen=True)
class VGGConfig:
    weights: str = "imagenet"  # imagenet | path/to/vgg19.pth | none (random weights: tests only)
    content_layers: tuple[str, ...] = ("relu4_2",)
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    style_images: Optional[str] = None  # None = the target domain's real batch; or a file/folder


@dataclass(frozen=True)
class LossConfig:
    """The terms more than one kind reads: the adversarial loss (cyclegan, cut) and the VGG terms (cyclegan's
    hybrid mode, style, adain). A term of one kind lives in that kind's section (`model.cyclegan.lambda_cycle`)."""

    gan_mode: Literal["lsgan", "vanilla", "hinge"] = "lsgan"
    # Feature matching (gan.nn.losses.feature_matching_loss): the generator's outputs and real images of its
    # target domain made alike in the distribution of each discriminator layer's features; 0 = off
    lambda_fm: float = 0.0
    fm: Literal["moments", "swd"] = "moments"
    # R1 penalty on real images (Mescheder et al. 2018) with weight gamma / 2, every r1_every-th step (lazy, as
    # StyleGAN2, which then weighs it by r1_every); 0 = off
    r1_gamma: float = 0.0
    r1_every: int = 16
    # Patch matching in pixels against patch_images real images of the target domain (the batch's own and more
    # from the loader): the output's patch_size px patches, every patch_stride px, made alike to theirs, by
    # `patch`: swd (their distributions, sliced Wasserstein, at patch_scales scales: gan.nn.losses.
    # sliced_patch_loss) or nearest (each pulled toward its nearest real patch: nearest_patch_loss); 0 = off
    lambda_patch: float = 0.0
    patch: Literal["swd", "nearest"] = "swd"
    patch_size: int = 8
    patch_stride: int = 4
    patch_images: int = 4
    patch_scales: int = 1
    # The D:G step ratio: generator and discriminator updates per training step, each on the step's batch
    g_steps: int = 1
    d_steps: int = 1
    lambda_content: float = 0.0
    lambda_style: float = 0.0
    vgg: VGGConfig = field(default_factory=VGGConfig)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    epochs_decay: int = 100
    max_steps: Optional[int] = None
    lr: float = 0.0002
    beta1: float = 0.5
    beta2: float = 0.999
    lr_policy: Literal["linear", "step", "cosine"] = "linear"
    lr_step_epochs: int = 50  # step policy: multiply the lr by lr_gamma every this many epochs
    lr_gamma: float = 0.1
    lr_scales: dict = field(default_factory=dict)  # {optimizer name: lr multiplier}, e.g. {d: 0.5}
    warmup_steps: int = 0  # linear learning-rate warm-up from 0 over this many steps
    ema_decay: float = 0.0  # exponential moving average of the generators (0 = off), e.g. 0.999
    pool_size: int = 50
    scale_lr: Literal["none", "linear", "sqrt"] = "none"  # multiply lr by world size (or its sqrt) under DDP
    device: str = "auto"
    threads: int = 0  # CPU compute threads per process; 0 = the cores available to it (OMP_NUM_THREADS if set)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = True
    compile: bool = False
    log_every: int = 100
    sample_every: int = 1000
    save_every: int = 5000
    keep_last: int = 3
    output_dir: str = "runs"


@dataclass(frozen=True)
class WandbConfig:
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: str = "gan"
    entity: Optional[str] = None
    tags: tuple[str, ...] = ()
    group: Optional[str] = None
    notes: Optional[str] = None
    log_checkpoints: bool = False


@dataclass(frozen=True)
class TrackingConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass(frozen=True)
class EvalConfig:
    every: int = 0
    num_images: int = 200
    metrics: tuple[Metric, ...] = ("kid",)
    best: str = "kid_ab"
    inception_weights: Optional[str] = None  # local copy of the FID Inception weights (else downloaded once)


@dataclass(frozen=True)
class Config:
    name: str = "photo2monet"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# --------------------------------------------------------------------------------------------- loading


def load_config(path: str | Path | None, overrides: typing.Sequence[str], kinds: dict) -> Config:
    """Read a YAML file (or only the defaults when `path` is None), apply `key=value` overrides, validate."""
    raw: dict = {}
    if path is not None:
        raw = read_yaml(path)
    for item in overrides:
        key, value = parse_override(item)
        if key == "model.kind" and isinstance(raw.get("model"), dict):
            _leave_other_kinds(raw["model"], value, path, kinds)
        set_dotted(raw, key, value)
    return from_dict(raw, kinds)


def _leave_other_kinds(model: dict, kind: Any, path: str | Path | None, kinds: dict) -> None:
    """`model.kind=X` on the command line over a file written for another kind (`train.py model.kind=cut` on the
    quickstart): the file's sections of other kinds are left out, saying so, instead of refusing the run. (A
    section of another kind written by hand next to its kind is still refused: it would never be read.)"""
    import logging

    dropped = [name for name in kinds if name != kind and isinstance(model.get(name), dict) and
               model.get("kind", "cyclegan") != kind]
    for name in dropped:
        del model[name]
    if dropped:
        logging.getLogger("gan").info("config: %s from %s not read by model kind %s: left out",
                                      ", ".join(f"model.{n}" for n in dropped), path, kind)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected UTF-8 YAML)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """`train.lr=1e-4` -> ("train.lr", 0.0001); values are parsed as YAML scalars or lists."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise ConfigError(f"override {item!r}: expected key=value with a dotted key, e.g. train.lr=0.0001")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return key, value


def set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(parts[: i + 1])}: is a value, not a section; cannot set {key}")
        node = child
    node[parts[-1]] = value


def from_dict(raw: dict, kinds: dict) -> Config:
    cfg = _build(Config, moved_keys(raw, kinds), "", kinds)
    validate(cfg, kinds)
    return cfg


def moved_keys(raw: dict, kinds: dict) -> dict:
    """A config written before a key moved into its kind's section (`loss.lambda_cycle` is now
    `model.cyclegan.lambda_cycle`: each kind declares what moved in `moved_keys`), brought to today's layout, with
    one line saying where each key lives now. A moved key of another kind than the config's is dropped (it was
    never read by this kind), with a line when it was set to anything but its old default. Returns a new dict."""
    import copy
    import logging

    raw = copy.deepcopy(raw)
    if raw.get("model") is None:
        raw["model"] = {}  # built from {}, so the default kind gets its own section's defaults too
    model = raw["model"] if isinstance(raw["model"], dict) else {}
    kind = model.get("kind", "cyclegan")
    said = []
    for name, cls in kinds.items():
        for old, (new, old_default) in getattr(cls, "moved_keys", {}).items():
            section, _, key = old.partition(".")
            node = raw.get(section)
            if not isinstance(node, dict) or key not in node:
                continue
            value = node.pop(key)
            if name != kind:
                if value != old_default:
                    said.append(f"{old}={value!r} is a key of model kind {name} (now model.{name}.{new}); "
                                f"ignored for kind {kind}")
                continue
            target = raw.setdefault("model", {}).setdefault(name, {})
            if not isinstance(target, dict):
                raise ConfigError(f"model.{name}: invalid value {target!r}; expected a mapping")
            if new in target:
                raise ConfigError(f"{old} and model.{name}.{new} are the same key, given twice: keep "
                                  f"model.{name}.{new}")
            target[new] = value
            said.append(f"{old} is now model.{name}.{new} (read from the old place)")
    if said:
        logging.getLogger("gan").info("config: %s", "; ".join(said))
    return raw


def build_section(cls: type, raw: dict, prefix: str, kinds: dict) -> Any:
    """One section (e.g. ModelConfig from a checkpoint's config.model), typed and checked like a whole
    config; the sections around it are not needed."""
    return _build(cls, raw, prefix, kinds)


def to_dict(cfg: Any) -> Any:
    """Plain dicts, lists and scalars (YAML- and torch.load(weights_only=True)-safe)."""
    if dataclasses.is_dataclass(cfg):
        out = {}
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if "section_of" in f.metadata:  # a kind's own section, under the kind's name
                if value is not None:
                    out[getattr(cfg, f.metadata["section_of"])] = to_dict(value)
                continue
            out[f.name] = to_dict(value)
        return out
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(dump_config(cfg), encoding="utf-8")


def replace(cfg: Config, overrides: typing.Sequence[str], kinds: dict) -> Config:
    """A copy of `cfg` with `key=value` overrides applied and validated."""
    raw = to_dict(cfg)
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(raw, key, value)
    return from_dict(raw, kinds)


def all_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (used for suggestions and documentation)."""
    keys = []
    for f in dataclasses.fields(cls):
        if "section_of" in f.metadata:
            continue
        path = f"{prefix}{f.name}"
        keys.append(path)
        sub = _dataclass_of(_hints(cls)[f.name])
        if sub is not None and sub is not TransformSpec:
            keys.extend(all_keys(sub, path + "."))
    return keys


# ------------------------------------------------------------------------------------ typed conversion


def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


def _dataclass_of(tp: Any) -> type | None:
    return tp if dataclasses.is_dataclass(tp) else None


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is typing.Union:
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _describe(inner[0]) + " or null"
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping"}.get(
        tp, str(tp)
    )


def _fail(path: str, value: Any, allowed: str) -> typing.NoReturn:
    raise ConfigError(f"{path}: invalid value {value!r}; expected {allowed}")


def _build(cls: type, raw: Any, prefix: str, kinds: dict) -> Any:
    if not isinstance(raw, dict):
        _fail(prefix.rstrip(".") or "config", raw, "a mapping")
    hints = _hints(cls)
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields if "section_of" not in f.metadata]
    values = {}
    for f in fields:
        if "section_of" in f.metadata:
            values[f.name] = _kind_section(raw, prefix, raw.get(f.metadata["section_of"], "cyclegan"), kinds)
    for key in raw:
        if key not in names and key not in kinds:
            raise ConfigError(f"{prefix}{key}: unknown key{_suggest(str(key), names, prefix)}")
    for name in names:
        if name in raw:
            values[name] = _convert(hints[name], raw[name], f"{prefix}{name}", kinds)
    return cls(**values)


def _kind_section(raw: dict, prefix: str, kind: Any, kinds: dict) -> Any:
    """`model.<kind>`: the section the kind declares (its `Section` dataclass), built like any other; None
    for a kind without one. A section of another kind is refused: it would be silently ignored."""
    if not isinstance(kind, str) or kind not in kinds:
        close = difflib.get_close_matches(str(kind), list(kinds), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        _fail(f"{prefix}kind", kind, "one of " + ", ".join(repr(k) for k in kinds) + hint)
    for other in kinds:
        if other != kind and other in raw:
            raise ConfigError(f"{prefix}{other}: a section of model kind {other}, but {prefix}kind is {kind} "
                              f"(set {prefix}kind={other} or remove the section)")
    section = getattr(kinds[kind], "Section", None)
    if section is None:
        if kind in raw:
            raise ConfigError(f"{prefix}{kind}: model kind {kind} has no options of its own")
        return None
    return _build(section, raw.get(kind) or {}, f"{prefix}{kind}.", kinds)


def _suggest(key: str, names: list[str], prefix: str) -> str:
    """'; did you mean x?' with the closest valid name(s) here, or the same name in another section."""
    scored = sorted(((difflib.SequenceMatcher(None, key, n).ratio(), n) for n in names), reverse=True)
    best = scored[0][0] if scored else 0.0
    close = [f"{prefix}{n}" for r, n in scored if r >= max(0.6, best - 0.05)]
    if not close:
        close = [k for k in all_keys() if k.rsplit(".", 1)[-1] == key]
    if close:
        return f"; did you mean {' or '.join(close[:3])}?"
    return f"; valid keys here: {', '.join(names)}"


def _convert(tp: Any, value: Any, path: str, kinds: dict) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return _convert(inner, value, path, kinds)
    if origin is Literal:
        if value not in typing.get_args(tp) or isinstance(value, bool):
            _fail(path, value, _describe(tp))
        return value
    if origin is tuple:
        item_tp = typing.get_args(tp)[0]
        if not isinstance(value, (list, tuple)):
            _fail(path, value, _describe(tp))
        return tuple(_convert(item_tp, v, f"{path}[{i}]", kinds) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path + ".", kinds)
    if tp is bool:
        if not isinstance(value, bool):
            _fail(path, value, "true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, value, "an integer")
        return value
    if tp is float:
        # PyYAML reads 2e-4 (no dot) as a string; accept any string that is plainly a number.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                _fail(path, value, "a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, value, "a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(path, value, "a string")
        return value
    if tp is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            _fail(path, value, "a mapping")
        return value
    raise TypeError(f"unsupported config type {tp} at {path}")  # a schema bug, not a user error


# ------------------------------------------------------------------------------------------ validation


def require(ok: bool, path: str, value: Any, allowed: str) -> None:
    """Raise ConfigError naming `path`, `value` and what is `allowed` unless `ok` (kinds use it too)."""
    if not ok:
        _fail(path, value, allowed)


_require = require


def validate(cfg: Config, kinds: dict) -> None:
    """Value checks beyond types, including those that span several keys."""
    _require(bool(re.fullmatch(r"[A-Za-z0-9_.\-]+", cfg.name)) and cfg.name not in (".", ".."),
             "name", cfg.name, "a run name of letters, digits, '_', '-', '.'")
    _require(cfg.seed >= 0, "seed", cfg.seed, "an integer >= 0")

    d = cfg.data
    for key in ("load_size", "crop_size", "batch_size"):
        _require(getattr(d, key) >= 1, f"data.{key}", getattr(d, key), "an integer >= 1")
    _require(d.num_workers >= 0, "data.num_workers", d.num_workers, "an integer >= 0")
    if d.preprocess in ("resize_and_crop", "scale_width_and_crop"):
        _require(d.crop_size <= d.load_size, "data.crop_size", d.crop_size,
                 f"at most data.load_size ({d.load_size}) with preprocess {d.preprocess}")
    if d.preprocess in ("scale_width", "none"):
        _require(d.batch_size == 1, "data.batch_size", d.batch_size,
                 f"1 with preprocess {d.preprocess} (image sizes differ, so they cannot be batched)")
        extra = kinds[cfg.model.kind].extra_images(cfg)
        _require(extra == 0, "data.preprocess", d.preprocess,
                 "a cropping preprocess (resize_and_crop, crop, scale_width_and_crop) when model.discriminator.batch "
                 "or loss.patch_images brings more images per step (of one size, stacked)")
    # data.extra_transforms are checked by gan.data (which owns albumentations) when the pipeline is built,
    # at the start of training, before anything is written.

    m = cfg.model
    for key in ("in_channels", "out_channels"):
        _require(getattr(m, key) >= 1, f"model.{key}", getattr(m, key), "an integer >= 1")
    _require(m.generator.ngf >= 1, "model.generator.ngf", m.generator.ngf, "an integer >= 1")
    _require(m.generator.n_blocks >= 0, "model.generator.n_blocks", m.generator.n_blocks, "an integer >= 0")
    _require(m.discriminator.ndf >= 1, "model.discriminator.ndf", m.discriminator.ndf, "an integer >= 1")
    _require(m.discriminator.n_layers >= 1, "model.discriminator.n_layers", m.discriminator.n_layers,
             "an integer >= 1")
    _require(m.discriminator.recon >= 0, "model.discriminator.recon", m.discriminator.recon, "a number >= 0 (0 = off)")
    _require(1 <= m.discriminator.batch <= 64, "model.discriminator.batch", m.discriminator.batch,
             "an integer from 1 (the batch's own images) to 64")
    _require(1 <= m.discriminator.scales <= 4, "model.discriminator.scales", m.discriminator.scales,
             "an integer from 1 (one PatchGAN) to 4")
    bad = [a for a in m.discriminator.augment if a not in AUGMENTS]
    _require(not bad and len(set(m.discriminator.augment)) == len(m.discriminator.augment),
             "model.discriminator.augment", list(m.discriminator.augment),
             f"a list of distinct names from {', '.join(AUGMENTS)} (e.g. [translation, cutout]); [] = off")
    if m.discriminator.scales > 1:  # the coarsest PatchGAN must still see at least one patch
        size, need = cfg.data.crop_size, 3 * 2 ** m.discriminator.n_layers
        for _ in range(m.discriminator.scales - 1):
            size = (size + 1) // 2
        _require(size >= need, "model.discriminator.scales", m.discriminator.scales,
                 f"fewer scales (or a larger data.crop_size): the last scale sees {size} px, and a PatchGAN of "
                 f"{m.discriminator.n_layers} layers needs at least {need}")
    _require(m.init.gain > 0, "model.init.gain", m.init.gain, "a number > 0")

    lo = cfg.loss
    for key in ("lambda_content", "lambda_style", "lambda_fm", "r1_gamma", "lambda_patch"):
        _require(getattr(lo, key) >= 0, f"loss.{key}", getattr(lo, key), "a number >= 0")
    _require(lo.r1_every >= 1, "loss.r1_every", lo.r1_every, "an integer >= 1 (1 = every step)")
    _require(2 <= lo.patch_size <= cfg.data.crop_size, "loss.patch_size", lo.patch_size,
             f"an integer from 2 to data.crop_size ({cfg.data.crop_size})")
    _require(1 <= lo.patch_stride <= lo.patch_size, "loss.patch_stride", lo.patch_stride,
             f"an integer from 1 to loss.patch_size ({lo.patch_size})")
    _require(1 <= lo.patch_images <= 64, "loss.patch_images", lo.patch_images, "an integer from 1 to 64")
    _require(1 <= lo.patch_scales <= 4 and lo.patch_size * 2 ** (lo.patch_scales - 1) <= cfg.data.crop_size,
             "loss.patch_scales", lo.patch_scales,
             f"an integer from 1 to 4 whose coarsest scale still holds a patch ({lo.patch_size} px at 1/2^(k-1))")
    for key in ("g_steps", "d_steps"):
        _require(1 <= getattr(lo, key) <= 16, f"loss.{key}", getattr(lo, key), "an integer from 1 to 16")
    for feature, (key, off) in SHARED.items():  # a feature the kind does not read is refused, not ignored
        value = functools.reduce(getattr, key.split("."), cfg)
        if feature not in kinds[m.kind].reads:
            _require(value == off, key, value, f"{off}: model kind {m.kind} does not read it")
    for key in ("content_layers", "style_layers"):
        for i, layer in enumerate(getattr(lo.vgg, key)):
            _require(layer in VGG_LAYERS, f"loss.vgg.{key}[{i}]", layer, "one of " + ", ".join(VGG_LAYERS))
    if lo.lambda_content > 0:
        _require(len(lo.vgg.content_layers) > 0, "loss.vgg.content_layers", [], "at least one layer")
    if lo.lambda_style > 0:
        _require(len(lo.vgg.style_layers) > 0, "loss.vgg.style_layers", [], "at least one layer")
    layout = kinds[m.kind].channels  # the channel layouts the kind trains: any, same (in = out) or rgb (3 -> 3)
    if layout == "same":
        _require(m.out_channels == m.in_channels, "model.out_channels", m.out_channels,
                 f"{m.in_channels} (= model.in_channels): model kind {m.kind} translates between images of the "
                 f"same channels ({kinds[m.kind].channels_why})")
    elif layout == "rgb":
        for key in ("in_channels", "out_channels"):
            _require(getattr(m, key) == 3, f"model.{key}", getattr(m, key),
                     f"3: model kind {m.kind} takes RGB images ({kinds[m.kind].channels_why})")
    if lo.lambda_content > 0 or lo.lambda_style > 0:
        key = "lambda_content" if lo.lambda_content > 0 else "lambda_style"
        _require(m.in_channels == 3 and m.out_channels == 3, f"loss.{key}", getattr(lo, key),
                 "0 unless model.in_channels and out_channels are 3 (VGG19 takes RGB)")
    _require(m.generator.skip_fade >= 0, "model.generator.skip_fade", m.generator.skip_fade, "an integer >= 0")
    if m.generator.skip_fade:
        _require(m.generator.skip != "none", "model.generator.skip_fade", m.generator.skip_fade,
                 "0 with model.generator.skip=none (there is no skip path to fade)")
    if m.generator.skip == "identity":
        _require(m.in_channels == m.out_channels, "model.generator.skip", "identity",
                 "none or color when model.in_channels != model.out_channels")

    t = cfg.train
    _require(t.epochs >= 0, "train.epochs", t.epochs, "an integer >= 0")
    _require(t.epochs_decay >= 0, "train.epochs_decay", t.epochs_decay, "an integer >= 0")
    if t.max_steps is None:
        _require(t.epochs + t.epochs_decay >= 1, "train.epochs", t.epochs,
                 "epochs + epochs_decay >= 1 (or set train.max_steps)")
    else:
        _require(t.max_steps >= 1, "train.max_steps", t.max_steps, "an integer >= 1 or null")
    _require(t.lr > 0, "train.lr", t.lr, "a number > 0")
    for key in ("beta1", "beta2"):
        _require(0 <= getattr(t, key) < 1, f"train.{key}", getattr(t, key), "a number in [0, 1)")
    _require(t.lr_step_epochs >= 1, "train.lr_step_epochs", t.lr_step_epochs, "an integer >= 1")
    _require(0 < t.lr_gamma <= 1, "train.lr_gamma", t.lr_gamma, "a number in (0, 1]")
    _require(t.pool_size >= 0, "train.pool_size", t.pool_size, "an integer >= 0")
    _require(t.warmup_steps >= 0, "train.warmup_steps", t.warmup_steps, "an integer >= 0")
    _require(0 <= t.ema_decay < 1, "train.ema_decay", t.ema_decay, "a number in [0, 1) (0 = off)")
    for k, v in t.lr_scales.items():
        _require(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, f"train.lr_scales.{k}", v,
                 "a number > 0")
    _require(t.threads >= 0, "train.threads", t.threads, "an integer >= 0 (0 = the cores available)")
    _require(bool(re.fullmatch(r"auto|cpu|cuda(:\d+)?", t.device)), "train.device", t.device,
             "auto, cpu, cuda or cuda:N")
    if t.device == "cpu":
        _require(t.precision != "fp16", "train.precision", t.precision,
                 "fp32 or bf16 on the CPU (fp16 needs CUDA)")
    for key in ("log_every", "sample_every", "save_every"):
        _require(getattr(t, key) >= 1, f"train.{key}", getattr(t, key), "an integer >= 1")
    _require(t.keep_last >= 1, "train.keep_last", t.keep_last, "an integer >= 1")

    e = cfg.eval
    _require(e.every >= 0, "eval.every", e.every, "an integer >= 0 (0 = off)")
    _require(e.num_images >= 1, "eval.num_images", e.num_images, "an integer >= 1")
    choices = [f"{m}_{d}" for m in e.metrics for d in ("ab", "ba")]
    _require(e.best in choices, "eval.best", e.best, "one of " + ", ".join(choices) + " (from eval.metrics)")

    kinds[m.kind].validate_config(cfg)  # the kind's own rules (its section, and what it needs of the others)
