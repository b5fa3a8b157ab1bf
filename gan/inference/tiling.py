"""Images too big for one pass: computed in horizontal bands, stage by stage, with whole-image norm statistics.

    plan = BandPlan(net)                         # once per net: its program, checked against its forward
    out = plan.run(image_uint8_1chw, BandOptions(tile=1024), precision, device)   # == net(image)

Instance norm needs the statistics of each layer over the whole image before anything after it can be
computed, and a 12-megapixel photo does not fit in memory in one pass (about 8 GB of activations for the
paper's generator). So the net is read as a program (`BandPlan(net)`: convolutions, norm layers, residual adds)
and run one stage at a time over full-width bands of rows:

    pass k: for every band, compute the activation in front of norm layer k (from the last stored activation,
            with the statistics of earlier norm layers already known), add its positions to the layer's
            statistics (gan.inference.normstats.NormStats, pooled exactly), and, when the activation is small (at most
            8 values per input value: the generator's quarter-resolution stages), store it
    then:   layer k's statistics are the whole image's; the next pass starts from the stored activation

Each convolution is computed once for the stored stages; the cheap full-resolution stages at both ends are
recomputed from the input (or from the last store) instead of being stored, which keeps the store small. A band
reads a few extra rows on each side (the convolutions' reach) and keeps only its own rows, so the result is
the untiled computation up to floating-point rounding (the stores keep activations in float16/bfloat16, the
"reduced precision" half of the memory bound). Stores live in RAM up to `cache_mb` and in a temporary file
beyond (read and written with pread/pwrite, so they count as page cache, not as the process's memory).

A net declares its program beside its forward (`band_program`, from gan.nn.bandprog's readers); the first time a
net is run here, its program is checked against its forward on a small input, and a net whose program does
not reproduce it is not run in bands (fail-closed). Nets without a program (ONNX and TorchScript exports, any
other module) are translated in overlapping tiles blended with a raised-cosine window, each tile with its own
statistics (`translate_tiles`), and `why_not(net)` says why.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import weakref
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np
import torch
from torch import nn

from gan.nn.bandprog import Op, Program, Unsupported
from gan.data.io import normalize_uint8, to_uint8
from gan.nn.networks import pad_to_multiple
from gan.inference.normstats import NormStats
from gan.runtime import Precision, is_exported

log = logging.getLogger("gan")

STORE_RATIO = 8  # an activation is stored when it holds at most this many values per input value


# ----------------------------------------------------------------------------------------- programs


_CHECKED: "weakref.WeakKeyDictionary[nn.Module, str]" = weakref.WeakKeyDictionary()  # net -> "" (ok) or why not


def _declared(net: nn.Module, stats: NormStats) -> Program:
    return net.band_program({id(m): i for i, m in enumerate(stats.layers)})


def why_not(net, check: bool = True) -> str:
    """"" when the band runner computes `net` exactly, else why not (for the user: said where a big image goes
    in blended tiles instead)."""
    if is_exported(net) or not isinstance(net, nn.Module):
        return "an exported model cannot be run stage by stage: translate with its checkpoint for whole-image statistics"
    if getattr(net, "band_program", None) is None:
        return f"{type(net).__name__} declares no band program"
    if net in _CHECKED:
        return _CHECKED[net]
    try:
        _declared(net, NormStats(net))
    except Unsupported as e:
        return f"{type(net).__name__} cannot run in bands: {e}"
    if not check:
        return ""
    _CHECKED[net] = _self_check(net)
    return _CHECKED[net]


@torch.no_grad()
def _self_check(net: nn.Module) -> str:
    """Run the program in several bands on a small input and compare it with the net's own forward."""
    prog = _declared(net, NormStats(net))
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    cin = next((m.in_channels for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))), 3)
    g = torch.Generator().manual_seed(0)
    h, w = prog.padded(3 * prog.minimum + 5, 2 * prog.minimum + 3)
    x = torch.rand(1, cin, h - 3, w - 1, generator=g) * 2 - 1
    want = net(x.to(device)).float().cpu()
    got = _run_bands(net, prog, NormStats(net), x, BandOptions(tile=prog.minimum, store_dtype=torch.float32),
                     Precision("fp32", device.type), device, None, None, None)
    diff = float((got - want).abs().max()) if got.shape == want.shape else float("inf")
    if not diff <= 1e-3 * max(1.0, float(want.abs().max())):
        return (f"{type(net).__name__}'s band program does not reproduce its forward (max difference {diff:.3g} "
                "on a test input)")
    return ""


# -------------------------------------------------------------------------------------------- stores


class Cache:
    """Where stored activations live: RAM while their total stays under `ram_bytes`, else a temporary file
    in `folder` (default: the system's temporary folder), deleted when the store is closed."""

    def __init__(self, ram_bytes: int, folder: str | None = None):
        self.ram_bytes, self.folder = ram_bytes, folder
        self.ram_used = 0
        self.peak_ram = 0
        self.disk_stores = 0
        self._tmp: tempfile.TemporaryDirectory | None = None

    def store(self, shape: tuple[int, int, int], dtype: torch.dtype) -> "Store":
        c, h, w = shape
        nbytes = c * h * w * torch.tensor([], dtype=dtype).element_size()
        if self.ram_used + nbytes <= self.ram_bytes:
            self.ram_used += nbytes
            self.peak_ram = max(self.peak_ram, self.ram_used)
            return Store(self, shape, dtype, None)
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gan-bands-", dir=self.folder)
        self.disk_stores += 1
        fd, path = tempfile.mkstemp(dir=self._tmp.name, suffix=".act")
        os.unlink(path)  # nameless: the space is freed when the descriptor closes, whatever happens
        return Store(self, shape, dtype, fd)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class Store:
    """One activation (C, H, W) at reduced precision, written and read by rows, laid out row after row as
    (H, W, C): a band is one contiguous block, and reads come back channels-last (the layout the CPU
    convolutions want) without a copy. In RAM, or in a file."""

    def __init__(self, cache: Cache, shape: tuple[int, int, int], dtype: torch.dtype, fd: int | None):
        self.cache, self.shape, self.dtype, self.fd = cache, shape, dtype, fd
        c, h, w = shape
        self.row_bytes = c * w * torch.tensor([], dtype=dtype).element_size()
        self.data = torch.empty((h, w, c), dtype=dtype) if fd is None else None
        self.closed = False

    def write(self, a: int, x: torch.Tensor) -> None:
        """x (1, C, rows, W) -> rows [a, a + rows)."""
        rows = x[0].permute(1, 2, 0).to("cpu", self.dtype)  # (rows, W, C)
        if self.data is not None:
            self.data[a: a + rows.shape[0]] = rows
        else:
            buf = rows.contiguous().view(torch.uint8).numpy()
            os.pwrite(self.fd, memoryview(buf).cast("B"), a * self.row_bytes)

    def read(self, a: int, b: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Rows [a, b) as (1, C, b - a, W), channels-last, in `dtype` on `device` (a view when nothing changes:
        not to be modified in place)."""
        c, _, w = self.shape
        if self.data is not None:
            rows = self.data[a:b]
        else:
            raw = os.pread(self.fd, (b - a) * self.row_bytes, a * self.row_bytes)
            rows = torch.frombuffer(bytearray(raw), dtype=self.dtype).view(b - a, w, c)
        return rows[None].permute(0, 3, 1, 2).to(device=device, dtype=dtype)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.fd is not None:
            os.close(self.fd)
        else:
            self.cache.ram_used -= self.shape[0] * self.shape[1] * self.shape[2] * self.data.element_size()
            self.data = None


# ------------------------------------------------------------------------------------------ running


@dataclass
class Source:
    """How to compute a value for any rows: its base (the input image, or a store) and the ops after it."""

    base: Store | None
    ops: list[Op] = field(default_factory=list)

    def then(self, op: Op) -> "Source":
        return Source(self.base, self.ops + [op])

    def stores(self) -> set[int]:
        found = {id(self.base)} if self.base is not None else set()
        for op in self.ops:
            if op.kind == "add" and op.skip is not None:
                found |= op.skip.stores()
            if op.kind == "tap":
                found.add(id(op.store))
        return found


@dataclass
class BandOptions:
    tile: int = 512  # a band covers about tile x tile pixels of the input image (half that many in float32)
    cache_mb: int = 256  # stored activations in RAM up to this, beyond it in a temporary file
    cache_dir: str | None = None
    store_dtype: torch.dtype | None = None  # default: the precision's store dtype (bfloat16 under bf16, else float16)


class _Runner:
    """Evaluates sources over row ranges of the (padded) input image."""

    def __init__(self, prog: Program, stats: NormStats, image: torch.Tensor, device: torch.device, autocast,
                 dtype: torch.dtype = torch.float32):
        self.prog, self.stats, self.image, self.device, self.autocast = prog, stats, image, device, autocast
        self.dtype = dtype  # what stored activations are read back as: the compute dtype
        self.h, self.w = image.shape[-2:]

    def dims(self, src: Source) -> list[tuple[int, int, int]]:
        """(channels, H, W) in front of each op of src and after the last."""
        c, h, w = src.base.shape if src.base is not None else (self.image.shape[1], self.h, self.w)
        out = [(c, h, w)]
        for op in src.ops:
            if op.kind == "layer":
                h, w = int(h * op.f), int(w * op.f)
                c = op.channels or c
            out.append((c, h, w))
        return out

    def read_input(self, a: int, b: int) -> torch.Tensor:
        """Input rows [a, b) in [-1, 1], channels-last: every activation of a band run is (no layout
        conversions in front of every convolution)."""
        t = self.image[:, :, a:b].to(self.device)
        t = normalize_uint8(t) if t.dtype == torch.uint8 else t.float()
        return t.contiguous(memory_format=torch.channels_last)

    def evaluate(self, src: Source, a: int, b: int, core: tuple[int, int] | None = None) -> torch.Tensor:
        """Rows [a, b) of src's value, exactly. `core`: the band's own rows, for taps."""
        dims = self.dims(src)
        need = [(a, b)] * (len(src.ops) + 1)
        at_add: list[tuple[int, int]] = []
        for k in range(len(src.ops) - 1, -1, -1):  # which rows each op needs from the one before
            op, (oa, ob), h_in = src.ops[k], need[k + 1], dims[k][1]
            if op.kind == "layer":
                ia = math.floor(oa / op.f) - op.r
                ib = math.ceil(ob / op.f) + op.r
                ia = max(0, ia // op.align * op.align)
                ib = min(h_in, -(-ib // op.align) * op.align)
                need[k] = (ia, ib)
            elif op.kind == "add" and op.skip is None:
                at_add.append((oa, ob))
                need[k] = (oa, ob)
            elif op.kind == "push":  # the branch's input, and the rows its add takes
                qa, qb = at_add.pop()
                need[k] = (min(oa, qa), max(ob, qb))
            else:
                need[k] = (oa, ob)
        lo, hi = need[0]
        x = self.read_input(lo, hi) if src.base is None else src.base.read(lo, hi, self.device, self.dtype)
        if src.base is not None and src.ops and src.ops[0].kind == "layer":
            x = x.clone()  # a view into the store: layers may work in place (ReLU(inplace=True))
        saved: list[tuple[torch.Tensor, int]] = []  # values at the pushes of branches inside this pass
        for k, op in enumerate(src.ops):
            if op.kind == "layer":
                ia, ib = need[k]
                # Extra rows cost compute and a crop costs a copy: crop where a strided layer needs its band
                # aligned, or where the extra rows have grown past a quarter of the band.
                if (lo, hi) != (ia, ib) and (op.align > 1 or (ia - lo) + (hi - ib) > (ib - ia) // 4):
                    x, lo, hi = x[:, :, ia - lo: ib - lo], ia, ib
                with self.autocast():
                    x = op.fn(x)
                lo, hi = int(lo * op.f), int(hi * op.f)
                if x.shape[2] != hi - lo:  # a layer whose arithmetic the band runner misreads
                    raise RuntimeError(f"band runner: {op.fn} gave {x.shape[2]} rows for {hi - lo}")
            elif op.kind == "norm":
                y = self.stats.normalize(op.index, x)
                x = op.post(y, x) if op.post is not None else y
            elif op.kind == "push":
                saved.append((x, lo))
            elif op.kind == "add" and op.skip is None:
                xs, slo = saved.pop()
                if lo < slo or hi > slo + xs.shape[2]:
                    ia, ib = need[k]
                    x, lo, hi = x[:, :, ia - lo: ib - lo], ia, ib
                x = x + xs[:, :, lo - slo: hi - slo].to(x.dtype)
            elif op.kind == "add":
                x = x + self.evaluate(op.skip, lo, hi).to(x.dtype)
            elif op.kind == "input_add":
                with self.autocast():
                    x = x + op.fn(self.read_input(lo, hi)).to(x.dtype)
            elif op.kind == "tap":
                rest = _scale_after(src.ops, k)  # the band's own rows at this op's resolution
                ca, cb = core[0] / rest, core[1] / rest
                if ca.denominator != 1 or cb.denominator != 1 or ca < lo or cb > hi:
                    raise RuntimeError("band runner: a tap's rows do not match its band")
                op.store.write(int(ca), x[:, :, int(ca) - lo: int(cb) - lo])
        return x[:, :, a - lo: b - lo]

    def bands(self, src: Source, tile: int) -> list[tuple[int, int]]:
        """Row ranges of src's output, each about tile^2 input pixels' worth."""
        c, h, w = self.dims(src)[-1]
        scale = h / self.h
        # Taps write whole rows of their own resolution: band edges on multiples of the scale after them.
        step = math.lcm(1, *(_scale_after(src.ops, k).numerator for k, op in enumerate(src.ops) if op.kind == "tap"))
        rows = max(step, round(tile * tile / self.w * scale) // step * step)
        return [(a, min(h, a + rows)) for a in range(0, h, rows)]

    def cost(self, src: Source) -> float:
        """Relative compute of one pass over src (multiply-adds, plus one per value read), for the progress bar."""
        dims = self.dims(src)
        total = float(math.prod(dims[0]))
        for op, (c, h, w) in zip(src.ops, dims[1:]):
            total += op.macs * h * w
            if op.kind == "add" and op.skip is not None:
                total += self.cost(op.skip)
        return total


class _Plan:
    """The passes of a program, in order: iterating yields (source, norm index, store or None) for each norm
    layer; the caller runs that pass (the layer's statistics, and the store written when there is one), then
    the program goes on from there; finally (source, None, None) for the output.

    A residual branch without a norm layer stays inside one pass (push and add in the same chain). One with a
    norm layer spans passes: the value at its start is kept for the add, as the store it reads with per-pixel
    steps after it, or else stored by a tap in the next pass (so that it is not recomputed for every block)."""

    def __init__(self, run: "_Runner", ops: list[Op], make_store: Callable[[tuple[int, int, int]], Store]):
        self.run, self.ops, self.make_store = run, ops, make_store
        self.src = Source(None)
        self.stack: list[Source | None] = []  # None: a branch inside one pass
        self.spans: dict[int, bool] = {}  # push index -> a norm layer lies between it and its add
        opened: list[int] = []
        for i, op in enumerate(ops):
            if op.kind == "push":
                opened.append(i)
                self.spans[i] = False
            elif op.kind == "add":
                opened.pop()
            elif op.kind == "norm":
                for j in opened:
                    self.spans[j] = True

    def __iter__(self):
        run = self.run
        in_values = math.prod(run.dims(self.src)[0])
        for i, op in enumerate(self.ops):
            if op.kind == "norm":
                c, h, w = run.dims(self.src)[-1]
                store = self.make_store((c, h, w)) if c * h * w <= STORE_RATIO * in_values else None
                yield self.src, op.index, store
                self.src = Source(store, [op]) if store is not None else _after_taps(self.src).then(op)
            elif op.kind == "push" and not self.spans[i]:
                self.src = self.src.then(Op("push"))
                self.stack.append(None)
            elif op.kind == "push":
                if self.src.base is not None and all(o.kind == "norm" or (o.kind == "layer" and o.r == 0
                                                                         and o.f == 1 and o.macs == 0)
                                                     for o in self.src.ops):
                    self.stack.append(self.src)  # a store plus per-pixel steps: cheap to read again
                else:
                    tap = self.make_store(run.dims(self.src)[-1])
                    self.src = self.src.then(Op("tap", store=tap))
                    self.stack.append(Source(tap))
            elif op.kind == "add":
                self.src = self.src.then(Op("add", skip=self.stack.pop()))  # skip None: the pass's own push
            else:
                self.src = self.src.then(op)
        yield self.src, None, None

    def live(self) -> set[int]:
        """ids of the stores the rest of the program still reads."""
        found = self.src.stores()
        for s in self.stack:
            found |= s.stores() if s is not None else set()
        return found


def _scale_after(ops: list[Op], k: int) -> Fraction:
    """Output rows per row at op k's output, over the ops after k."""
    return math.prod((o.f for o in ops[k + 1:] if o.kind == "layer"), start=Fraction(1))


def _after_taps(src: Source) -> Source:
    """After a pass, a tap of src has been written: continue from its store."""
    last = max((k for k, op in enumerate(src.ops) if op.kind == "tap"), default=None)
    return src if last is None else Source(src.ops[last].store, src.ops[last + 1:])


class _Shape:
    """A store's shape alone (planning the passes without computing them)."""

    def __init__(self, shape):
        self.shape = shape


class BandPlan:
    """How the band runner computes one network, worked out once (the engine builds it when it prepares a net):
    whether the net runs in bands at all (`why_not`, fail-closed: its declared program is checked against its
    forward the first time), its program and output channels, the passes a size takes, and the runs themselves.
    A net without a usable program is run in blended tiles instead (`translate_tiles`)."""

    def __init__(self, net, check: bool = True):
        self.net = net
        self.why_not = why_not(net, check)
        self.program = _declared(net, NormStats(net)) if not self.why_not else None

    @property
    def runs_in_bands(self) -> bool:
        return self.program is not None

    @property
    def channels(self) -> int:
        return self.program.out_channels

    def summary(self, h: int, w: int, tile: int, precision: Precision) -> tuple[int, int]:
        """(passes, band rows at the input resolution) of a run on an h x w image under `precision`."""
        prog = self.program
        hp, wp = prog.padded(h, w)
        run = _Runner(prog, NormStats(self.net), torch.empty(1, 3, hp, wp, dtype=torch.uint8, device="meta"),
                      torch.device("cpu"), contextlib.nullcontext)
        passes = len(list(_Plan(run, prog.ops, _Shape)))
        tile = _compute_tile(tile, float32=not precision.amp)
        return passes, max(1, round(tile * tile / wp))

    @torch.no_grad()
    def run(self, image: torch.Tensor, opts: "BandOptions", precision: Precision, device: torch.device,
            progress: Callable[[float, str], None] | None = None, cache: "Cache | None" = None,
            out: np.ndarray | None = None, finish: Callable[[int, int, torch.Tensor], torch.Tensor] | None = None):
        """image (1, C, H, W) uint8 (or float in [-1, 1]) on the CPU -> net(image) as (1, C', H, W) float32 on
        the CPU, computed in bands with whole-image norm statistics under `precision` (its autocast; activations
        stored in opts.store_dtype, else its store dtype). `progress(fraction, what)` after every band. `cache`
        (default: a new one from opts) holds the stored activations and is closed at the end. With `out` (uint8
        (H, W, C')), the result is written there as 8-bit bands instead and `out` is returned. `finish(a, b, y)`
        maps output rows a..b (float (1, C', b - a, W)) before they are kept."""
        if self.program is None:
            raise ValueError(f"no band program: {self.why_not}")
        return _run_bands(self.net, self.program, NormStats(self.net), image, opts, precision, device, progress,
                          cache, out, finish)


def _run_bands(net, prog: Program, stats: NormStats, image: torch.Tensor, opts: BandOptions, precision: Precision,
               device: torch.device, progress, cache: "Cache | None", out: np.ndarray | None, finish=None):
    h, w = image.shape[-2:]
    if image.dtype == torch.uint8:  # as pad_to_multiple pads, without a float copy of the image
        hp, wp = prog.padded(h, w)
        mode = "reflect" if hp - h < h and wp - w < w else "edge"
        padded = torch.from_numpy(np.pad(image.numpy(), ((0, 0), (0, 0), (0, hp - h), (0, wp - w)), mode=mode))
    else:
        padded = pad_to_multiple(image, prog.multiple, prog.minimum)
    store_dtype = opts.store_dtype or precision.store_dtype
    compute = precision.dtype  # what stored activations are read back as
    run = _Runner(prog, stats, padded, device, precision.autocast, compute)
    costs = [run.cost(src) for src, _, _ in _Plan(run, prog.ops, _Shape)]
    tile = _compute_tile(opts.tile, float32=compute == torch.float32)
    total, done = sum(costs), 0.0
    cache = cache or Cache(opts.cache_mb * 2**20, opts.cache_dir)
    live: list[Store] = []

    def make_store(shape):
        s = cache.store(shape, store_dtype)
        live.append(s)
        return s

    result = torch.empty(1, prog.out_channels, h, w) if out is None else None
    plan = _Plan(run, prog.ops, make_store)
    try:
        for n, (src, index, store) in enumerate(plan):
            # Stores the rest of the program no longer reads are closed (a file store frees its disk space).
            keep = plan.live() | ({id(store)} if store is not None else set())
            for s in live:
                if id(s) not in keep:
                    s.close()
            live[:] = [s for s in live if not s.closed]
            bands = run.bands(src, tile)
            for i, (a, b) in enumerate(bands):
                x = run.evaluate(src, a, b, core=(a, b))
                if index is not None:
                    stats.accumulate(index, x)
                    if store is not None:
                        store.write(a, x)
                elif a < h:
                    e = min(b, h)
                    y = x[:, :, : e - a, :w].float().cpu()
                    y = finish(a, e, y) if finish is not None else y
                    if out is not None:
                        out[a: e] = to_uint8(y[0])
                    else:
                        result[:, :, a: e] = y
                done += costs[n] * (b - a) / bands[-1][1]
                if progress is not None:
                    progress(done / total, f"pass {n + 1}/{len(costs)}, band {i + 1}/{len(bands)}")
            if index is not None:
                stats.freeze(index)
    finally:
        for s in live:
            s.close()
        cache.close()
    return out if out is not None else result


# ------------------------------------------------------------------ opaque nets: blended tiles


def _tile_starts(size: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Tiles along one axis as (start, end, core_start, core_end): cores partition [0, size) exactly,
    each tile is its core plus up to `overlap` on each side. All multiples of 4 when inputs are."""
    if size <= tile:
        return [(0, size, 0, size)]
    core = tile - 2 * overlap
    n = math.ceil(size / core)
    cuts = [min(size, round(i * size / n / 4) * 4) for i in range(n + 1)]
    cuts[-1] = size
    return [(max(0, c0 - overlap), min(size, c1 + overlap), c0, c1) for c0, c1 in zip(cuts[:-1], cuts[1:])]


def _window(length: int, lead: int, trail: int) -> torch.Tensor:
    """1-D blending weights: raised-cosine ramps over the overlaps, 1 elsewhere (never exactly 0)."""
    w = torch.ones(length, dtype=torch.float32)
    for n, flip in ((lead, False), (trail, True)):
        if n > 0:
            ramp = 0.5 - 0.5 * torch.cos(torch.linspace(0, math.pi, 2 * n + 2)[1:n * 2 + 1:2])  # (0, 1)
            if flip:
                w[-n:] = torch.minimum(w[-n:], ramp.flip(0))
            else:
                w[:n] = torch.minimum(w[:n], ramp)
    return w


@torch.no_grad()
def translate_tiles(net: Callable, x: torch.Tensor, tile: int, overlap: int, precision: Precision | None = None,
                    device: torch.device | None = None, progress: Callable[[float, str], None] | None = None
                    ) -> torch.Tensor:
    """For nets without a band program (ONNX, TorchScript): x (1, C, H, W) uint8 or float on the CPU ->
    (1, C', H, W) float on the CPU, from overlapping tile x tile tiles blended with a raised-cosine window.
    Each tile is normalised with its own statistics, so tiles of a net with instance norm may differ in
    tint. Memory: the image, one float accumulator of the output, one tile's activations."""
    device = device or torch.device("cpu")
    autocast = precision.autocast if precision is not None else contextlib.nullcontext
    h, w = x.shape[-2:]
    tile = max(16, tile // 4 * 4)
    overlap = min(max(0, overlap // 4 * 4), (tile - 8) // 2)
    pad_h, pad_w = (-h) % 4, (-w) % 4
    if pad_h or pad_w:  # the tile grid works in multiples of 4 (the generators' two stride-2 stages)
        mode = "reflect" if pad_h < h and pad_w < w else "edge"
        x = torch.from_numpy(np.pad(x.cpu().numpy(), ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode=mode))
    hp, wp = x.shape[-2:]
    ys, xs = _tile_starts(hp, tile, overlap), _tile_starts(wp, tile, overlap)
    # The window is separable and the tiles form a grid, so the sum of weights at (y, x) is
    # sum_y(y) * sum_x(x): two vectors instead of a full-size weight image.
    win_y = [_window(y1 - y0, cy0 - y0, y1 - cy1) for y0, y1, cy0, cy1 in ys]
    win_x = [_window(x1 - x0, cx0 - x0, x1 - cx1) for x0, x1, cx0, cx1 in xs]
    sum_y, sum_x = torch.zeros(hp), torch.zeros(wp)
    for (y0, y1, _, _), wy in zip(ys, win_y):
        sum_y[y0:y1] += wy
    for (x0, x1, _, _), wx in zip(xs, win_x):
        sum_x[x0:x1] += wx
    out = None
    n, count = len(ys) * len(xs), 0
    for (y0, y1, _, _), wy in zip(ys, win_y):
        for (x0, x1, _, _), wx in zip(xs, win_x):
            t = x[:, :, y0:y1, x0:x1].to(device)
            t = normalize_uint8(t) if t.dtype == torch.uint8 else t.float()
            with autocast():
                y = net(t).float().cpu()
            if out is None:
                out = torch.zeros(1, y.shape[1], hp, wp)
            out[:, :, y0:y1, x0:x1] += y * (wy[:, None] * wx[None, :])
            count += 1
            if progress is not None:
                progress(count / n, f"tile {count}/{n}")
    out.div_(sum_y[:, None]).div_(sum_x[None, :])
    return out[..., :h, :w]


def _compute_tile(tile: int, float32: bool) -> int:
    """`tile` sizes bands for 16-bit activations; in float32 a band holds half the pixels (the same memory)."""
    return max(16, round(tile / math.sqrt(2))) if float32 else tile
