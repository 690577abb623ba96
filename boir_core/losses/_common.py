"""Helpers shared by the loss modules: fp32 under autocast, input checks, per-image reductions.

Nothing here loops over people or images and nothing reads a tensor value back to Python, except
:func:`padded_capacity`, whose docstring explains when (and why that is free).
"""
from __future__ import annotations

import functools
from typing import Callable, Optional, TypeVar

import torch

F = TypeVar("F", bound=Callable)


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Half / bfloat16 -> float32; float32 and float64 pass unchanged (tests use float64)."""
    if not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def fp32_loss(fn: F) -> F:
    """Run ``fn`` with autocast switched off, so matmuls and reductions stay in fp32 inside a
    mixed-precision training step. Inputs are cast with :func:`as_float` by the functions themselves."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device_types = {a.device.type for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)}
        device_type = "cuda" if "cuda" in device_types else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_shape(name: str, t: torch.Tensor, ndim: int, last: Optional[int] = None) -> None:
    """Raise a ValueError naming ``name`` when ``t`` is not an ndim tensor (with last dim ``last``)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim or (last is not None and t.shape[-1] != last):
        want = f"{ndim}-d" + (f" with last dimension {last}" if last is not None else "")
        raise ValueError(f"{name} must be {want}, got shape {tuple(t.shape)}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {list(choices)}")


def check_same_length(**tensors: torch.Tensor) -> None:
    """All given tensors must have the same first dimension (the number of instances N)."""
    lengths = {k: v.shape[0] for k, v in tensors.items() if v is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"instance tensors disagree on N: {lengths}")


def rank_in_image(imgid: torch.Tensor, num_images: int) -> torch.Tensor:
    """Position of every instance among the instances of its own image (0, 1, 2, ... in batch order)."""
    if imgid.numel() == 0:
        return imgid.clone()
    onehot = torch.nn.functional.one_hot(imgid, num_images)  # [N, B]
    return (onehot.cumsum(0) - 1).gather(1, imgid[:, None])[:, 0]


def padded_capacity(imgid: torch.Tensor, num_images: int, capacity: Optional[int] = None) -> int:
    """How many instance slots per image the padded [B, C, ...] layout gets.

    The soft mask needs, for every instance, its similarity to every pixel of *its own* image: a grouped
    matrix product. We pad each image's instances to C slots and use one ``bmm``. C must be a Python int:

    - ``capacity`` given (e.g. known by the data loader): used as is;
    - on CUDA: C = N, read from the *shape*, never from the data (no host synchronisation; the extra
      FLOPs are cheap on a GPU);
    - on CPU: C = the largest per-image count. Reading a CPU tensor is not a host synchronisation (the
      data is already on the host), and it keeps the CPU cost proportional to the real work.
    """
    n = int(imgid.shape[0])
    if capacity is not None:
        return max(1, int(capacity))
    if n == 0:
        return 1
    if imgid.device.type != "cpu":
        return n
    return max(1, int(torch.bincount(imgid, minlength=num_images).max()))


def mean_over_images(values: torch.Tensor, imgid: torch.Tensor, num_images: int, min_count: int = 1,
                     valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Average ``values`` [N] over the instances of each image, then over the images that have at least
    ``min_count`` (valid) instances. 0 when no image qualifies."""
    w = torch.ones_like(values) if valid is None else valid.to(values.dtype)
    per_sum = torch.zeros(num_images, dtype=values.dtype, device=values.device).index_add_(0, imgid, values * w)
    count = torch.zeros(num_images, dtype=values.dtype, device=values.device).index_add_(0, imgid, w)
    used = (count >= min_count).to(values.dtype)
    per_mean = per_sum / count.clamp(min=1)
    return (per_mean * used).sum() / used.sum().clamp(min=1)



