"""Training and evaluation of the dance network (CPU, minutes).

Loss = pose MSE (+ velocity MSE, so the timing of the stops matters as much as the poses)
     + BCE of the encoder's beat head against *weak labels*: the motion beats of the reference dance
     + a contrastive (InfoNCE) term over the batch that ties the generated motion-beat curve of each song to the
       beat curve of its own music rather than to those of the other songs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from videollm.demos.dance.data import FPS, STEP_NAMES, dance_params, forward_kinematics, make_dataset, step_poses
from videollm.demos.dance.metrics import beat_f_measure, joint_error, measurable_beats, motion_beats, step_accuracy
from videollm.demos.dance.model import DanceConfig, DanceNet


def beat_curve(beat_frames: list[np.ndarray], n_frames: int, sigma: float = 1.0) -> np.ndarray:
    """Soft beat targets: a Gaussian bump (peak 1) at each beat frame; returns (B, n_frames)."""
    t = np.arange(n_frames)[None, :, None]
    out = np.zeros((len(beat_frames), n_frames), dtype=np.float32)
    for i, frames in enumerate(beat_frames):
        if len(frames):
            out[i] = np.exp(-0.5 * ((t[0] - np.asarray(frames)[None, :]) / sigma) ** 2).max(axis=1)
    return out


def motion_beat_signal(poses: torch.Tensor) -> torch.Tensor:
    """Differentiable motion-beat curve: high where the body is slow relative to its mean speed.

    (B, T, J, 2) -> (B, T - 1); value 1 - speed / mean speed, clipped at 0.
    """
    speed = (poses[:, 1:] - poses[:, :-1]).norm(dim=-1).sum(-1)  # (B, T-1)
    return F.relu(1.0 - speed / (speed.mean(dim=1, keepdim=True) + 1e-6))


def contrastive_loss(motion: torch.Tensor, music: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE between motion-beat curves (B, T) and music-beat curves (B, T) of the same songs."""
    m = F.normalize(motion - motion.mean(dim=1, keepdim=True), dim=1)
    b = F.normalize(music - music.mean(dim=1, keepdim=True), dim=1)
    logits = m @ b.T / temperature  # (B, B)
    labels = torch.arange(len(m), device=m.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def teacher_mask(n_frames: int, rng: np.random.Generator, truth: int = 4, own: int = 8) -> torch.Tensor:
    """Auto-conditioning schedule: ``truth`` frames fed the reference, then ``own`` frames fed its own output."""
    phase = (np.arange(n_frames) + rng.integers(truth + own)) % (truth + own)
    return torch.from_numpy(phase < truth)


def dance_loss(model: DanceNet, feats: torch.Tensor, poses: torch.Tensor, beat_target: torch.Tensor,
               teacher: torch.Tensor, contrastive: float) -> tuple[torch.Tensor, dict]:
    """Total training loss and its parts for one batch (shapes as in :meth:`DanceNet.forward`)."""
    pred, beat_logits = model(feats, poses, teacher)
    pose = F.mse_loss(pred, poses)
    vel = F.mse_loss(pred[:, 1:] - pred[:, :-1], poses[:, 1:] - poses[:, :-1]) * 25.0
    weak = F.binary_cross_entropy_with_logits(beat_logits, beat_target, pos_weight=beat_target.new_tensor(4.0))
    total = pose + vel + 0.1 * weak
    parts = {"pose": pose.item(), "vel": vel.item(), "weak": weak.item()}
    if contrastive > 0:
        con = contrastive_loss(motion_beat_signal(pred), beat_target[:, :-1])
        total = total + contrastive * con
        parts["contrastive"] = con.item()
    return total, parts


def prepare(data: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tensors of a dataset: feats (N, T, F), poses (N, T, J, 2) and weak beat labels (N, T)."""
    n_frames = data["poses"].shape[1]
    frames = [np.round(motion_beats(p) * FPS - 0.5) for p in data["poses"]]
    labels = beat_curve(frames, n_frames)
    return torch.from_numpy(data["feats"]), torch.from_numpy(data["poses"]), torch.from_numpy(labels)


def train_dance(seed: int = 0, steps: int = 600, batch: int = 16, n_songs: int = 384, seconds: float = 6.0,
                contrastive: float = 0.2, lr: float = 2e-3, config: DanceConfig | None = None,
                log: Callable[[str], None] | None = None) -> DanceNet:
    """Train a :class:`DanceNet` from scratch on generated songs (training tempos only).

    Args:
        seed: fixes the data, the initialisation and the batches.
        steps: optimiser steps.
        batch: songs per step.
        n_songs: size of the generated training set.
        seconds: length of each training song.
        contrastive: weight of the contrastive term (0 disables it, the ablation baseline).
        lr: Adam learning rate (cosine decay to 10%).
        config: model sizes.
        log: called with a progress line now and then.

    Returns:
        The trained model in eval mode, with its feature normalisation set.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    feats, poses, labels = prepare(make_dataset(n_songs, seconds, seed))
    model = DanceNet(config)
    model.feat_mean.copy_(feats.mean(dim=(0, 1)))
    model.feat_std.copy_(feats.std(dim=(0, 1)) + 1e-3)
    model.rest_pose.copy_(torch.from_numpy(forward_kinematics(np.zeros(11))).reshape(-1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * s / steps)))
    start = time.time()
    for step in range(steps):
        idx = torch.from_numpy(rng.choice(len(feats), size=batch, replace=False))
        loss, parts = dance_loss(model, feats[idx], poses[idx], labels[idx], teacher_mask(feats.shape[1], rng),
                                 contrastive)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if log and (step % 50 == 0 or step == steps - 1):
            log(f"step {step} loss {loss.item():.4f} " + " ".join(f"{k} {v:.4f}" for k, v in parts.items())
                + f" ({time.time() - start:.0f}s)")
    return model.eval()


def fixed_period_dance(styles_per_beat: np.ndarray, n_frames: int, period: float = 0.5) -> np.ndarray:
    """Baseline: the reference steps, danced at a fixed period (120 BPM) from t = period: (T, J, 2)."""
    n = int(n_frames / FPS / period) + 2
    steps = np.resize(styles_per_beat, n) if len(styles_per_beat) else np.zeros(n, int)
    keys = np.concatenate([step_poses(int(s), 1, first=i % 4) for i, s in enumerate(steps)])
    return forward_kinematics(dance_params(keys, period * (1 + np.arange(n)), n_frames))


def evaluate_dance(model: DanceNet | None, data: dict) -> dict:
    """Metrics on a generated dataset; ``model=None`` scores the fixed-period baseline.

    Returns:
        dict: beat_f (mean F-measure of motion beats vs music beats, +-70 ms), step_accuracy (bars whose nearest
        step template is the reference step), joint_error (mean joint distance to the reference), n_songs.
    """
    if model is None:
        generated = [fixed_period_dance(s.styles, len(s.poses)) for s in data["songs"]]
    else:
        with torch.no_grad():
            generated = list(model.generate(torch.from_numpy(data["feats"])).numpy())
    f, acc, err = [], [], []
    for song, poses in zip(data["songs"], generated):
        f.append(beat_f_measure(motion_beats(poses), measurable_beats(song.beats, len(poses)))["f"])
        acc.append(step_accuracy(poses, song.beats, song.styles))
        err.append(joint_error(poses, song.poses))
    acc_mean = float(np.nanmean(acc)) if not np.all(np.isnan(acc)) else float("nan")  # nan: no whole bars
    return {"beat_f": float(np.mean(f)), "step_accuracy": acc_mean, "joint_error": float(np.mean(err)),
            "n_songs": len(f), "steps": list(STEP_NAMES)}
