"""Streaming keyword recognisers: a Legendre-Memory-Unit network (recurrent) and a windowed-CNN baseline.

Both map stacked log-mel frames (B, T, STACK * N_MELS) to per-step class logits (B, T, N_CLASSES), class 0 blank,
and both are causal (step t sees only steps <= t), so their detections happen at the same audio times.

The LMU layer (Voelker et al. 2019; the parallel form of Chilkuri & Eliasmith 2021 used by LMUFormer) keeps a
linear memory m_t = A m_{t-1} + B u_t of order d per input channel: A, B are fixed (they make m_t the Legendre
coefficients of the last ``theta`` steps of u), so training computes all m_t at once as a causal convolution
(FFT) while streaming updates a constant-size state one step at a time. The nonlinearity sits outside the
recurrence: h_t = GELU(W [m_t, x_t]).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videollm.demos.speech.data import N_CLASSES, N_MELS, STACK
from videollm.errors import ModelError


def lmu_matrices(order: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-order-hold discretised LMU matrices for one step: A (order, order) and B (order,), float64."""
    i = np.arange(order)[:, None]
    j = np.arange(order)[None, :]
    a = np.where(i < j, -1.0, (-1.0) ** (i - j + 1)) * (2 * i + 1) / theta
    b = (2 * np.arange(order) + 1) * (-1.0) ** np.arange(order) / theta
    a_t = torch.from_numpy(a)
    ad = torch.linalg.matrix_exp(a_t)
    bd = torch.linalg.solve(a_t, (ad - torch.eye(order, dtype=torch.float64)) @ torch.from_numpy(b))
    return ad, bd


class LMULayer(nn.Module):
    """One LMU layer: (B, T, d_in) -> (B, T, d_out), with a streaming :meth:`step`."""

    def __init__(self, d_in: int, d_out: int, channels: int, order: int, theta: float) -> None:
        super().__init__()
        self.channels, self.order = channels, order
        self.encode = nn.Linear(d_in, channels)
        self.hidden = nn.Linear(channels * order + d_in, d_out)
        ad, bd = lmu_matrices(order, theta)
        self.register_buffer("A", ad.float(), persistent=False)
        self.register_buffer("B", bd.float(), persistent=False)

    def impulse_response(self, n: int) -> torch.Tensor:
        """H[k] = A^k B for k < n: (n, order). Built by repeated squaring of the powers, float64 for accuracy."""
        a, h = self.A.double(), self.B.double()[None]  # h: (1, order)
        while len(h) < n:
            h = torch.cat([h, h @ torch.linalg.matrix_power(a, len(h)).T])
        return h[:n].to(self.A.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d_in) -> (B, T, d_out), every step at once."""
        T = x.shape[1]
        u = self.encode(x)  # (B, T, C)
        n_fft = 2 * T
        U = torch.fft.rfft(u, n=n_fft, dim=1)  # (B, n_fft/2+1, C)
        H = torch.fft.rfft(self.impulse_response(T), n=n_fft, dim=0)  # (n_fft/2+1, order)
        m = torch.fft.irfft(U[..., None] * H[None, :, None, :], n=n_fft, dim=1)[:, :T]  # (B, T, C, order)
        return F.gelu(self.hidden(torch.cat([m.flatten(2), x], dim=-1)))

    def step(self, x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: x (B, d_in), memory m (B, C, order) -> output (B, d_out), new memory."""
        m = m @ self.A.T + self.encode(x)[..., None] * self.B  # (B, C, order)
        return F.gelu(self.hidden(torch.cat([m.flatten(1), x], dim=-1))), m


@dataclass
class SpeechConfig:
    """Sizes of a recogniser.

    Attributes:
        kind: "lmu" (recurrent) or "cnn" (windowed baseline).
        d_in: input features per step (STACK log-mel frames).
        hidden: width of the hidden layers.
        channels: LMU input channels per layer (lmu only).
        orders: LMU memory order per layer (lmu only); the number of layers.
        thetas: LMU window per layer in steps of 20 ms (lmu only).
        kernel: conv kernel (cnn only).
        dilations: dilation per conv layer (cnn only): receptive field 1 + (kernel - 1) * sum(dilations) steps.
    """

    kind: str = "lmu"
    d_in: int = STACK * N_MELS
    hidden: int = 128
    channels: int = 16
    orders: tuple[int, ...] = (12, 8)
    thetas: tuple[float, ...] = (40.0, 20.0)
    kernel: int = 5
    dilations: tuple[int, ...] = field(default=(1, 2, 4, 8))
    n_classes: int = N_CLASSES

    def __post_init__(self) -> None:
        self.orders, self.thetas, self.dilations = tuple(self.orders), tuple(self.thetas), tuple(self.dilations)
        if self.kind not in ("lmu", "cnn"):
            raise ValueError(f"SpeechConfig.kind must be 'lmu' or 'cnn', got {self.kind!r}")
        if len(self.orders) != len(self.thetas):
            raise ValueError("SpeechConfig.orders and thetas need one entry per layer")


@dataclass
class StreamState:
    """Recurrent state of :class:`SpeechNet` (LMU): one memory (B, channels, order) per layer. Constant size."""

    memories: list[torch.Tensor]


class SpeechNet(nn.Module):
    """Keyword recogniser: features (B, T, d_in) -> logits (B, T, n_classes)."""

    def __init__(self, config: SpeechConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SpeechConfig()
        self.register_buffer("feat_mean", torch.zeros(config.d_in))
        self.register_buffer("feat_std", torch.ones(config.d_in))
        if config.kind == "lmu":
            dims = [config.d_in] + [config.hidden] * len(config.orders)
            self.layers = nn.ModuleList(
                LMULayer(dims[i], dims[i + 1], config.channels, o, th)
                for i, (o, th) in enumerate(zip(config.orders, config.thetas))
            )
        else:
            dims = [config.d_in] + [config.hidden] * len(config.dilations)
            self.layers = nn.ModuleList(
                nn.Conv1d(dims[i], dims[i + 1], config.kernel, dilation=d) for i, d in enumerate(config.dilations)
            )
        self.head = nn.Linear(config.hidden, config.n_classes)

    @property
    def receptive_field(self) -> int | None:
        """Steps a CNN output sees (None for the LMU, whose memory is unbounded but fades over ``theta``)."""
        if self.config.kind != "cnn":
            return None
        return 1 + (self.config.kernel - 1) * sum(self.config.dilations)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, d_in) -> logits (B, T, n_classes); output t depends only on inputs <= t."""
        x = (feats - self.feat_mean) / self.feat_std
        if self.config.kind == "lmu":
            for layer in self.layers:
                x = layer(x)
        else:
            x = x.transpose(1, 2)  # (B, d_in, T)
            for layer in self.layers:
                x = F.gelu(layer(F.pad(x, ((layer.kernel_size[0] - 1) * layer.dilation[0], 0))))  # causal pad
            x = x.transpose(1, 2)
        return self.head(x)

    def init_state(self, batch: int = 1) -> StreamState:
        """Zero memory for :meth:`step` (LMU only)."""
        if self.config.kind != "lmu":
            raise ModelError("only the recurrent (lmu) recogniser streams step by step")
        return StreamState([self.feat_mean.new_zeros(batch, layer.channels, layer.order) for layer in self.layers])

    def step(self, feat: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """One 20 ms step: feat (B, d_in) -> logits (B, n_classes) and the new state (same sizes as before)."""
        x = (feat - self.feat_mean) / self.feat_std
        memories = []
        for layer, m in zip(self.layers, state.memories):
            x, m = layer.step(x, m)
            memories.append(m)
        return self.head(x), StreamState(memories)

    def save(self, path: str | os.PathLike) -> None:
        """Write weights and config to one safetensors file."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, os.fspath(path), metadata={"config": json.dumps(asdict(self.config)), "kind": "speech"})

    @classmethod
    def load(cls, path: str | os.PathLike) -> SpeechNet:
        """Load a model written by :meth:`save`."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        if not os.path.isfile(path):
            raise ModelError(f"{path}: no such weights file")
        with safe_open(os.fspath(path), "pt") as f:
            meta = f.metadata() or {}
        if meta.get("kind") != "speech" or "config" not in meta:
            raise ModelError(f"{path}: not speech demo weights")
        model = cls(SpeechConfig(**json.loads(meta["config"])))
        model.load_state_dict(load_file(os.fspath(path)))
        return model.eval()
