"""Synthetic music with known beats and the reference dances that go with it (numpy, seeded).

A song is a sequence of two-bar sections at one tempo; each section has a *style* (a drum/tone pattern) and the
reference dancer performs the step that belongs to that style, one key pose per beat, so every accent of the dance
(the moment the limbs stop and turn) lands on a music beat. Between key poses the joints move with an ease-in/out
curve whose speed is zero only at the beats, which is what makes the motion beat well defined.

Timing: audio at ``SAMPLE_RATE``; poses and features at ``FPS``; feature frame i sees audio from i/FPS to
i/FPS + WIN/SAMPLE_RATE (see :func:`videollm.demos.audio.frame_signal`).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import numpy as np

from videollm.demos.audio import log_mel, read_wav, resample

SAMPLE_RATE = 16000
FPS = 25
HOP = SAMPLE_RATE // FPS
WIN = 2 * HOP
N_BANDS = 64
BEATS_PER_STEP = 4
BEATS_PER_SECTION = 8

# Tempos (BPM) never drawn for training; the evaluation songs use exactly these.
HELDOUT_TEMPOS = (92.0, 111.0, 133.0)
TEMPO_RANGE = (84.0, 144.0)
KIVY_AUDIO_DIR = "/usr/share/kivy-examples/audio"

JOINTS = (
    "pelvis", "neck", "head", "l_shoulder", "l_elbow", "l_hand", "r_shoulder", "r_elbow", "r_hand",
    "l_hip", "l_knee", "l_foot", "r_hip", "r_knee", "r_foot",
)
BONES = (
    (0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (1, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (0, 12), (12, 13),
    (13, 14),
)
N_JOINTS = len(JOINTS)

# Pose parameters: pelvis x, pelvis y, torso lean, then limb angles in radians measured from hanging straight
# down, positive = away from the body's midline: l/r shoulder, l/r elbow (relative), l/r hip, l/r knee (relative).
PARAMS = ("x", "y", "lean", "lsh", "lel", "rsh", "rel", "lhip", "lknee", "rhip", "rknee")


def _p(**kw: float) -> np.ndarray:
    out = np.zeros(len(PARAMS), dtype=np.float64)
    for k, v in kw.items():
        out[PARAMS.index(k)] = v
    return out


# The step vocabulary: four key poses, one per beat. Consecutive poses always differ, so the speed only stops
# at the beats.
STEPS: dict[str, tuple[np.ndarray, ...]] = {
    "bounce": (_p(y=-0.12, lhip=0.35, lknee=-0.7, rhip=0.35, rknee=-0.7, lsh=0.4, rsh=0.4, lel=0.8, rel=0.8),
               _p(y=0.02, lsh=0.2, rsh=0.2),
               _p(y=-0.12, lhip=0.35, lknee=-0.7, rhip=0.35, rknee=-0.7, lsh=0.4, rsh=0.4, lel=0.8, rel=0.8),
               _p(y=0.02, lsh=0.6, rsh=0.6)),
    "clap": (_p(lsh=1.6, rsh=1.6),
             _p(lsh=2.7, rsh=2.7, lel=0.5, rel=0.5),
             _p(lsh=1.6, rsh=1.6),
             _p(lsh=0.6, rsh=0.6, lel=2.2, rel=2.2)),
    "side": (_p(x=-0.15, lhip=0.5, lsh=1.0, rsh=0.3),
             _p(x=0.0, lhip=0.1, rhip=0.1, lsh=0.2, rsh=0.2),
             _p(x=0.15, rhip=0.5, rsh=1.0, lsh=0.3),
             _p(x=0.0, lhip=0.1, rhip=0.1, lsh=0.4, rsh=0.4)),
    "point": (_p(rsh=2.6, lsh=0.3, lean=-0.1),
              _p(rsh=0.8, rel=1.6, lsh=0.3),
              _p(lsh=2.6, rsh=0.3, lean=0.1),
              _p(lsh=0.8, lel=1.6, rsh=0.3)),
    "kick": (_p(lhip=1.1, lknee=-0.2, y=0.03, lsh=1.2, rsh=1.2),
             _p(lsh=0.5, rsh=0.5, lel=0.6, rel=0.6),
             _p(rhip=1.1, rknee=-0.2, y=0.03, lsh=1.2, rsh=1.2),
             _p(lsh=0.3, rsh=0.3)),
}
STEP_NAMES = tuple(STEPS)
# Style i of the music is danced with step i.
STYLES = ("four_on_floor", "backbeat", "march", "tonal", "shuffle")


def ease(phase: np.ndarray) -> np.ndarray:
    """Ease-in/out from 0 to 1 on [0, 1] whose derivative (1 - cos 2*pi*phase) is zero only at the ends."""
    return phase - np.sin(2.0 * np.pi * phase) / (2.0 * np.pi)


def forward_kinematics(params: np.ndarray) -> np.ndarray:
    """Pose parameters (..., 11) to joint positions (..., 15, 2): y up, standing pelvis at (0, 0)."""
    x, y, lean = params[..., 0], params[..., 1], params[..., 2]
    lsh, lel, rsh, rel = params[..., 3], params[..., 4], params[..., 5], params[..., 6]
    lhip, lknee, rhip, rknee = params[..., 7], params[..., 8], params[..., 9], params[..., 10]

    def seg(origin: np.ndarray, angle: np.ndarray, length: float, side: float) -> np.ndarray:
        # side -1 = the figure's left (drawn on the viewer's left); angle 0 hangs down, positive swings outward.
        return origin + length * np.stack([side * np.sin(angle), -np.cos(angle)], axis=-1)

    pelvis = np.stack([x, y], axis=-1)
    neck = pelvis + 0.5 * np.stack([np.sin(lean), np.cos(lean)], axis=-1)
    head = neck + 0.17 * np.stack([np.sin(lean), np.cos(lean)], axis=-1)
    across = np.stack([np.cos(lean), -np.sin(lean)], axis=-1)
    l_sh, r_sh = neck - 0.15 * across, neck + 0.15 * across
    l_el = seg(l_sh, lsh, 0.27, -1.0)
    l_ha = seg(l_el, lsh + lel, 0.25, -1.0)
    r_el = seg(r_sh, rsh, 0.27, 1.0)
    r_ha = seg(r_el, rsh + rel, 0.25, 1.0)
    l_hp, r_hp = pelvis - 0.1 * across, pelvis + 0.1 * across
    l_kn = seg(l_hp, lhip, 0.4, -1.0)
    l_ft = seg(l_kn, lhip + lknee, 0.4, -1.0)
    r_kn = seg(r_hp, rhip, 0.4, 1.0)
    r_ft = seg(r_kn, rhip + rknee, 0.4, 1.0)
    return np.stack([pelvis, neck, head, l_sh, l_el, l_ha, r_sh, r_el, r_ha, l_hp, l_kn, l_ft, r_hp, r_kn, r_ft], -2)


def dance_params(key_poses: np.ndarray, key_times: np.ndarray, n_frames: int) -> np.ndarray:
    """Interpolate key poses (K, 11) reached at times (K,) to (n_frames, 11) at ``FPS``.

    Before the first key time the dancer moves from the neutral pose; after the last one it holds still.
    """
    t = np.arange(n_frames) / FPS
    poses = np.concatenate([np.zeros((1, key_poses.shape[1])), key_poses])  # (K+1, 11)
    times = np.concatenate([[min(0.0, key_times[0] - 0.5)], key_times])  # (K+1,)
    idx = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)  # segment of each frame
    phase = np.clip((t - times[idx]) / (times[idx + 1] - times[idx]), 0.0, 1.0)
    w = ease(phase)[:, None]
    out = (1.0 - w) * poses[idx] + w * poses[idx + 1]
    return np.where((t >= times[-1])[:, None], poses[-1], out)


def step_poses(step: int, n_beats: int, first: int = 0) -> np.ndarray:
    """Key poses (n_beats, 11) of step index ``step`` starting at key pose ``first``."""
    keys = np.stack(STEPS[STEP_NAMES[step]])
    return keys[(first + np.arange(n_beats)) % len(keys)]


@dataclass
class Song:
    """One generated song with its reference dance.

    Attributes:
        audio: (N,) float32 at SAMPLE_RATE.
        beats: (K,) music beat times in seconds.
        styles: (K,) style index of each beat (= the step the reference dances on that beat).
        tempo: beats per minute.
        poses: (T, 15, 2) reference joints at FPS, T = ceil(N / HOP).
    """

    audio: np.ndarray
    beats: np.ndarray
    styles: np.ndarray
    tempo: float
    poses: np.ndarray


class DrumKit:
    """One-shot sounds: synthesised, or the CC0 drum samples of Debian's python-kivy-examples when present."""

    def __init__(self, rng: np.random.Generator, use_samples: bool) -> None:
        n = int(0.25 * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        f0 = rng.uniform(45.0, 70.0)
        sweep = np.cumsum(f0 + (rng.uniform(110.0, 180.0) - f0) * np.exp(-t * 40.0)) / SAMPLE_RATE
        self.sounds = {
            "kick": np.sin(2 * np.pi * sweep) * np.exp(-t * rng.uniform(12.0, 20.0)),
            "snare": np.convolve(rng.standard_normal(n), [1.0, -0.7], "same")
            * np.exp(-t * rng.uniform(18.0, 30.0)) * 0.5,
            "hat": np.diff(rng.standard_normal(n + 1)) * np.exp(-t * rng.uniform(60.0, 90.0)) * 0.25,
        }
        files = {"kick": "*kick*", "snare": "*clap*", "hat": "*hat*"}
        if use_samples and os.path.isdir(KIVY_AUDIO_DIR):
            for name, pattern in files.items():
                found = sorted(glob.glob(os.path.join(KIVY_AUDIO_DIR, pattern + ".wav")))
                if found:
                    data, rate = read_wav(found[rng.integers(len(found))])
                    data = resample(data, rate, SAMPLE_RATE)[: SAMPLE_RATE // 2]
                    self.sounds[name] = data / (np.abs(data).max() + 1e-6) * 0.8


def _tone(freq: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    harmonics = sum(np.sin(2 * np.pi * freq * h * t) / h for h in (1, 2, 3))
    return harmonics * np.exp(-t * rng.uniform(3.0, 8.0)) * 0.3


def _hits(style: int, beat_len: float) -> list[tuple[str, float]]:
    """(sound, offset in seconds from the section start) for one two-bar section of a style."""
    out: list[tuple[str, float]] = []
    for b in range(BEATS_PER_SECTION):
        on, half = b * beat_len, (b + 0.5) * beat_len
        if style == 0:
            out += [("kick", on), ("hat", half)]
        elif style == 1:
            out += [("kick" if b % 2 == 0 else "snare", on), ("hat", on), ("hat", half)]
        elif style == 2:
            out += [("kick", on), ("snare", on), ("tone_lo", on)]
        elif style == 3:
            out += [("tone", on)]
        else:
            out += [("kick", on), ("hat", (b + 2 / 3) * beat_len)] + ([("snare", on)] if b % 2 else [])
    return out


def make_song(rng: np.random.Generator, seconds: float, tempo: float | None = None, use_samples: bool = True,
              heldout: bool = False) -> Song:
    """Generate one song and its reference dance.

    Args:
        rng: the random generator (everything is drawn from it, so a seed fixes the song).
        seconds: length.
        tempo: BPM; default a random training tempo (never within 3 BPM of HELDOUT_TEMPOS), or a random
            held-out tempo when ``heldout``.
        use_samples: allow the kivy drum samples when installed.
        heldout: draw a held-out tempo.

    Returns:
        The :class:`Song`.
    """
    if tempo is None:
        if heldout:
            tempo = float(rng.choice(HELDOUT_TEMPOS))
        else:
            tempo = float(rng.uniform(*TEMPO_RANGE))
            while min(abs(tempo - h) for h in HELDOUT_TEMPOS) < 3.0:
                tempo = float(rng.uniform(*TEMPO_RANGE))
    beat_len = 60.0 / tempo
    n = int(seconds * SAMPLE_RATE)
    start = rng.uniform(0.2, 0.2 + beat_len)
    # The dance goes on two beats past the end so that the last beats inside the song are real turns.
    n_beats = int((seconds - start) / beat_len) + 3
    beats = start + beat_len * np.arange(n_beats)
    n_sections = -(-n_beats // BEATS_PER_SECTION)
    section_styles = rng.integers(len(STYLES), size=n_sections)
    styles = np.repeat(section_styles, BEATS_PER_SECTION)[:n_beats]

    kit = DrumKit(rng, use_samples and rng.random() < 0.5)
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    audio = np.zeros(n + SAMPLE_RATE, dtype=np.float64)
    for s, style in enumerate(section_styles):
        t0 = start + s * BEATS_PER_SECTION * beat_len
        for sound, offset in _hits(int(style), beat_len):
            if sound.startswith("tone"):
                degree = scale[rng.integers(len(scale))]
                wave = _tone(root * 2 ** (degree / 12) * (0.5 if sound == "tone_lo" else 1.0), beat_len, rng)
            else:
                wave = kit.sounds[sound]
            i = int(round((t0 + offset) * SAMPLE_RATE))
            if i < n:
                audio[i: i + len(wave)] += wave * rng.uniform(0.7, 1.0)
        # A bright accent on the first beat of every bar, as real music marks its downbeats: it tells the
        # dancer where a step (four beats) begins.
        for bar in range(BEATS_PER_SECTION // BEATS_PER_STEP):
            i = int(round((t0 + bar * BEATS_PER_STEP * beat_len) * SAMPLE_RATE))
            if i < n:
                wave = _tone(root * 4 * (1.5 if bar else 1.0), beat_len / 2, rng)
                audio[i: i + len(wave)] += wave * 0.8
    audio = audio[:n]
    audio += rng.standard_normal(n) * 10 ** rng.uniform(-3.5, -2.5)
    audio = (audio / (np.abs(audio).max() + 1e-9) * rng.uniform(0.5, 0.9)).astype(np.float32)

    # Key pose k lands on beat k; each section starts its step from its first key pose.
    keys = np.concatenate([
        step_poses(int(st), min(BEATS_PER_SECTION, n_beats - s * BEATS_PER_SECTION))
        for s, st in enumerate(section_styles)
    ])
    n_frames = -(-n // HOP)
    poses = forward_kinematics(dance_params(keys, beats, n_frames)).astype(np.float32)
    inside = beats < seconds
    return Song(audio=audio, beats=beats[inside], styles=styles[inside], tempo=tempo, poses=poses)


def audio_features(audio: np.ndarray) -> np.ndarray:
    """Log power spectrum in ``N_BANDS`` mel bands at ``FPS``: (N,) audio -> (ceil(N / HOP), N_BANDS)."""
    return log_mel(audio, SAMPLE_RATE, WIN, HOP, N_BANDS)


def make_dataset(n: int, seconds: float, seed: int, heldout: bool = False, use_samples: bool = True) -> dict:
    """Generate ``n`` songs; returns arrays ``feats`` (n, T, N_BANDS), ``poses`` (n, T, 15, 2) and the songs."""
    rng = np.random.default_rng(seed)
    songs = [make_song(rng, seconds, heldout=heldout, use_samples=use_samples) for _ in range(n)]
    feats = np.stack([audio_features(s.audio) for s in songs])
    poses = np.stack([s.poses for s in songs])
    return {"feats": feats, "poses": poses, "songs": songs}
