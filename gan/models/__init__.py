"""Model kinds, by the name `model.kind` uses. A plain dict: each entry is a `TrainModel` subclass
(interface in gan/models/base.py)."""

from __future__ import annotations

from gan.models.adain import AdaIN
from gan.models.base import TrainModel
from gan.models.cut import CUT
from gan.models.cyclegan import CycleGAN
from gan.models.style import StyleNet

KINDS: dict[str, type[TrainModel]] = {
    "cyclegan": CycleGAN,
    "style": StyleNet,
    "adain": AdaIN,
    "cut": CUT,
}


def kind_class(kind: str) -> type[TrainModel]:
    from gan import GanError

    if kind not in KINDS:
        raise GanError(f"model.kind {kind!r} is not a model kind of this version (known: {', '.join(KINDS)})")
    return KINDS[kind]
