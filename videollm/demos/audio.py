"""Audio helpers shared by the demos: read any audio file, write WAV, and spectral features (numpy only).

torchaudio is not a dependency, so decoding goes through PyAV (any format ffmpeg reads) and the spectra are
computed with numpy's FFT. All signals are mono float32 in [-1, 1].
"""

from __future__ import annotations

import os
import wave
from functools import lru_cache

import numpy as np

from videollm.errors import VideoError


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode an audio (or video) file to mono float32 at ``sample_rate``.

    Args:
        path: any file ffmpeg can read (WAV, MP3, FLAC, MP4, ...).
        sample_rate: output rate in Hz.

    Returns:
        (N,) float32 samples in [-1, 1].

    Raises:
        VideoError: the file is missing, has no audio stream, or cannot be decoded.
    """
    import av

    if not os.path.isfile(path):
        raise VideoError(path, "no such file")
    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.audio:
                raise VideoError(path, "no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks = []
            for frame in container.decode(audio=0):
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except av.error.FFmpegError as err:
        raise VideoError(path, f"cannot decode audio ({type(err).__name__})") from err
    if not chunks:
        raise VideoError(path, "audio stream is empty")
    return np.clip(np.concatenate(chunks), -1.0, 1.0).astype(np.float32)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write (N,) float audio in [-1, 1] as 16-bit mono PCM WAV."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV (mono or the first channel) without ffmpeg; returns ((N,) float32, rate)."""
    with wave.open(os.fspath(path), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    if width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 4:
        data = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    else:
        raise VideoError(path, f"unsupported WAV sample width {width}")
    return data.reshape(-1, channels)[:, 0].copy(), rate


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased) of (N,) audio; returns float32."""
    if rate_in == rate_out:
        return audio.astype(np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate_in, rate_out)
    return resample_poly(audio, rate_out // g, rate_in // g).astype(np.float32)


def frame_signal(audio: np.ndarray, win: int, hop: int) -> np.ndarray:
    """Cut (N,) audio into frames ``i*hop : i*hop + win`` (zero-padded at the end); returns (n_frames, win).

    Frame i covers the audio *ending* near ``i*hop + win``; there are ``ceil(N / hop)`` frames, so frame i is
    the one computed once sample ``i*hop + win`` has arrived (what a streaming front end can do).
    """
    n_frames = max(1, -(-len(audio) // hop))
    padded = np.zeros((n_frames - 1) * hop + win, dtype=np.float32)
    padded[: len(audio)] = audio[: len(padded)]
    return np.lib.stride_tricks.sliding_window_view(padded, win)[::hop][:n_frames]


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 40.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters (HTK mel scale); returns (n_mels, n_fft // 2 + 1) float32."""
    fmax = fmax or sample_rate / 2
    mel_lo, mel_hi = (2595.0 * np.log10(1.0 + f / 700.0) for f in (fmin, fmax))
    edges = 700.0 * (10.0 ** (np.linspace(mel_lo, mel_hi, n_mels + 2) / 2595.0) - 1.0)  # (n_mels + 2,) Hz
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def log_mel(audio: np.ndarray, sample_rate: int, win: int, hop: int, n_mels: int) -> np.ndarray:
    """Log mel power spectrum of framed audio (Hann window); returns (n_frames, n_mels) float32.

    Frames follow :func:`frame_signal`, so computing them chunk by chunk gives the same numbers.
    """
    frames = frame_signal(audio, win, hop) * np.hanning(win).astype(np.float32)  # (T, win)
    power = np.abs(np.fft.rfft(frames, n=win, axis=-1)) ** 2  # (T, win // 2 + 1)
    mel = power @ mel_filterbank(sample_rate, win, n_mels).T  # (T, n_mels)
    return np.log(mel + 1e-6).astype(np.float32)
