"""Projector configs and builder (docs/design.md §3: the published one is Linear(bridge width -> LLM hidden) + GELU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from videollm.configs import JsonConfig
from videollm.errors import ModelError

PROJECTOR_KINDS: tuple[str, ...] = ("linear_gelu", "mlp2", "identity")
"""``linear_gelu``: Linear + GELU (published). ``mlp2``: Linear - GELU - Linear (LLaVA-1.5 style). ``identity``: no
parameters, the tokens already are in the LM's input space (a vision-language backbone's connector output; needs
``in_dim == out_dim``)."""


class AppendToken(nn.Module):
    """Identity on the readout, then one learned vector after it (LLaVA-OneVision ends a video's frames with its
    ``image_newline`` embedding). (R, D) -> (R + 1, D); (B, R, D) -> (B, R + 1, D)."""

    def __init__(self, dim: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.end = nn.Parameter(torch.zeros(dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        end = self.end.to(x.dtype).expand(*x.shape[:-2], 1, x.shape[-1])
        return torch.cat([x, end], dim=-2)


@dataclass
class ProjectorConfig(JsonConfig):
    """Shape of the projector.

    Args:
        in_dim: bridge width W.
        out_dim: LLM hidden size.
        kind: one of ``PROJECTOR_KINDS``.
        end_token: ``identity`` only: append one learned vector after the readout (``AppendToken``).
    """

    _label: ClassVar[str] = "projector config"
    _error: ClassVar[type[ModelError]] = ModelError

    in_dim: int
    out_dim: int
    kind: str = "linear_gelu"
    end_token: bool = False

    def __post_init__(self) -> None:
        for name in ("in_dim", "out_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"projector config: {name} must be a positive integer, got {value!r}")
        if self.kind not in PROJECTOR_KINDS:
            raise ModelError(f"projector config: kind must be one of {', '.join(PROJECTOR_KINDS)}, got {self.kind!r}")
        if self.end_token is not False and (self.end_token is not True or self.kind != "identity"):
            raise ModelError("projector config: end_token is true or false, and only for kind identity")
        if self.kind == "identity" and self.in_dim != self.out_dim:
            raise ModelError(f"projector config: identity needs in_dim == out_dim, got {self.in_dim} and {self.out_dim}")


def build_projector(cfg: ProjectorConfig, *, device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None) -> nn.Module:
    """Build the projector module.

    Args:
        cfg: the projector config.
        device: where to create the parameters.
        dtype: parameter dtype.

    Returns:
        An ``nn.Sequential`` mapping (..., in_dim) to (..., out_dim). Parameter names: ``0.weight``/``0.bias`` for the
        first Linear (and ``2.*`` for the second one of ``mlp2``); ``0.end`` for ``identity`` with ``end_token``.
    """
    factory = {"device": device, "dtype": dtype}
    if cfg.kind == "identity":
        return nn.Sequential(AppendToken(cfg.out_dim, **factory) if cfg.end_token else nn.Identity())
    if cfg.kind == "linear_gelu":
        return nn.Sequential(nn.Linear(cfg.in_dim, cfg.out_dim, **factory), nn.GELU())
    return nn.Sequential(
        nn.Linear(cfg.in_dim, cfg.out_dim, **factory), nn.GELU(), nn.Linear(cfg.out_dim, cfg.out_dim, **factory))
