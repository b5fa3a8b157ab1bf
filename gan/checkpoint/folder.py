"""Saved folders: what inference needs of a model, loadable without pickle.

    FOLDER/model.safetensors   the weights of the inference networks, named NET.PARAM
    FOLDER/config.json         {"format": "gan", kind, inputs, generators, nets: {NET: ema|raw}, name, step,
                                evaluation, config (the run's full config; inference reads its model section)}

`write` makes one (atomically: a temporary folder renamed into place; gan.hub.publish adds the model card and
sample); `read` opens one (safetensors only, no pickle). gan.checkpoint.source reads them like any model file.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch

from gan import GanError

FORMAT = "gan"  # config.json's "format"
CONFIG, WEIGHTS = "config.json", "model.safetensors"


def is_saved_folder(path: Path) -> bool:
    """A folder written by `python -m gan.hub save` (config.json + model.safetensors)."""
    return Path(path).is_dir() and (Path(path) / CONFIG).is_file() and (Path(path) / WEIGHTS).is_file()


def read_config(path: Path) -> dict:
    """A saved folder's config.json (its weights are not read), checked to be one this project wrote."""
    try:
        config = json.loads((path / CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise GanError(f"{path / CONFIG}: not readable as JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT or not isinstance(config.get("kind"), str):
        raise GanError(f"{path}: its config.json is not one this project wrote (no \"format\": \"gan\" and kind); "
                       "a folder of another library cannot be loaded here")
    return config


def read(path: Path) -> tuple[dict, Callable[[str], dict]]:
    """(config.json, state_of(net name) -> its state dict) of a saved folder; safetensors only, no pickle."""
    config = read_config(path)
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise GanError("saved folders need the safetensors package: pip install safetensors") from None
    try:
        tensors = load_file(path / WEIGHTS)
    except (SafetensorError, OSError) as e:
        raise GanError(f"{path / WEIGHTS}: not a readable safetensors file ({e})") from None

    def state_of(name: str) -> dict:
        state = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        if not state:
            raise GanError(f"{path}: {WEIGHTS} holds no weights of {name}")
        return state

    return config, state_of


def write(folder: Path, nets: dict[str, dict[str, torch.Tensor]], config: dict, extra: dict[str, bytes | Path],
          overwrite: bool = False) -> Path:
    """Write a saved folder: `nets` {net name: state dict} as model.safetensors, `config` (the "format" key is
    added) as config.json, and `extra` {file name: bytes, or a file to copy} beside them. Built in a temporary
    folder and moved into place, so a failure leaves nothing half-written; an existing folder that is not empty
    is refused unless `overwrite`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise GanError(f"{folder} exists and is not empty; nothing was written (pass --overwrite to replace it)")
    tensors = {f"{name}.{k}": v.detach().cpu().contiguous().clone() for name, sd in nets.items() for k, v in sd.items()}
    tmp = Path(tempfile.mkdtemp(prefix=".saving-", dir=folder.parent if folder.parent.exists() else None))
    try:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": FORMAT, "kind": str(config.get("kind"))})
        (tmp / CONFIG).write_text(json.dumps({"format": FORMAT, **config}, indent=2, default=str) + "\n")
        for name, content in extra.items():
            if isinstance(content, Path):
                shutil.copy(content, tmp / name)
            else:
                (tmp / name).write_bytes(content)
        for f in tmp.iterdir():
            f.chmod(0o644)
        tmp.chmod(0o755)  # (a temporary folder is private; the saved one is for sharing)
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp), str(folder))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
