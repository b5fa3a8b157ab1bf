"""The vocabulary of band programs: how a network is computed over horizontal bands of rows (gan.inference.tiling runs
them). A network declares its program beside its forward, as `band_program(norms) -> Program`, from the
readers here: `ops_of(modules, norms)` reads a sequence of standard layers, and a module of its own may
declare its row arithmetic (`band_layer = {"scale": (num, den), "reach": r, "align": a}`) or its ops
(`band_ops(norms) -> list[Op]`, e.g. a residual block: push, its layers, add). A layer nobody declared and
the readers do not know raises Unsupported, and the net is not run in bands.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from torch import nn


class Unsupported(Exception):
    """A layer the band runner cannot compute over rows (its message names it)."""


@dataclass
class Op:
    """One step of a program. kind:
    layer      fn maps a band to a band: out rows = in rows * f; needs `r` extra input rows on each side of a
               band (its reach, including padding); band starts at multiples of `align` (strided layers)
    norm       norm layer `index`: normalise with the whole image's statistics, then `post(normed, raw)`
    push       remember the current value (a residual branch starts)
    add        add the remembered value (set when the program runs: `skip`)
    input_add  add fn(the input image rows), at the input's resolution (a generator's skip path)
    tap        write the current value's own rows of each band to `store` (set when the program runs)
    """

    kind: str
    fn: Callable | None = None
    f: Fraction = Fraction(1)
    r: int = 0
    align: int = 1
    channels: int = 0  # output channels (0: unchanged)
    macs: float = 0.0  # multiply-adds per output position (progress weights)
    index: int = -1
    post: Callable | None = None
    skip: "object | None" = None
    store: "object | None" = None


@dataclass
class Program:
    ops: list[Op]
    multiple: int  # the net pads H and W up to a multiple of this...
    minimum: int  # ...and at least this, then crops back
    out_channels: int

    def padded(self, h: int, w: int) -> tuple[int, int]:
        """The size an h x w input is padded to (as gan.nn.networks.pad_to_multiple does)."""
        return tuple(max(-(-n // self.multiple) * self.multiple, self.minimum) for n in (h, w))


def layer_op(m: nn.Module) -> Op | None:
    """A layer's Op, or None when it is not one the band runner knows. A module may declare its own row
    arithmetic beside its forward (`band_layer = {"scale": (num, den), "reach": r, "align": a}`)."""
    declared = getattr(m, "band_layer", None)
    if declared is not None:
        return Op("layer", m, Fraction(*declared["scale"]), declared["reach"], declared["align"])
    if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity, nn.BatchNorm2d)):
        return Op("layer", m)
    if isinstance(m, nn.InstanceNorm2d) and m.track_running_stats:  # eval: its running statistics, per pixel
        return Op("layer", m)
    if isinstance(m, nn.Conv2d) and m.stride[0] == m.stride[1] and isinstance(m.padding, tuple):
        s, k, d = m.stride[0], m.kernel_size[0], m.dilation[0]
        return Op("layer", m, Fraction(1, s), d * (k - 1) // 2 + m.padding[0] + (s > 1), s, m.out_channels,
                  k * m.kernel_size[1] * m.in_channels * m.out_channels / m.groups)
    if isinstance(m, nn.ConvTranspose2d) and m.stride[0] == m.stride[1]:
        s, k = m.stride[0], m.kernel_size[0]
        return Op("layer", m, Fraction(s), (k - 1) // 2 + 1, 1, m.out_channels,
                  k * m.kernel_size[1] * m.in_channels * m.out_channels / (s * s))
    if isinstance(m, nn.Upsample) and m.size is None and not m.align_corners:
        # align_corners=True maps the corners onto each other: each row's weights depend on the image's
        # height, so a band would not compute the whole image's rows. Nearest and half-pixel modes are local.
        s = m.scale_factor if isinstance(m.scale_factor, (int, float)) else m.scale_factor[0]
        if float(s).is_integer():
            return Op("layer", m, Fraction(int(s)), 0 if m.mode == "nearest" else 1)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
        s = m.stride if isinstance(m.stride, int) else m.stride[0]
        p = m.padding if isinstance(m.padding, int) else m.padding[0]
        if k == s:
            return Op("layer", m, Fraction(1, s), p + 1, s)
    return None


def ops_of(modules, norms: dict[int, int]) -> list[Op]:
    """Ops for a sequence of modules (`norms`: id of each norm layer whose statistics are the whole image's
    -> its index); a padding layer is fused with the layer after it. Raises Unsupported naming the layer."""
    out: list[Op] = []
    pad = None
    for m in modules:
        if isinstance(m, (nn.ReflectionPad2d, nn.ReplicationPad2d, nn.ZeroPad2d)):
            if pad is not None:
                raise Unsupported(f"two padding layers in a row ({pad}, {m})")
            pad = m
            continue
        declared = getattr(m, "band_ops", None)
        if declared is not None:
            if pad is not None:
                raise Unsupported(f"padding in front of {type(m).__name__}")
            out += declared(norms)
            continue
        if isinstance(m, nn.InstanceNorm2d) and id(m) in norms:
            if pad is not None:
                raise Unsupported(f"padding in front of {m}")
            out.append(Op("norm", index=norms[id(m)]))
            continue
        op = layer_op(m)
        if op is None and isinstance(m, nn.Upsample) and m.align_corners:
            raise Unsupported(f"{m} has align_corners=True: each output row depends on the image's height")
        if op is None:
            raise Unsupported(f"{m} is not a layer the band runner can compute over rows")
        if pad is not None:
            p = pad.padding[2] if isinstance(pad.padding, tuple) else pad.padding  # (left, right, top, bottom)
            op = Op("layer", nn.Sequential(pad, m), op.f, op.r + p, op.align, op.channels, op.macs)
            pad = None
        out.append(op)
    if pad is not None:
        raise Unsupported(f"{pad} at the end of a sequence")
    return out
