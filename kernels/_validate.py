"""Input checks shared by the public wrappers (one-line ``ValueError``/``TypeError`` messages)."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def check_tensor(name: str, t: object, ndim: int, dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES) -> torch.Tensor:
    """Raise unless ``t`` is a tensor with ``ndim`` dimensions and one of ``dtypes``; return it."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name} has dtype {t.dtype}, expected one of {', '.join(str(d) for d in dtypes)}")
    return t


def check_same_device(**tensors: torch.Tensor) -> None:
    """Raise unless every tensor lives on the same device."""
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{n}={d}" for n, d in devices.items())
        raise ValueError(f"all inputs must be on one device, got {listing}")


def check_same_dtype(**tensors: torch.Tensor) -> None:
    """Raise unless every tensor has the same dtype."""
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{n}={d}" for n, d in dtypes.items())
        raise TypeError(f"inputs must share one dtype, got {listing}")
