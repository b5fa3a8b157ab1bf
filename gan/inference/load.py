"""The networks inference runs, from any model source a user may name (`--checkpoint`, `--model`): read by
gan.checkpoint.source (the one reader of model files), put on a device here.

    net, info = load_generator("runs/monet", "AtoB", "cuda")     # a run, .pt, .pth, saved folder, zoo:, hf:, export
    net, info = load_style_network("runs/adain", "cuda")         # a content + style kind's network
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gan.checkpoint.source import GeneratorInfo, open_model

__all__ = ["GeneratorInfo", "load_generator", "load_style_network"]


def _on(net, device):
    return net.to(device) if isinstance(net, nn.Module) else net  # (an ONNX session runs where it was opened)


def load_generator(path: str | Path, direction: str = "AtoB", device: torch.device | str = "cpu",
                   weights: str = "ema") -> tuple[nn.Module, GeneratorInfo]:
    """The one-image network of `direction`, in eval mode, frozen, on `device`. `weights`: "ema" = the moving
    average when the run kept one, else the trained weights; "raw" = always the trained weights."""
    net, info = open_model(path, weights).generator(direction)
    return _on(net, device), info


def load_style_network(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, GeneratorInfo]:
    """The network of a run, checkpoint or saved folder of a kind that takes a content and a style image, built
    by the kind from its nets, in eval mode, frozen, on `device`."""
    net, info = open_model(path).style_network()
    return _on(net, device), info
