"""Any model source a user may name, opened one way: `open_model(spec)` -> ModelFile.

    m = open_model("runs/monet")                 # a run folder (its latest.pt), a .pt, a reference .pth,
    m.kind, m.model_cfg, m.step                  # a saved folder, hf:user/repo, zoo:NAME, an .onnx or
    m.state("g_ab")                              # TorchScript export
    net, info = m.generator("AtoB")              # the inference network of one direction
    net, info = m.style_network()                # a content + style kind's network

Sources: one of this project's checkpoints or a run directory; a reference CycleGAN generator file
(junyanz/pytorch-CycleGAN-and-pix2pix `latest_net_G*.pth`, the architecture read from its keys); a saved
folder (gan.checkpoint.folder: safetensors, no pickle); `zoo:NAME` and `hf:user/repo[@rev]` (fetched into
their caches by gan.hub.sources); this project's ONNX and TorchScript exports (gan.checkpoint.exported).

What is read of a checkpoint: its kind, its `config.model` section (training-only keys of other sections do
not matter, so files stay loadable when they change) and the nets asked for. The weights of a net are the
exponential moving average when the run kept one and `weights="ema"` (the default), the trained ones
otherwise: chosen here, in `state`, for every caller (test.py, export, the hub, the app, evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from torch import nn

from gan import GanError
from gan.checkpoint import exported, folder
from gan.checkpoint.schema import (is_gan_checkpoint, is_tensor_dict, is_torchscript, migrate, require, resolve,
                                   safe_load)

SOURCES = ("checkpoint", "folder", "reference", "onnx", "torchscript")


@dataclass
class GeneratorInfo:
    source: str  # one of SOURCES
    path: Path
    description: str
    in_channels: int = 3
    kind: str | None = None  # the model kind (an export: the kind it was exported from, when it says)
    name: str | None = None  # the run's name (a reference file: its name; an export: what it records)


@dataclass
class ModelFile:
    """One opened model source: what it is, and what it holds."""

    source: str  # one of SOURCES
    path: Path  # the file or folder read (a run folder: its checkpoint file)
    kind: str | None  # the model kind (exports: the one they record, if any)
    name: str | None  # the run's name
    step: int | None
    model_cfg: object | None  # the ModelConfig (None: a reference file or an export)
    weights: str = "ema"  # which weights `state` gives: "ema" (the moving average when kept) or "raw"
    record: dict = field(default_factory=dict)  # an export's record; a saved folder's config.json; a
    # checkpoint's {config: the run's whole config, best: its best.pt record}
    raw: Callable[[str], dict] | None = None  # net name -> its trained weights
    ema: dict = field(default_factory=dict)  # net name -> its moving average, where the run kept one
    net: object | None = None  # what a reference file or an export is: a runnable network

    # ------------------------------------------------------------------------------------------- weights

    def state(self, name: str) -> dict:
        """The weights of net `name`: its moving average when there is one and `weights` is "ema", else the
        trained weights (a GanError naming what is missing)."""
        if self.weights == "ema" and name in self.ema:
            return self.ema[name]
        if self.raw is None:
            raise GanError(f"{self.path}: a {self.source} file holds no named nets")
        return self.raw(name)

    def used(self, name: str) -> str:
        """"ema" or "raw": which weights `state(name)` gives."""
        return "ema" if self.weights == "ema" and name in self.ema else "raw"

    def kind_class(self):
        from gan.models import kind_class

        return kind_class(self.kind or "cyclegan")

    def inference_nets(self) -> tuple[dict[str, dict], dict[str, str]]:
        """({net name: weights}, {net name: "ema" | "raw"}) of what inference builds from this model: each
        one-image generator, or the nets a content + style kind builds its network from."""
        from gan.models.base import one_image

        kind = self.kind_class()
        nets: dict[str, dict] = {}

        def state_of(name: str) -> dict:
            nets.setdefault(name, self.state(name))
            return nets[name]

        if one_image(kind):
            for name in kind.generators.values():
                state_of(name)
        else:
            kind.load_inference(self.model_cfg, state_of, self.path)
        return nets, {name: self.used(name) for name in nets}

    # ------------------------------------------------------------------------------------------ networks

    def generator(self, direction: str = "AtoB") -> tuple[nn.Module, GeneratorInfo]:
        """The one-image network of `direction` (AtoB or BtoA), in eval mode and frozen, on the CPU (an export: as
        it runs), with what it is."""
        from gan.models.base import one_image

        if direction not in ("AtoB", "BtoA"):
            raise GanError(f"--direction must be AtoB or BtoA, got {direction!r}")
        if self.source in ("onnx", "torchscript"):
            from gan.models import KINDS

            exported.check_direction(self.path, self.record, direction,
                                     self.record.get("inputs") is None and one_image(KINDS.get(self.kind or "")))
            what = "ONNX model" if self.source == "onnx" else "TorchScript model"
            default = "onnxruntime" if self.source == "onnx" else "exported generator"
            desc = f"{what} {self.path.name} ({self.record.get('description', default)})"
            cin = getattr(self.net, "in_channels", None) or int(self.record.get("in_channels", 3))
            return self.net, GeneratorInfo(self.source, self.path, desc, cin, self.kind, self.name)
        if self.source == "reference":
            g = self.model_cfg.generator
            desc = f"{self.path} (reference CycleGAN generator: ngf {g.ngf}, {g.n_blocks} blocks)"
            info = GeneratorInfo("reference", self.path, desc, self.model_cfg.in_channels, "cyclegan", self.name)
            return self.net.eval().requires_grad_(False), info
        kind = self.kind_class()
        if direction not in kind.generators:
            article = "an" if self.kind[:1] in "aeiou" else "a"
            has = ", ".join(kind.generators) or (f"none: it takes {' and '.join(kind.inputs)} images, see "
                                                 "stylize.py --model")
            raise GanError(f"{self.path}: {article} {self.kind} model has no {direction} generator (it has: {has})")
        name = kind.generators[direction]
        net = kind.inference_net(self.model_cfg, name)
        try:
            net.load_state_dict(self.state(name))
        except RuntimeError as e:
            raise GanError(f"{self.path}: the weights of {name} do not fit its configured architecture: "
                           f"{str(e).splitlines()[0]}") from None
        g, m = self.model_cfg.generator, self.model_cfg
        what = f"run {self.name}" if self.source == "checkpoint" else f"{self.name}"
        ema = " EMA" if self.source == "checkpoint" and self.used(name) == "ema" else ""
        desc = f"{self.path} ({what}, step {self.step if self.step is not None else '?'}, {name}{ema}: ngf {g.ngf}, " \
               f"{g.n_blocks} blocks)"
        cin = m.in_channels if direction == "AtoB" else m.out_channels
        return net.eval().requires_grad_(False), GeneratorInfo(self.source, self.path, desc, cin, self.kind, self.name)

    def style_network(self) -> tuple[nn.Module, GeneratorInfo]:
        """The network of a content + style kind (a StyleNetwork, gan.models.base), built by the kind from its
        nets, in eval mode and frozen, on the CPU."""
        from gan.models.base import one_image

        if self.source not in ("checkpoint", "folder"):
            raise GanError(f"{self.path} is not a checkpoint of this project (--model takes the run directory, "
                           "checkpoint or saved folder of a content + style model, e.g. model kind adain)")
        kind = self.kind_class()
        if one_image(kind):
            raise GanError(f"{self.path} is a {self.kind} model: stylize.py --model takes a content + style model, "
                           f"e.g. adain (a {self.kind} model translates one image at a time: use test.py "
                           "--checkpoint)")
        net = kind.load_inference(self.model_cfg, self.state, self.path)
        desc = f"{self.path} (run {self.name}, step {self.step}, {self.kind})"
        return net.eval().requires_grad_(False), GeneratorInfo(self.source, self.path, desc, kind=self.kind,
                                                               name=self.name)


# ------------------------------------------------------------------------------------------------ opening


def locate(spec: str | Path) -> Path:
    """A local path for `spec`: zoo: and hf: names are fetched into their caches first (gan.hub.sources)."""
    from gan.hub.sources import locate as fetch_name

    return fetch_name(spec)


def open_model(spec: str | Path, weights: str = "ema") -> ModelFile:
    """Open any model source (see the module docstring). `weights`: "ema" (the moving average when the run kept
    one) or "raw"."""
    if weights not in ("ema", "raw"):
        raise GanError(f"weights must be ema or raw, got {weights!r}")
    path = locate(spec)
    if folder.is_saved_folder(path):
        config, state_of = folder.read(path)
        return ModelFile("folder", path, config["kind"], config.get("name", "?"), config.get("step"),
                         model_config(config, path), weights, config, state_of)
    path = resolve(path)
    if path.suffix.lower() == ".onnx":
        net = exported.OnnxGenerator(path)
        return ModelFile("onnx", path, net.record.get("kind"), net.record.get("name"), None, None, weights,
                         net.record, net=net)
    if is_torchscript(path):
        net, record = exported.load_torchscript(path, "cpu")
        return ModelFile("torchscript", path, record.get("kind"), record.get("name"), None, None, weights, record,
                         net=net)
    obj = safe_load(path)
    if is_gan_checkpoint(obj):
        return _checkpoint(migrate(obj, path), path, weights)
    if is_tensor_dict(obj):
        from gan.config import ModelConfig
        from gan.nn.networks import load_reference_generator

        net, gcfg = load_reference_generator(obj)  # (the object already read: reference_generator(path) reads it)
        cin, cout = net.model[1].in_channels, net.model[-2].out_channels
        m = ModelConfig(in_channels=cin, out_channels=cout, generator=gcfg)
        return ModelFile("reference", path, "cyclegan", path.stem, None, m, weights, net=net)
    raise GanError(f"{path}: neither a checkpoint of this project nor a reference CycleGAN generator "
                   "state_dict (latest_net_G*.pth), nor an ONNX/TorchScript export")


def _checkpoint(obj: dict, path: Path, weights: str) -> ModelFile:
    record = {"config": obj.get("config") or {}, "best": obj.get("best")}  # the run's config and best.pt record
    return ModelFile("checkpoint", path, require(obj, "kind", path, str), obj.get("config", {}).get("name", "?"),
                     obj.get("step"), model_config(obj, path), weights, record,
                     lambda name: require(obj, f"nets.{name}", path, dict), obj.get("ema") or {})


def header(spec: str | Path) -> dict | None:
    """{kind, step, name} of one of this project's checkpoints (or run directory, or saved folder), read with its
    tensors left in the file; None for any other model file (a reference file, an export)."""
    path = locate(spec)
    if folder.is_saved_folder(path):
        config = folder.read_config(path)
        return {"kind": config["kind"], "step": config.get("step"), "name": config.get("name")}
    path = resolve(path)
    if path.suffix.lower() == ".onnx" or is_torchscript(path):
        return None
    obj = safe_load(path, mmap=True)
    if not is_gan_checkpoint(obj):
        return None
    obj = migrate(obj, path)
    return {"kind": obj.get("kind"), "step": obj.get("step"), "name": (obj.get("config") or {}).get("name")}


def model_config(obj: dict, path: Path):
    """The ModelConfig of a checkpoint (or a saved folder's config.json), read from its `config.model` section
    alone."""
    from gan.config import ModelConfig, build_section

    section = require(obj, "config.model", path, dict)
    try:
        return build_section(ModelConfig, section, "model.")
    except GanError as e:
        raise GanError(f"{path}: its model configuration does not fit this version: {e}") from None
