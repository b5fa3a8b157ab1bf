"""The whole configuration: the shared sections (gan.config.schema) and each model kind's own section and
rules (gan.models.KINDS), loaded from YAML with strict validation.

    cfg = load_config("configs/photo2monet.yaml", ["train.lr=1e-4", "data.batch_size=4"])

Every key has a type and a default (the reference CycleGAN recipe). Loading rejects unknown keys (with the
closest valid names), wrong types and impossible values, always naming the dotted path, the value and what
is allowed. `to_dict`/`save_config` write the resolved config; loading it back gives an equal Config.
The kinds import the schema, never this module (which imports them when it loads a config).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from gan import ConfigError
from gan.config import schema
from gan.config.schema import (VGG_LAYERS, Config, DataConfig, DiscriminatorConfig, EvalConfig, GeneratorConfig,
                               InitConfig, LossConfig, ModelConfig, TrackingConfig, TrainConfig, TransformSpec,
                               VGGConfig, WandbConfig, all_keys, dump_config, parse_override, read_yaml, require,
                               save_config, set_dotted, to_dict)

__all__ = ["VGG_LAYERS", "ConfigError", "Config", "DataConfig", "DiscriminatorConfig", "EvalConfig", "GeneratorConfig",
           "InitConfig", "LossConfig", "ModelConfig", "TrackingConfig", "TrainConfig", "TransformSpec", "VGGConfig",
           "WandbConfig", "all_keys", "build_section", "dump_config", "from_dict", "load_config", "parse_override",
           "read_yaml", "replace", "require", "save_config", "set_dotted", "to_dict", "validate"]


def _kinds() -> dict:
    from gan.models import KINDS

    return KINDS


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Read a YAML file (or only the defaults when `path` is None), apply `key=value` overrides, validate."""
    return schema.load_config(path, overrides, _kinds())


def from_dict(raw: dict) -> Config:
    return schema.from_dict(raw, _kinds())


def replace(cfg: Config, overrides: typing.Sequence[str]) -> Config:
    """A copy of `cfg` with `key=value` overrides applied and validated."""
    return schema.replace(cfg, overrides, _kinds())


def build_section(cls: type, raw: dict, prefix: str) -> Any:
    """One section (e.g. ModelConfig from a checkpoint's config.model), typed and checked like a whole
    config; the sections around it are not needed."""
    return schema.build_section(cls, raw, prefix, _kinds())


def validate(cfg: Config) -> None:
    schema.validate(cfg, _kinds())
