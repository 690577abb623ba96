"""Training precision: which autocast dtype and whether a GradScaler, for ``train.amp`` on a device.

fp32 on CPU by default; on CUDA ``amp: auto`` means fp16 autocast with a GradScaler; ``bf16`` works on both;
``fast`` adds bf16 on CPUs with native bf16 (AMX / AVX512-BF16), which with ``channels_last`` trains the CPU
demo about 1.5x faster than fp32 (docs/training.md).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

__all__ = ["Precision", "amp_settings", "cpu_has_native_bf16"]


@dataclass(frozen=True)
class Precision:
    """How a training step computes: autocast on or off, in which dtype, with or without a GradScaler, and on
    which device type (what :func:`amp_settings` decides for ``train.amp``, kept together so that one object,
    not three loose values, travels from the job to its step)."""

    autocast: bool
    dtype: torch.dtype | None
    grad_scaler: bool
    device_type: str = "cpu"

    @classmethod
    def of(cls, amp: str, device: torch.device) -> "Precision":
        """The precision of ``train.amp`` on ``device``."""
        return cls(*amp_settings(amp, device), device_type=device.type)

    def context(self):
        """The autocast context the forward pass runs in (a no-op context when autocast is off)."""
        return torch.autocast(self.device_type, dtype=self.dtype) if self.autocast else contextlib.nullcontext()


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AVX512-BF16 or AMX), so bf16 autocast is faster than
    fp32; elsewhere PyTorch emulates bf16 on the CPU and it is slower."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        return any(bool(getattr(cpu, name)()) for name in checks if hasattr(cpu, name))
    except Exception:  # a private API that may change between torch versions: fall back to fp32
        return False


def amp_settings(amp: str, device: torch.device) -> tuple[bool, torch.dtype | None, bool]:
    """Return (autocast on, autocast dtype, use GradScaler) for ``train.amp`` on ``device``.

    ``auto``: fp16 + GradScaler on CUDA, fp32 on CPU. ``fast``: as ``auto`` on CUDA; on a CPU bf16 where the
    hardware has native bf16 (:func:`cpu_has_native_bf16`), else fp32 (the CPU demo uses it).
    ``fp16`` (CUDA only), ``bf16`` (any device) and ``off`` force one precision.
    """
    if amp == "fast":
        amp = "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "auto"
    if amp == "off":
        return False, None, False
    if amp == "auto":
        return (True, torch.float16, True) if device.type == "cuda" else (False, None, False)
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError("train.amp=fp16 needs a CUDA device; use amp=bf16 or amp=off on CPU")
        return True, torch.float16, True
    if amp == "bf16":
        return True, torch.bfloat16, False
    raise ValueError(f"train.amp={amp!r} is not one of auto, fast, fp16, bf16, off")
