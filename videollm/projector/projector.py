"""Projector configs and builder (docs/design.md §3: the published one is Linear(bridge width -> LLM hidden) + GELU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from videollm.configs import JsonConfig
from videollm.errors import ModelError

PROJECTOR_KINDS: tuple[str, ...] = ("linear_gelu", "mlp2")
"""``linear_gelu``: Linear + GELU (published). ``mlp2``: Linear - GELU - Linear (LLaVA-1.5 style)."""


@dataclass
class ProjectorConfig(JsonConfig):
    """Shape of the projector.

    Args:
        in_dim: bridge width W.
        out_dim: LLM hidden size.
        kind: one of ``PROJECTOR_KINDS``.
    """

    _label: ClassVar[str] = "projector config"
    _error: ClassVar[type[ModelError]] = ModelError

    in_dim: int
    out_dim: int
    kind: str = "linear_gelu"

    def __post_init__(self) -> None:
        for name in ("in_dim", "out_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"projector config: {name} must be a positive integer, got {value!r}")
        if self.kind not in PROJECTOR_KINDS:
            raise ModelError(f"projector config: kind must be one of {', '.join(PROJECTOR_KINDS)}, got {self.kind!r}")


def build_projector(cfg: ProjectorConfig, *, device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None) -> nn.Module:
    """Build the projector module.

    Args:
        cfg: the projector config.
        device: where to create the parameters.
        dtype: parameter dtype.

    Returns:
        An ``nn.Sequential`` mapping (..., in_dim) to (..., out_dim). Parameter names: ``0.weight``/``0.bias`` for the
        first Linear (and ``2.*`` for the second one of ``mlp2``).
    """
    factory = {"device": device, "dtype": dtype}
    if cfg.kind == "linear_gelu":
        return nn.Sequential(nn.Linear(cfg.in_dim, cfg.out_dim, **factory), nn.GELU())
    return nn.Sequential(
        nn.Linear(cfg.in_dim, cfg.out_dim, **factory), nn.GELU(), nn.Linear(cfg.out_dim, cfg.out_dim, **factory))
