"""Peak memory of transcribing a long sound track: ``speech.transcribe`` (decoded and heard ``WINDOW`` seconds at a
time) against faster-whisper's own whole-file ``transcribe`` (the whole track decoded into memory first), on the
same generated tracks of several lengths, each measured in a fresh process.

The tracks are mostly silence with an espeak-ng sentence every 30 s (AAC, 16 kHz mono, in an .m4a file).

Run: python benchmarks/speech_memory.py [--minutes 5,30]   (needs espeak-ng and the speech extra)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

RATE = 16000
SENTENCES = ("The meeting starts at nine.", "Please bring the quarterly report.", "The budget is ready for review.")


def make_track(path: Path, minutes: float, work: Path) -> int:
    """Write ``minutes`` of sound with a sentence every 30 s; the number of words said."""
    import av

    spoken = []
    for i, text in enumerate(SENTENCES):
        wav = work / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
        with wave.open(str(wav)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)[:: max(1, w.getframerate() // RATE)]
        spoken.append(pcm)
    total, words = int(minutes * 60 * RATE), 0
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=RATE)
        stream.layout = "mono"
        block = np.zeros(30 * RATE, np.int16)  # one 30 s block at a time: the generator holds little too
        for k, lo in enumerate(range(0, total, len(block))):
            block[:] = 0
            pcm = spoken[k % len(spoken)]
            block[RATE : RATE + len(pcm)] = pcm
            words += len(SENTENCES[k % len(SENTENCES)].split())
            for at in range(0, min(len(block), total - lo), 1024):
                frame = av.AudioFrame.from_ndarray(block[None, at : at + 1024], format="s16", layout="mono")
                frame.sample_rate, frame.pts = RATE, lo + at
                out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return words


def child(mode: str, path: str) -> None:
    from videollm import speech

    model = speech.load_whisper()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if mode == "windowed":
        words = speech.transcribe(path)
    else:
        segments, _ = model.transcribe(path, word_timestamps=True, beam_size=5, condition_on_previous_text=False)
        words = [w for s in segments for w in (s.words or ())]
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"words": len(words), "seconds": seconds, "peak_mb": peak / 1024, "loaded_mb": base / 1024}))


def measure(mode: str, path: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", default="5,30", help="track lengths in minutes (default 5,30)")
    parser.add_argument("--modes", default="whole-file,windowed", help="which to measure (default both)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("minutes | words said | mode | words heard | seconds | peak RSS MB (after loading Whisper)")
        peaks = {}
        for minutes in [float(m) for m in args.minutes.split(",")]:
            track = work / f"talk-{minutes:g}.m4a"
            said = make_track(track, minutes, work)
            for mode in args.modes.split(","):
                r = measure(mode, track)
                peaks[(minutes, mode)] = r["peak_mb"]
                print(f"{minutes:g} | {said} | {mode} | {r['words']} | {r['seconds']:.1f} | {r['peak_mb']:.0f} "
                      f"({r['loaded_mb']:.0f})", flush=True)
        lengths = sorted({m for m, _ in peaks})
        modes = args.modes.split(",")
        if len(lengths) > 1:
            short, long = lengths[0], lengths[-1]
            for mode in modes:
                print(f"{mode}: peak at {long:g} min / at {short:g} min = "
                      f"{peaks[(long, mode)] / peaks[(short, mode)]:.2f}x")
        if len(modes) == 2:
            print(f"at {lengths[-1]:g} min: whole-file / windowed = "
                  f"{peaks[(lengths[-1], 'whole-file')] / peaks[(lengths[-1], 'windowed')]:.2f}x")


if __name__ == "__main__":
    main()
