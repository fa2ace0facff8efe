"""Streaming command-word recognition: ``recognise_stream`` and the :class:`StreamingRecogniser` behind it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from videollm.demos import WEIGHTS_DIR

DEFAULT_WEIGHTS = WEIGHTS_DIR / "speech_lmu.safetensors"


class StreamingRecogniser:
    """Feed audio chunks of any size, get words as soon as they are detected; state has a constant size.

    The log-mel front end keeps only the samples of the unfinished frame, the LMU keeps one fixed-size memory
    per layer, and the detector keeps the last few posteriors, so memory does not grow with the stream.

    Args:
        model: a recurrent (``kind="lmu"``) :class:`~videollm.demos.speech.model.SpeechNet`.
        threshold: detection threshold on the smoothed word posterior.
    """

    def __init__(self, model, threshold: float | None = None) -> None:
        from videollm.demos.speech.train import THRESHOLD, WordDetector

        self.model = model
        self.state = model.init_state(1)
        self.detector = WordDetector(THRESHOLD if threshold is None else threshold)
        self.pending = np.zeros(0, np.float32)  # samples from the start of the next feature frame on
        self.frames: list[np.ndarray] = []  # log-mel frames not yet stacked into a model step
        self.steps = 0

    def push(self, chunk: np.ndarray) -> list[tuple[str, float]]:
        """Add (N,) float32 samples at 16 kHz; returns the (word, time in seconds) detected in them."""
        from videollm.demos.speech.data import HOP, WIN

        self.pending = np.concatenate([self.pending, np.asarray(chunk, np.float32).reshape(-1)])
        n = (len(self.pending) - WIN) // HOP + 1 if len(self.pending) >= WIN else 0
        if n == 0:
            return []
        frames = self._log_mel(self.pending[: (n - 1) * HOP + WIN])[:n]
        self.pending = self.pending[n * HOP:]
        return self._run(frames)

    def flush(self) -> list[tuple[str, float]]:
        """End of stream: the last frames are zero-padded, as the offline features are."""
        from videollm.demos.speech.data import N_MELS, STACK

        frames = self._log_mel(self.pending) if len(self.pending) else np.zeros((0, N_MELS), np.float32)
        self.pending = np.zeros(0, np.float32)
        n_total = len(self.frames) + len(frames)
        fill = np.full((-n_total % STACK, N_MELS), np.log(1e-6), np.float32)
        return self._run(np.concatenate([frames, fill]))

    def _log_mel(self, audio: np.ndarray) -> np.ndarray:
        from videollm.demos.audio import log_mel
        from videollm.demos.speech.data import HOP, N_MELS, SAMPLE_RATE, WIN

        return log_mel(audio, SAMPLE_RATE, WIN, HOP, N_MELS)

    def _run(self, frames: np.ndarray) -> list[tuple[str, float]]:
        import torch

        from videollm.demos.speech.data import STACK, WORDS, step_end_times

        self.frames.extend(frames)
        n = len(self.frames) // STACK * STACK
        if n == 0:
            return []
        steps = torch.from_numpy(np.stack(self.frames[:n]).reshape(n // STACK, -1))  # (S, STACK * N_MELS)
        self.frames = self.frames[n:]
        out = []
        with torch.no_grad():
            # One recurrent update per 20 ms of audio: this is the streaming path, state carried across calls.
            for feat in steps:
                logits, self.state = self.model.step(feat[None], self.state)
                cls = self.detector.update(torch.softmax(logits[0], -1).numpy())
                if cls is not None:
                    out.append((WORDS[cls - 1], float(step_end_times(self.steps + 1)[-1])))
                self.steps += 1
        return out


def recognise_stream(audio: np.ndarray | str | os.PathLike, weights: str | os.PathLike | None = None,
                     chunk_seconds: float = 0.1, threshold: float | None = None) -> Iterator[tuple[str, float]]:
    """Recognise command words as the audio streams in, chunk by chunk.

    Args:
        audio: (N,) float mono samples at 16 kHz, or a path to any audio file (decoded and resampled).
        weights: recogniser safetensors; default the shipped ``data/demos/speech_lmu.safetensors``.
        chunk_seconds: how much audio is pushed at a time (results do not depend on it).
        threshold: detection threshold (default the trained one, 0.5).

    Yields:
        (word, t_end) as soon as a word is detected; t_end is the audio time (seconds) at which the
        detection was possible, i.e. the end of the audio the recogniser had heard.

    Raises:
        VideoError: the file cannot be decoded. ModelError: the weights are not a recurrent recogniser.
    """
    from videollm.demos.audio import load_audio
    from videollm.demos.speech.data import SAMPLE_RATE
    from videollm.demos.speech.model import SpeechNet

    samples = load_audio(audio, SAMPLE_RATE) if isinstance(audio, (str, os.PathLike)) else np.asarray(audio)
    model = SpeechNet.load(weights or DEFAULT_WEIGHTS)
    rec = StreamingRecogniser(model, threshold)
    chunk = max(1, int(chunk_seconds * SAMPLE_RATE))
    for start in range(0, len(samples), chunk):
        yield from rec.push(samples[start: start + chunk])
    yield from rec.flush()
