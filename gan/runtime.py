"""The runtime policy: where and how networks run, decided once from what the user asked.

    rt = Runtime.resolve("auto", "auto")        # Runtime(device=cuda:0, precision=bf16, channels_last=True)
    net, rt = rt.prepare(net)                    # on rt.device, in its layout; an export runs in fp32 as it is
    with rt.autocast(): y = net(x)               # autocast to rt.precision.dtype, or nothing in fp32

Every entry point (train.py, test.py, stylize.py, the web app, gan.evaluate) resolves one Runtime from its
device and precision options and hands it down; nothing below takes a precision name. The decisions, each
made here only:

- `auto` precision: bf16 autocast where the hardware runs it natively (CUDA with bf16, else fp16; CPUs with AMX
  or AVX512-BF16, about 2.5x faster than fp32 there), fp32 elsewhere.
- fp16 needs CUDA (a GanError naming the option otherwise).
- Optimising pixels (stylize.py's optimisation) is not done in fp16: `for_pixels` keeps bf16 and fp32 and turns
  fp16 into fp32, saying so in `note`.
- Exported networks (ONNX, TorchScript) compute in the precision they were exported in: `prepare` runs them
  in fp32 without autocast, in their own layout.
- On CUDA, networks and their inputs are channels-last (the fast layout for convolutions); elsewhere as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from gan import GanError

NAMES = ("fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    name: str  # fp32 | bf16 | fp16
    device_type: str  # cpu | cuda | ...

    @property
    def amp(self) -> bool:
        return self.name != "fp32"

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of autocast regions."""
        return _DTYPES[self.name]

    @property
    def store_dtype(self) -> torch.dtype:
        """Reduced-precision storage (the band runner's stored activations): bf16 under bf16, else fp16."""
        return torch.bfloat16 if self.name == "bf16" else torch.float16

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype if self.amp else torch.bfloat16, enabled=self.amp)


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


def is_exported(net) -> bool:
    """An exported network (an ONNX session wrapper, a TorchScript module): it computes in its own precision."""
    return bool(getattr(net, "exported", False)) or isinstance(net, torch.jit.ScriptModule)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: Precision
    channels_last: bool = False
    note: str = ""  # what the policy changed from what was asked, and why (said by the caller)

    @classmethod
    def resolve(cls, device: str | torch.device = "auto", precision: str = "auto", *, channels_last: bool = True,
                what: str = "--precision", device_option: str = "--device") -> "Runtime":
        """The policy for `device` (auto, cpu, cuda, cuda:N) and `precision` (auto, fp32, bf16, fp16);
        `channels_last` False keeps the default layout even on CUDA. `what` names the precision option in
        messages (train.precision for training)."""
        from gan.distributed import resolve_device

        dev = resolve_device(device, device_option) if not isinstance(device, torch.device) else device
        name = precision
        if name == "auto":
            name = "bf16" if native_bf16(dev) else ("fp16" if dev.type == "cuda" else "fp32")
        if name not in NAMES:
            raise GanError(f"{what} must be auto, fp32, bf16 or fp16, got {precision!r}")
        if name == "fp16" and dev.type != "cuda":
            raise GanError(f"{what} fp16 needs CUDA; this runs on {dev} (use bf16 or fp32)")
        return cls(dev, Precision(name, dev.type), channels_last and dev.type == "cuda")

    @classmethod
    def on(cls, device: str | torch.device = "cpu") -> "Runtime":
        """fp32 on `device`, no layout change: what a library caller gets without asking for anything."""
        dev = torch.device(device)
        return cls(dev, Precision("fp32", dev.type))

    @classmethod
    def of(cls, given: "Runtime | str | torch.device") -> "Runtime":
        """A Runtime as given, or fp32 on a device given instead (library callers, tests)."""
        return given if isinstance(given, Runtime) else cls.on(given)

    @torch.no_grad()
    def run(self, net, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(net(x), x) for a batch of uint8 or [-1, 1] images (N, C, H, W): moved to the device, as floats in
        [-1, 1], in the policy's layout, under its autocast. The one place images enter a network: the engine's
        batches and the trainer's evaluation."""
        from gan.data.io import normalize_uint8

        x = x.to(self.device, non_blocking=True)
        x = (normalize_uint8(x) if x.dtype == torch.uint8 else x).contiguous(memory_format=self.memory_format)
        with self.autocast():
            return net(x), x

    def for_pixels(self) -> "Runtime":
        """Optimising an image's pixels (Adam on [-1, 1] values): fp16 loses too much there, so fp16 becomes
        fp32 (with a note); bf16 and fp32 stay."""
        if self.precision.name != "fp16":
            return self
        return replace(self, precision=Precision("fp32", self.device.type),
                       note="in fp32: fp16 is not used for optimising pixels")

    def for_exported(self) -> "Runtime":
        """An exported network: fp32, no autocast, its own layout."""
        return replace(self, precision=Precision("fp32", self.device.type), channels_last=False)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self):
        return self.precision.autocast()

    def applied_to(self, net) -> "Runtime":
        """The policy `net` runs under: this one, or fp32 in its own layout for an export."""
        return self.for_exported() if is_exported(net) else self

    def prepare(self, net) -> tuple[object, "Runtime"]:
        """(the network ready to run, the policy it runs under): a module is moved to the device (and, on CUDA,
        to the channels-last layout: in place, as Module.to does); an export runs as it is, in fp32."""
        if is_exported(net):
            return (net.to(self.device) if isinstance(net, nn.Module) else net), self.applied_to(net)
        if isinstance(net, nn.Module):
            net = net.to(self.device)
            if self.channels_last:
                net = net.to(memory_format=torch.channels_last)
        return net, self

    def describe(self) -> str:
        return f"{self.device}, {self.precision.name}"
