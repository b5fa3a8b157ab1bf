"""The one precision policy: what `fp32 | bf16 | fp16 | auto` means on a device, resolved once.

    p = resolve_precision("auto", device)        # Precision(name="bf16", device_type="cuda")
    with p.autocast(): y = net(x)                # autocast to p.dtype, or nothing in fp32
    p.store_dtype                                # what reduced-precision stores keep (band runner)

`auto`: bf16 autocast where the hardware runs it natively (CUDA with bf16, else fp16; CPUs with AMX or
AVX512-BF16, about 2.5x faster than fp32 there), fp32 elsewhere. fp16 needs CUDA. Training, folders, videos,
evaluation, stylization and the web app all take their autocast from a Precision; none builds its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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


def resolve_precision(requested: str | Precision, device: torch.device | str, *, fp16: bool = True,
                      what: str = "--precision") -> Precision:
    """`requested` on `device` as a Precision. `fp16=False` for work that fp16 cannot do well (optimising
    pixels with Adam): `auto` then picks fp32 where bf16 is not native, and an explicit fp16 is refused."""
    if isinstance(requested, Precision):
        return requested
    device = torch.device(device)
    name = requested
    if name == "auto":
        if native_bf16(device):
            name = "bf16"
        else:
            name = "fp16" if device.type == "cuda" and fp16 else "fp32"
    if name not in NAMES:
        raise GanError(f"{what} must be auto, fp32, bf16 or fp16, got {requested!r}")
    if name == "fp16" and device.type != "cuda":
        raise GanError(f"{what} fp16 needs CUDA; this runs on {device} (use bf16 or fp32)")
    if name == "fp16" and not fp16:
        raise GanError(f"{what} fp16 is not offered here (fp16 loses too much when optimising pixels): use bf16 "
                       "or fp32")
    return Precision(name, device.type)
