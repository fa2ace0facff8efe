"""Dance metrics: motion beats, beat F-measure against music beats, and step similarity."""

from __future__ import annotations

import numpy as np

from videollm.demos.dance.data import BEATS_PER_STEP, FPS, STEP_NAMES, dance_params, forward_kinematics, step_poses

BEAT_TOLERANCE = 0.070


def joint_speed(poses: np.ndarray) -> np.ndarray:
    """Summed joint speed per frame step: (T, J, 2) -> (T - 1,)."""
    return np.linalg.norm(np.diff(poses, axis=0), axis=-1).sum(-1)


def motion_beats(poses: np.ndarray, fps: float = FPS, rel_threshold: float = 0.5, radius: int = 2) -> np.ndarray:
    """Motion beats: the instants where the whole body stops and turns (local minima of the joint speed).

    Args:
        poses: (T, J, 2) joint positions.
        fps: frame rate of ``poses``.
        rel_threshold: a minimum counts only when its speed is below this fraction of the mean speed.
        radius: a minimum must be the smallest speed within ``radius`` frame steps on each side.

    Returns:
        (K,) beat times in seconds. Speed s_i is the motion from frame i to i+1, so a minimum at s_i means the
        body is still around frame i + 0.5 (the time reported).
    """
    speed = joint_speed(poses)
    if len(speed) < 3:
        return np.zeros(0)
    speed = np.convolve(np.pad(speed, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")  # light smoothing
    padded = np.pad(speed, radius, mode="constant", constant_values=np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)  # (T-1, 2r+1)
    is_min = (speed <= windows.min(axis=1)) & (speed < rel_threshold * speed.mean())
    # On a flat stretch every frame is a minimum: keep only the first frame of each run.
    is_min &= ~np.concatenate([[False], is_min[:-1]])
    # A minimum on the first or last step only says the clip starts or ends there.
    is_min[[0, -1]] = False
    return (np.flatnonzero(is_min) + 0.5) / fps


def measurable_beats(beats: np.ndarray, n_frames: int, fps: float = FPS, radius: int = 2) -> np.ndarray:
    """The beats that :func:`motion_beats` could find in a clip of ``n_frames``: not within the edge steps."""
    lo, hi = (radius + 1) / fps, (n_frames - radius - 1) / fps
    return beats[(beats >= lo) & (beats <= hi)]


def beat_f_measure(estimated: np.ndarray, reference: np.ndarray, tolerance: float = BEAT_TOLERANCE) -> dict:
    """F-measure of estimated beats against reference beats, each reference matched at most once.

    Args:
        estimated: (K,) beat times in seconds.
        reference: (R,) beat times in seconds.
        tolerance: a match needs |estimated - reference| <= tolerance (MIREX uses 70 ms).

    Returns:
        dict with precision, recall, f and the number of matches.
    """
    estimated, reference = np.sort(np.asarray(estimated, float)), np.sort(np.asarray(reference, float))
    if len(estimated) == 0 or len(reference) == 0:
        hit = 0
    else:
        dist = np.abs(estimated[:, None] - reference[None, :])  # (K, R)
        e_idx, r_idx = np.nonzero(dist <= tolerance)
        order = np.argsort(dist[e_idx, r_idx], kind="stable")
        used_e, used_r, hit = set(), set(), 0
        # Greedy closest-first matching; optimal here because beats are further apart than 2 * tolerance.
        for k in order:
            e, r = int(e_idx[k]), int(r_idx[k])
            if e not in used_e and r not in used_r:
                used_e.add(e)
                used_r.add(r)
                hit += 1
    precision = hit / len(estimated) if len(estimated) else 0.0
    recall = hit / len(reference) if len(reference) else 0.0
    f = 2 * precision * recall / (precision + recall) if hit else 0.0
    return {"precision": precision, "recall": recall, "f": f, "matches": hit}


def step_templates(beats: np.ndarray, n_frames: int, bar: int) -> np.ndarray:
    """Joints of every vocabulary step danced on the beats of bar ``bar``: (S, T, J, 2)."""
    out = []
    for s in range(len(STEP_NAMES)):
        keys = np.zeros((len(beats), 11))
        lo = bar * BEATS_PER_STEP
        keys[lo: lo + BEATS_PER_STEP] = step_poses(s, BEATS_PER_STEP)[: len(beats) - lo]
        out.append(forward_kinematics(dance_params(keys, beats, n_frames)))
    return np.stack(out)


def step_accuracy(poses: np.ndarray, beats: np.ndarray, styles: np.ndarray) -> float:
    """Fraction of whole bars where the motion is closest to the reference step (nearest template, joint MSE).

    Args:
        poses: (T, J, 2) generated joints at FPS.
        beats: (K,) music beat times; bar b spans beats 4b .. 4b+3 (until the next bar's first beat).
        styles: (K,) reference step index of each beat.

    Returns:
        Accuracy over the bars that end before the song does (nan when there are none).
    """
    n_frames = len(poses)
    t = np.arange(n_frames) / FPS
    correct, total = 0, 0
    for bar in range(len(beats) // BEATS_PER_STEP - 1):
        lo, hi = beats[bar * BEATS_PER_STEP], beats[(bar + 1) * BEATS_PER_STEP]
        frames = (t > lo) & (t <= hi)
        templates = step_templates(beats, n_frames, bar)[:, frames]  # (S, F, J, 2)
        err = ((templates - poses[None, frames]) ** 2).mean(axis=(1, 2, 3))  # (S,)
        correct += int(np.argmin(err) == styles[bar * BEATS_PER_STEP])
        total += 1
    return correct / total if total else float("nan")


def joint_error(poses: np.ndarray, reference: np.ndarray) -> float:
    """Mean Euclidean joint distance between two (T, J, 2) sequences, in body units (torso = 0.5)."""
    return float(np.linalg.norm(poses - reference, axis=-1).mean())
