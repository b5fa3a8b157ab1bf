"""The interface between the training loop and a model kind.

A model kind is an `nn.Module` subclass of `TrainModel` that owns its nets and the loss arithmetic of one
training step, and nothing else: no optimizer, no scaler, no device or precision logic, no files. The loop
(gan/training/trainer.py) owns those and drives every kind through these members:

    build(cfg, device, rank, vgg_weights)   classmethod: the kind from a validated Config, on `device`
    nets                  {checkpoint name: plain module}: every net whose weights the checkpoint keeps
    optimizers            {optimizer name: (net names, ...)}: one Adam each, stepped in `training_step`
    generators            {"AtoB"/"BtoA": net name}: what inference, evaluation, samples and the EMA use
                          (AtoB translates domain A, BtoA domain B; may be empty)
    domains               the batch keys the step reads: ("A", "B"), or ("A",) for a kind that never
                          looks at domain B's images (then they are not even decoded)
    training_step(batch, ctx) -> (terms, images)
                          one step; calls `ctx.update(name, loss, terms)` once per optimizer, under
                          `with ctx.autocast():` for the forward passes; terms are the weighted loss terms
                          (0-dim tensors, logged), images the tensors the sample grid shows
    sample_rows(images) -> (rows, caption)   rows of (C, H, W) images for the sample grid
    wrap(fn)              replace the modules the step calls by fn(module) (DDP, torch.compile)
    rank_state() / load_rank_state(state, device)   per-process state beyond the nets (e.g. image pools)
    inference_net(model_cfg, name)   staticmethod: an untrained net `name` of this architecture (for loading)
    Section               None, or the frozen dataclass of the kind's own config section (`model.<kind>:` in
                          YAML, `cfg.model.options` here), typed and checked like every other section
    validate_config(cfg)  classmethod: the kind's value rules beyond types (raise via gan.config.require)
    channels              "any", "same" or "rgb": the channel layouts it trains (others are refused by name)
    moved_keys            {old dotted key: (key in its section, old default)}: keys that moved into its section
    reads                 the shared features (gan.config.schema.SHARED: feature matching, R1, ...) it implements;
                          the others are refused when a config turns them on
    output_terms(real_a, fake_b, real_b)   the generator terms as functions of the AtoB output (diagnostics)
    extra_images(cfg)     classmethod: more real images per item the loader brings ("A_more", "B_more")

What inference, export, the band runner and the web app need of a kind:

    generators            (above) one-image nets: read by gan.checkpoint.source (ModelFile.generator), run by every
                          one-image path (folders, bands, videos, evaluation, the app, export)
    inputs                the inference protocol: ONE_IMAGE, or CONTENT_STYLE for a kind whose network takes
                          style images at run time (stylize.py --model, the app's Stylize tab)
    load_inference(model_cfg, state, path)   classmethod, content-plus-style kinds: the inference network (a
                          StyleNetwork) from the checkpoint's nets (`state(name)` -> that net's state_dict)
    export_spec(net)      staticmethod, two-input kinds: how gan.export writes and checks their network
                          (an ExportSpec); one-image generators share the generic one
A network runs in bands (gan.inference.tiling) when it declares `band_program(norms)` beside its forward.

Adding a kind is a new module here and one entry in gan/models/__init__.py's KINDS; no loop code changes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch
from torch import nn

from gan.config.schema import Config, ModelConfig


# The inference protocols a kind offers (its `inputs`):
ONE_IMAGE = ("image",)  # one image in, one out: `generators` names the nets (folders, bands, videos, the app, export)
CONTENT_STYLE = ("content", "style")  # a photo and style images in: `load_inference` builds a StyleNetwork


def one_image(kind: type["TrainModel"] | None) -> bool:
    """Whether a kind translates one image at a time (an unknown kind, e.g. a file of another tool: yes)."""
    return kind is None or kind.inputs == ONE_IMAGE


class StyleNetwork(Protocol):
    """What a content-plus-style kind's inference network offers (AdaIN's): every style-taking path (stylize.py
    --model, the app's Stylize tab, export) calls these and nothing else."""

    def stylizer(self, styles: list[torch.Tensor], weights: list[float] | None = None,
                 alpha: float = 1.0) -> nn.Module:
        """The network with its styles fixed: a one-input module, content (N, 3, H, W) -> stylized, any size,
        that the inference engine runs like a generator (bands included, when it declares a band program)."""


class StepContext(Protocol):
    """What a training step may ask of the loop."""

    step: int  # optimizer steps taken before this one (0 in the first)

    def autocast(self) -> contextlib.AbstractContextManager: ...

    def update(self, optimizer: str | tuple[str, ...], loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """Backward `loss` once, step optimizer `optimizer` (or each of several; scaled under fp16); `terms`
        join the finite check."""


@dataclass
class ExportSpec:
    """What gan.export writes for a network and how it checks the file: the module exported (ONNX and
    TorchScript), example inputs, the graph's input/output names and dynamic axes, inputs of other sizes for
    the numerical check, whether TorchScript scripts or traces it, and what the file records about itself."""

    module: nn.Module
    example: tuple
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict
    check: tuple
    script: bool = True
    record: dict = field(default_factory=dict)


class TrainModel(nn.Module):
    optimizers: dict[str, tuple[str, ...]] = {}
    generators: dict[str, str] = {}
    domains: tuple[str, ...] = ("A", "B")
    inputs: tuple[str, ...] = ONE_IMAGE
    Section: type | None = None
    # The channel layouts the kind trains: "any" (model.in_channels and out_channels free), "same" (equal) or
    # "rgb" (3 -> 3); `channels_why` says why, in the message that refuses another layout.
    # The shared training features it reads (names of gan.config.schema.SHARED): a config that turns on one it does
    # not read is refused, naming the key, instead of training without it.
    reads: frozenset[str] = frozenset()
    channels: str = "any"
    channels_why: str = ""
    # Keys that moved into the kind's section: {old dotted key: (key in model.<kind>, its old default)}; configs
    # and checkpoints written with the old key still load (gan.config.schema.moved_keys).
    moved_keys: dict[str, tuple[str, object]] = {}

    @classmethod
    def load_inference(cls, model_cfg: ModelConfig, state: Callable[[str], dict], path: Path) -> "StyleNetwork":
        raise NotImplementedError(f"{cls.__name__} has one-image generators: see gan.checkpoint.source.ModelFile.generator")

    @staticmethod
    def export_spec(net: nn.Module) -> ExportSpec:
        raise NotImplementedError

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        """Default: no rules of its own."""

    @classmethod
    def build(cls, cfg: Config, device: torch.device, rank: int = 0, vgg_weights: str | None = None) -> "TrainModel":
        raise NotImplementedError

    @property
    def nets(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext
                      ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        raise NotImplementedError

    def sample_rows(self, images: dict[str, torch.Tensor]) -> tuple[list[list[torch.Tensor]], str]:
        raise NotImplementedError

    def wrap(self, fn: Callable[[nn.Module], nn.Module]) -> None:
        """Default: nothing is wrapped."""

    def rank_state(self) -> dict:
        return {}

    def load_rank_state(self, state: dict, device: torch.device) -> None:
        pass

    @staticmethod
    def inference_net(model_cfg: ModelConfig, name: str) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def extra_images(cls, cfg: Config) -> int:
        """More real images of each domain per batch item than the step translates (the loader's "A_more" and
        "B_more"), for discriminators that judge more per update; default none."""
        return 0

    def output_terms(self, real_a: torch.Tensor, fake_b: torch.Tensor, real_b: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
        """The weighted generator terms that depend on the AtoB generator's output `fake_b` (of photos `real_a`;
        real images of domain B in `real_b`), computed as the generator update computes them: what
        gan.evaluation.alignment differentiates to see where each term pushes the output."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its generator terms")


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        net.requires_grad_(flag)


def require_vgg_terms(cfg: Config) -> None:
    """Kinds that learn from the VGG terms alone (style, adain) need one of them on."""
    from gan.config.schema import require

    lo, m = cfg.loss, cfg.model
    require(lo.lambda_content > 0 or lo.lambda_style > 0, "loss.lambda_style", lo.lambda_style,
            f"> 0 (or loss.lambda_content > 0): model kind {m.kind} learns from the VGG terms alone")
