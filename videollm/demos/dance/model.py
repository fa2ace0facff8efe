"""The dance network: power spectrum -> conv layers -> multi-layer LSTM encoder -> auto-conditioned LSTM decoder.

After Yalta et al., "Weakly Supervised Deep Recurrent Neural Networks for Basic Dance Step Generation" (2019):
the decoder emits one stick-figure pose per audio frame and reads its own previous pose; during training part of
the sequence is fed its own outputs (auto-conditioning) so that it does not drift when it runs free.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import torch
from torch import nn

from videollm.demos.dance.data import N_BANDS, N_JOINTS
from videollm.errors import ModelError


@dataclass
class DanceConfig:
    """Sizes of :class:`DanceNet`.

    Attributes:
        n_bands: spectrum bands per audio frame.
        n_joints: joints per pose (2-D each).
        conv_channels: width of the convolutional front end.
        conv_layers: number of conv layers (kernel 5, non-causal: each sees +-2 frames, so the stack looks
            ahead 2 * conv_layers frames, which lets the dancer slow down before a beat).
        hidden: LSTM width.
        enc_layers: encoder LSTM layers.
    """

    n_bands: int = N_BANDS
    n_joints: int = N_JOINTS
    conv_channels: int = 64
    conv_layers: int = 3
    hidden: int = 128
    enc_layers: int = 2

    def __post_init__(self) -> None:
        if min(self.n_bands, self.n_joints, self.conv_channels, self.conv_layers, self.hidden, self.enc_layers) < 1:
            raise ValueError(f"all DanceConfig sizes must be positive, got {self}")


class DanceNet(nn.Module):
    """Audio features (B, T, n_bands) -> poses (B, T, J, 2) and per-frame beat logits (B, T)."""

    def __init__(self, config: DanceConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DanceConfig()
        layers: list[nn.Module] = []
        ch = config.n_bands
        for _ in range(config.conv_layers):
            layers += [nn.Conv1d(ch, config.conv_channels, 5, padding=2), nn.ReLU()]
            ch = config.conv_channels
        self.conv = nn.Sequential(*layers)
        self.encoder = nn.LSTM(ch, config.hidden, num_layers=config.enc_layers, batch_first=True)
        self.beat_head = nn.Linear(config.hidden, 1)
        pose_dim = 2 * config.n_joints
        self.decoder = nn.LSTMCell(config.hidden + pose_dim, config.hidden)
        self.out = nn.Linear(config.hidden, pose_dim)
        self.register_buffer("feat_mean", torch.zeros(config.n_bands))
        self.register_buffer("feat_std", torch.ones(config.n_bands))
        self.register_buffer("rest_pose", torch.zeros(pose_dim))

    def encode(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, n_bands) -> encoder states (B, T, hidden)."""
        x = (feats - self.feat_mean) / self.feat_std
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T, C)
        return self.encoder(x)[0]

    def forward(self, feats: torch.Tensor, target: torch.Tensor | None = None,
                teacher: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run encoder and decoder.

        Args:
            feats: (B, T, n_bands) log power spectrum frames.
            target: (B, T, J, 2) reference poses, used as the decoder's previous pose where ``teacher`` is True.
            teacher: (T,) bool; False (or no target) feeds the decoder its own previous output.

        Returns:
            poses (B, T, J, 2) and beat logits (B, T).
        """
        enc = self.encode(feats)  # (B, T, H)
        B, T, _ = enc.shape
        prev = self.rest_pose.expand(B, -1)  # (B, 2J)
        h = enc.new_zeros(B, self.config.hidden)
        c = enc.new_zeros(B, self.config.hidden)
        flat_target = target.reshape(B, T, -1) if target is not None else None
        outs = []
        # Autoregressive: frame t needs the pose of frame t-1, so the decoder is a loop over frames.
        for t in range(T):
            h, c = self.decoder(torch.cat([enc[:, t], prev], dim=-1), (h, c))
            pose = prev + self.out(h)  # predict the motion of this frame
            outs.append(pose)
            use_truth = flat_target is not None and teacher is not None and bool(teacher[t])
            prev = flat_target[:, t] if use_truth else pose
        poses = torch.stack(outs, dim=1).reshape(B, T, self.config.n_joints, 2)
        return poses, self.beat_head(enc).squeeze(-1)

    @torch.no_grad()
    def generate(self, feats: torch.Tensor) -> torch.Tensor:
        """Free-running dance: (B, T, n_bands) -> (B, T, J, 2)."""
        return self.forward(feats)[0]

    def save(self, path: str | os.PathLike) -> None:
        """Write weights and config to one safetensors file."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, os.fspath(path), metadata={"config": json.dumps(asdict(self.config)), "kind": "dance"})

    @classmethod
    def load(cls, path: str | os.PathLike) -> DanceNet:
        """Load a model written by :meth:`save`."""
        return _load(cls, DanceConfig, path, "dance")


def _load(cls, config_cls, path: str | os.PathLike, kind: str):
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such weights file")
    with safe_open(os.fspath(path), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("kind") != kind or "config" not in meta:
        raise ModelError(f"{path}: not {kind} demo weights")
    model = cls(config_cls(**json.loads(meta["config"])))
    model.load_state_dict(load_file(os.fspath(path)))
    return model.eval()
