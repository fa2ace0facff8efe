"""What speech and on-screen text cost: Whisper base transcription and RapidOCR as multiples of real time, and their
shares of ``caption``'s time.

A synthetic-world needle video (generated, ``--seconds`` long, a text needle in it) gets espeak-ng speech every few
seconds; the same video is then captioned through ``videollm.batch.caption_item`` (what ``videollm caption`` runs)
with nothing, speech, and speech + text, with the shipped model, on this machine's CPU threads.

Run: python benchmarks/speech_text_cost.py [--seconds 60]   (needs espeak-ng and the speech and ocr extras)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SENTENCES = ["Please bring the quarterly report.", "The budget is ready for review.",
             "We meet again on Friday morning.", "Turn left at the second light."]


def talking_video(folder: Path, seconds: float) -> tuple[Path, int]:
    """A world video of ``seconds`` with one sentence every 6 s; returns it and the number of words said."""
    from test_speech import _mux

    from videollm.world.generate import generate

    (silent,) = generate(folder / "world", 1, seed=7, kind="needle", haystack_seconds=seconds - 1.0)
    rate = 22050
    track = np.zeros(int(seconds * rate), np.int16)
    words, t, i = 0, 0.5, 0
    while t < seconds - 3:
        text = SENTENCES[i % len(SENTENCES)]
        wav = folder / f"{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
        with wave.open(str(wav)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        lo = int(t * rate)
        track[lo:lo + len(pcm)] = pcm[: len(track) - lo]
        words += len(text.split())
        t, i = t + 6.0, i + 1
    return _mux(silent, track, rate, folder / "talk.mp4"), words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    import torch

    from videollm import ocr, speech
    from videollm.batch import BatchItem, CaptionOptions, caption_item
    from videollm.model import VideoLLM

    with tempfile.TemporaryDirectory() as tmp:
        video, said = talking_video(Path(tmp), args.seconds)
        model = VideoLLM.from_pretrained("default")
        speech.load_whisper()  # load once, outside the timings (as a batch does after its first video)
        ocr.engine()
        t0 = time.perf_counter()
        words = speech.transcribe(video)
        t_speech = time.perf_counter() - t0
        item = BatchItem(video, "talk")
        timings, scenes = {}, 0
        for name, options in (("nothing", CaptionOptions(speech=False, text=False)),
                              ("speech", CaptionOptions(speech=True, text=False)),
                              ("both", CaptionOptions(speech=True, text=True))):
            model.__dict__.pop("_answer_memo", None)  # no caption remembered from the previous run
            t0 = time.perf_counter()
            scenes = len(caption_item(model, item, options)["scenes"])
            timings[name] = time.perf_counter() - t0
    print(f"{args.seconds:.0f} s video, {said} words said, {len(words)} recognised; "
          f"{torch.get_num_threads()} CPU threads")
    print(f"transcription: {t_speech:.1f} s = {t_speech / args.seconds:.2f}x real time "
          f"({args.seconds / t_speech:.1f}x faster than real time)")
    t_text = timings["both"] - timings["speech"]
    print(f"caption: {timings['nothing']:.1f} s alone, {timings['speech']:.1f} s with speech, {timings['both']:.1f} s "
          f"with speech and text ({scenes} scenes)")
    print(f"speech is {(timings['speech'] - timings['nothing']) / timings['speech']:.0%} of caption-with-speech; "
          f"text reading {t_text:.1f} s = {t_text / max(scenes, 1):.2f} s a scene = {t_text / args.seconds:.2f}x real "
          f"time, {t_text / timings['both']:.0%} of caption with both")


if __name__ == "__main__":
    main()
