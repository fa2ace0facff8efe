"""Generated test audio for the demos: music with known beats, or spoken command words in noise."""

from __future__ import annotations

import json
import os
from pathlib import Path

from videollm.errors import UsageError


def write_sample(what: str, out: str | os.PathLike, seed: int = 0, seconds: float = 10.0, tempo: float | None = None,
                 words: int = 6, snr: float | None = None) -> Path:
    """Write a generated WAV and its ground truth (same name, ``.json``), atomically.

    Args:
        what: "dance" (music; truth: tempo and beat times) or "speech" (command words; truth: words with spans).
        out: the WAV to write.
        seed: generator seed.
        seconds, tempo: dance only; tempo None draws a held-out tempo.
        words, snr: speech only; snr None uses 20 dB.

    Returns:
        The WAV's path.
    """
    import numpy as np

    from videollm.demos.audio import write_wav

    rng = np.random.default_rng(seed)
    out = Path(out)
    if what == "dance":
        from videollm.demos.dance.data import SAMPLE_RATE, make_song

        song = make_song(rng, seconds, tempo=tempo, heldout=tempo is None)
        audio, rate = song.audio, SAMPLE_RATE
        truth: dict = {"tempo": song.tempo, "beats": [round(b, 4) for b in song.beats]}
    elif what == "speech":
        from videollm.demos.speech.data import (
            SAMPLE_RATE,
            SNRS_DB,
            WORDS,
            make_stream,
            synthesise_clips,
        )

        clips = synthesise_clips(2, seed, heldout=True)
        if not clips:
            raise UsageError("espeak-ng produced no usable words (is the Debian package espeak-ng installed?)")
        stream = make_stream(clips, rng, words, snr if snr is not None else SNRS_DB[1])
        audio, rate = stream.audio, SAMPLE_RATE
        truth = {"words": [{"word": WORDS[c - 1], "start": round(float(s), 3), "end": round(float(e), 3)}
                           for c, s, e in zip(stream.labels, stream.starts, stream.ends)]}
    else:
        raise UsageError(f"sample must be 'dance' or 'speech', got {what!r}")
    # Readers (the web app) must never see a half-written file: write aside, then rename.
    partial = out.with_name(f".{out.stem}.part.wav")
    write_wav(partial, audio, rate)
    out.with_suffix(".json").write_text(json.dumps(truth, indent=1))
    partial.replace(out)
    return out
