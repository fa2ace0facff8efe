"""Training, decoding and scoring of the keyword recognisers (CPU, minutes)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from videollm.demos.speech.data import (
    BLANK, SNRS_DB, Clip, Stream, features, frame_targets, make_stream, step_end_times, synthesise_clips,
)
from videollm.demos.speech.model import SpeechConfig, SpeechNet

THRESHOLD = 0.5
SMOOTH = 3  # steps averaged (causally) before thresholding
MATCH_AFTER = 0.5  # a detection counts for a word up to this long after the word's end


def smooth_probs(probs: np.ndarray) -> np.ndarray:
    """Causal moving average over the last SMOOTH steps (fewer at the start): (T, C) -> (T, C)."""
    c = np.cumsum(np.concatenate([np.zeros((1, probs.shape[1])), probs]), axis=0)
    t = np.arange(1, len(probs) + 1)
    lo = np.maximum(t - SMOOTH, 0)
    return (c[t] - c[lo]) / (t - lo)[:, None]


def detect(probs: np.ndarray, threshold: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Word detections from per-step posteriors: (T, C) -> (steps, classes) of the detections.

    A word c fires at the first step where its smoothed probability passes ``threshold`` after a step where
    it did not (or another word was on). Same rule as :class:`WordDetector`, all steps at once.
    """
    p = smooth_probs(probs)
    cls = np.argmax(p[:, 1:], axis=1) + 1  # best word per step
    on = p[np.arange(len(p)), cls] > threshold
    prev_on = np.concatenate([[False], on[:-1]])
    prev_cls = np.concatenate([[BLANK], cls[:-1]])
    fire = on & (~prev_on | (prev_cls != cls))
    return np.flatnonzero(fire), cls[fire]


class WordDetector:
    """The streaming form of :func:`detect`: feed one posterior vector per step, get a class or None."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self.recent: list[np.ndarray] = []
        self.prev_on, self.prev_cls = False, BLANK

    def update(self, probs: np.ndarray) -> int | None:
        """probs (C,) for the newest step -> the word class detected at this step, or None."""
        self.recent = (self.recent + [probs])[-SMOOTH:]
        p = np.mean(self.recent, axis=0)
        cls = int(np.argmax(p[1:]) + 1)
        on = bool(p[cls] > self.threshold)
        fire = on and (not self.prev_on or self.prev_cls != cls)
        self.prev_on, self.prev_cls = on, cls
        return cls if fire else None


def score(stream: Stream, det_times: np.ndarray, det_classes: np.ndarray) -> dict:
    """Compare detections with the words of a stream.

    Each detection is assigned to the latest word that started before it, if it comes no later than
    MATCH_AFTER seconds after that word's end; a word is recognised when its first assigned detection has its
    class. Latency = detection time - word end, over recognised words.

    Returns:
        dict: words, correct, insertions (detections not assigned, or after a word's first), latencies (list).
    """
    word = np.searchsorted(stream.starts, det_times, side="right") - 1  # (K,) latest word started
    valid = (word >= 0) & (det_times <= stream.ends[np.clip(word, 0, None)] + MATCH_AFTER)
    first = np.zeros(len(det_times), bool)
    if valid.any():
        _, idx = np.unique(word[valid], return_index=True)
        first[np.flatnonzero(valid)[idx]] = True
    hit = first & (det_classes == stream.labels[np.clip(word, 0, None)])
    latencies = det_times[hit] - stream.ends[word[hit]]
    return {"words": len(stream.labels), "correct": int(hit.sum()), "insertions": int((~first).sum()),
            "latencies": latencies.tolist()}


def batch_from_streams(streams: list[Stream]) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (B, T, d_in) and targets (B, T), padded to the longest stream (targets -100 on padding)."""
    feats = [features(s.audio) for s in streams]
    T = max(len(f) for f in feats)
    x = np.zeros((len(feats), T, feats[0].shape[1]), np.float32)
    y = np.full((len(feats), T), -100, np.int64)
    for i, (f, s) in enumerate(zip(feats, streams)):
        x[i, : len(f)] = f
        x[i, len(f):] = f[-1]
        y[i, : len(f)] = frame_targets(s, len(f))
    return torch.from_numpy(x), torch.from_numpy(y)


def default_config(kind: str) -> SpeechConfig:
    """The shipped sizes: LMU (~74k parameters) and a windowed CNN of similar size (~88k, 1.22 s window)."""
    return SpeechConfig(kind="lmu") if kind == "lmu" else SpeechConfig(kind="cnn", hidden=64)


def train_speech(kind: str = "lmu", seed: int = 0, steps: int = 800, batch: int = 16, n_takes: int = 80,
                 words_per_stream: int = 4, lr: float = 3e-3, clips: list[Clip] | None = None,
                 log: Callable[[str], None] | None = None) -> SpeechNet:
    """Train a recogniser from scratch on noisy streams of training-voice words.

    Args:
        kind: "lmu" (recurrent) or "cnn" (windowed baseline).
        seed: fixes the clips, the streams, the initialisation.
        steps: optimiser steps.
        batch: streams per step.
        n_takes: espeak-ng takes (each = every word once) in the clip bank.
        words_per_stream: words per training stream.
        lr: AdamW learning rate (cosine decay).
        clips: a ready clip bank (skips synthesis; tests use a tiny one).
        log: called with a progress line now and then.

    Returns:
        The trained model in eval mode.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    clips = clips if clips is not None else synthesise_clips(n_takes, seed, heldout=False)
    model = SpeechNet(default_config(kind))
    sample, _ = batch_from_streams([make_stream(clips, rng, words_per_stream, 20.0) for _ in range(16)])
    model.feat_mean.copy_(sample.mean(dim=(0, 1)))
    model.feat_std.copy_(sample.std(dim=(0, 1)) + 1e-3)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * s / steps)))
    # Blank dominates the frames; down-weight it so that words are not drowned.
    weight = torch.ones(model.config.n_classes)
    weight[BLANK] = 0.3
    start = time.time()
    for step in range(steps):
        snrs = rng.choice(SNRS_DB, size=batch)
        x, y = batch_from_streams([make_stream(clips, rng, words_per_stream, float(s)) for s in snrs])
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), weight=weight, ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if log and (step % 100 == 0 or step == steps - 1):
            log(f"{kind} step {step} loss {loss.item():.4f} ({time.time() - start:.0f}s)")
    return model.eval()


def evaluate_speech(model: SpeechNet, clips: list[Clip], seed: int = 0, streams_per_snr: int = 20,
                    words_per_stream: int = 8) -> dict:
    """Accuracy, insertions and latency on streams of (held-out) clips at every SNR in SNRS_DB.

    Returns:
        dict: per_snr {snr: {accuracy, insertions_per_word, words}}, accuracy (all SNRs),
        latency_median_s / latency_p90_s (recognised words), n_params.
    """
    rng = np.random.default_rng(seed)
    per_snr, totals, lat = {}, {"words": 0, "correct": 0, "insertions": 0}, []
    for snr in SNRS_DB:
        streams = [make_stream(clips, rng, words_per_stream, snr) for _ in range(streams_per_snr)]
        x, _ = batch_from_streams(streams)
        with torch.no_grad():
            probs = torch.softmax(model(x), dim=-1).numpy()
        agg = {"words": 0, "correct": 0, "insertions": 0}
        for s, p in zip(streams, probs):
            n = len(features(s.audio))
            steps, classes = detect(p[:n])
            r = score(s, step_end_times(n)[steps], classes)
            for k in agg:
                agg[k] += r[k]
            lat += r["latencies"]
        per_snr[str(int(snr))] = {"accuracy": agg["correct"] / agg["words"],
                                  "insertions_per_word": agg["insertions"] / agg["words"], "words": agg["words"]}
        for k in totals:
            totals[k] += agg[k]
    return {
        "accuracy": totals["correct"] / totals["words"],
        "insertions_per_word": totals["insertions"] / totals["words"],
        "per_snr": per_snr,
        "latency_median_s": float(np.median(lat)) if lat else float("nan"),
        "latency_p90_s": float(np.percentile(lat, 90)) if lat else float("nan"),
        "n_params": sum(p.numel() for p in model.parameters()),
    }
