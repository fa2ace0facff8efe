"""Spoken command words synthesised with espeak-ng, and noisy streams of them with word timings (seeded).

A *voice* is an espeak-ng accent plus a voice variant; the held-out voices (any held-out accent or variant) never
appear in training. Each espeak-ng call speaks all words once, separated by sentence pauses, and the clean
synthetic silence between them is where the clips are cut.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from dataclasses import dataclass

import numpy as np

from videollm.demos.audio import log_mel, resample
from videollm.errors import VideollmError

SAMPLE_RATE = 16000
HOP = 160  # 10 ms feature frames
WIN = 400  # 25 ms window
N_MELS = 40
STACK = 2  # feature frames per model step: the recogniser runs at 50 steps per second
STEP_SECONDS = STACK * HOP / SAMPLE_RATE

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
BLANK = 0  # class 0 is "no word ends here"; word i is class i + 1
N_CLASSES = len(WORDS) + 1

ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-us-nyc", "en-gb-x-gbcwmd",
           "en-029")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f5", "klatt", "klatt2", "m6", "f4", "klatt3")
HELDOUT_ACCENTS = ("en-gb-x-gbcwmd", "en-029")
HELDOUT_VARIANTS = ("m6", "f4", "klatt3")
SNRS_DB = (30.0, 20.0, 10.0, 5.0, 0.0)

# Frames labelled with the word: from LABEL_BEFORE seconds before its end to LABEL_AFTER after it.
LABEL_BEFORE = 0.04
LABEL_AFTER = 0.16


class SpeechSynthError(VideollmError):
    """espeak-ng is missing or failed."""


@dataclass
class Clip:
    """One spoken word: (N,) float32 audio at SAMPLE_RATE, trimmed to the speech, and its class (1..20)."""

    audio: np.ndarray
    label: int
    voice: str


def voices(heldout: bool) -> list[str]:
    """espeak-ng voice names ``accent+variant``: the training voices, or the held-out ones."""
    out = []
    for accent in ACCENTS:
        for variant in VARIANTS:
            is_heldout = accent in HELDOUT_ACCENTS or variant in HELDOUT_VARIANTS
            if is_heldout == heldout:
                out.append(f"{accent}+{variant}")
    return out


def espeak(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """Speak ``text`` (SSML allowed) with espeak-ng; returns (N,) float32 at SAMPLE_RATE.

    Raises:
        SpeechSynthError: espeak-ng is not installed or fails.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechSynthError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    proc = subprocess.run([exe, "-m", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                          capture_output=True, check=False, timeout=60)
    if proc.returncode != 0 or not proc.stdout:
        raise SpeechSynthError(f"espeak-ng failed for voice {voice}: {proc.stderr.decode(errors='replace').strip()}")
    # espeak-ng writes a streaming WAV header with a bogus length: read the PCM that is actually there.
    with wave.open(io.BytesIO(proc.stdout)) as w:
        rate = w.getframerate()
        raw = proc.stdout[44:]
    pcm = np.frombuffer(raw[: len(raw) // 2 * 2], "<i2").astype(np.float32) / 32768.0
    return resample(pcm, rate, SAMPLE_RATE)


def split_words(audio: np.ndarray, min_gap: float = 0.15, pad: float = 0.01) -> list[np.ndarray]:
    """Cut speech separated by at least ``min_gap`` seconds of near silence into clips (each padded by ``pad``)."""
    block = SAMPLE_RATE // 100
    n = len(audio) // block
    loud = np.abs(audio[: n * block]).reshape(n, block).max(axis=1) > 0.01  # (n,) 10 ms blocks with speech
    idx = np.flatnonzero(loud)
    if len(idx) == 0:
        return []
    gaps = np.flatnonzero(np.diff(idx) * block / SAMPLE_RATE >= min_gap)
    starts = np.concatenate([[idx[0]], idx[gaps + 1]])
    ends = np.concatenate([idx[gaps], [idx[-1]]]) + 1
    p = int(pad * SAMPLE_RATE)
    return [audio[max(0, s * block - p): e * block + p] for s, e in zip(starts, ends)]


def synthesise_clips(n_takes: int, seed: int, heldout: bool) -> list[Clip]:
    """Speak every word ``n_takes`` times, each take with a random voice, speed and pitch.

    Args:
        n_takes: espeak-ng calls (each yields all the words once).
        seed: fixes voices, speeds, pitches and word order.
        heldout: use only held-out voices (otherwise only training voices).

    Returns:
        Clips; a take whose silence split does not give exactly one clip per word is skipped.
    """
    rng = np.random.default_rng(seed)
    pool = voices(heldout)
    clips: list[Clip] = []
    for _ in range(n_takes):
        voice = pool[rng.integers(len(pool))]
        order = rng.permutation(len(WORDS))
        # SSML breaks keep a clear pause between words even at the fastest speeds.
        text = "<speak>" + ' <break time="400ms"/> '.join(WORDS[i] for i in order) + "</speak>"
        audio = espeak(text, voice, int(rng.integers(120, 230)), int(rng.integers(20, 81)))
        pieces = split_words(audio)
        if len(pieces) == len(order):
            clips += [Clip(p, int(i) + 1, voice) for p, i in zip(pieces, order)]
    return clips


@dataclass
class Stream:
    """A noisy stream of words.

    Attributes:
        audio: (N,) float32 at SAMPLE_RATE.
        labels: (K,) word classes (1..20).
        starts: (K,) word start times in seconds.
        ends: (K,) word end times in seconds.
        snr_db: the speech-to-noise ratio used.
    """

    audio: np.ndarray
    labels: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    snr_db: float


def make_stream(clips: list[Clip], rng: np.random.Generator, n_words: int, snr_db: float,
                gap: tuple[float, float] = (0.15, 0.7)) -> Stream:
    """Concatenate ``n_words`` random clips with random silent gaps and add white or red noise at ``snr_db``."""
    pick = rng.integers(len(clips), size=n_words)
    gaps = rng.uniform(*gap, size=n_words + 1)
    pieces, labels, starts, ends = [], [], [], []
    t = 0
    for g, k in zip(gaps, pick):
        silence = int(g * SAMPLE_RATE)
        word = clips[k].audio * rng.uniform(0.3, 1.0) / (np.abs(clips[k].audio).max() + 1e-6)
        pieces += [np.zeros(silence, np.float32), word.astype(np.float32)]
        starts.append((t + silence) / SAMPLE_RATE)
        t += silence + len(word)
        ends.append(t / SAMPLE_RATE)
        labels.append(clips[k].label)
    pieces.append(np.zeros(int(gaps[-1] * SAMPLE_RATE), np.float32))
    audio = np.concatenate(pieces)
    speech_power = float(np.mean(np.concatenate([clips[k].audio for k in pick]) ** 2)) * 0.45
    noise = rng.standard_normal(len(audio))
    if rng.random() < 0.5:
        # Red noise (energy falling with frequency, like room rumble): a one-pole low-pass of white noise.
        from scipy.signal import lfilter

        noise = lfilter([1.0], [1.0, -rng.uniform(0.8, 0.98)], noise)
    noise *= np.sqrt(speech_power / 10 ** (snr_db / 10) / (np.mean(noise ** 2) + 1e-12))
    mixed = np.clip(audio + noise, -1.0, 1.0).astype(np.float32)
    return Stream(mixed, np.array(labels), np.array(starts), np.array(ends), snr_db)


def features(audio: np.ndarray) -> np.ndarray:
    """Log-mel frames stacked in pairs: (N,) audio -> (ceil(ceil(N / HOP) / STACK), STACK * N_MELS)."""
    mel = log_mel(audio, SAMPLE_RATE, WIN, HOP, N_MELS)  # (F, 40)
    pad = -len(mel) % STACK
    mel = np.concatenate([mel, np.full((pad, N_MELS), np.log(1e-6), np.float32)])
    return mel.reshape(-1, STACK * N_MELS)


def step_end_times(n_steps: int) -> np.ndarray:
    """Audio time (s) at which model step t has all its input: the end of its last frame's window."""
    return ((np.arange(n_steps) * STACK + STACK - 1) * HOP + WIN) / SAMPLE_RATE


def frame_targets(stream: Stream, n_steps: int) -> np.ndarray:
    """Per-step class targets (n_steps,): the word for steps ending within [end - 0.04, end + 0.16] s, else blank."""
    t = step_end_times(n_steps)
    target = np.zeros(n_steps, dtype=np.int64)
    for label, end in zip(stream.labels, stream.ends):
        target[(t >= end - LABEL_BEFORE) & (t <= end + LABEL_AFTER)] = label
    return target
