"""``videollm demo``: the two recurrent audio demos (dance from music, streaming speech) and their training."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from videollm.cli import add_command


def demo(args: argparse.Namespace) -> int:
    """Recurrent sequence demos on audio: dance steps from music, command words recognised as they stream.

    Subcommands:
      dance   AUDIO --out FILE.mp4   a stick figure dancing to the music (music muxed in)
      speech  AUDIO                  words with timestamps, as JSON lines, detected while streaming
      sample  dance|speech --out F   write a generated test audio (music with known beats, or spoken words)
      train   dance|speech           reproduce the shipped weights in data/demos (CPU, minutes)
    """
    args.demo_parser.print_help(sys.stderr)
    return 2


def dance_command(args: argparse.Namespace) -> int:
    """Generate a dance for AUDIO and write it as an MP4 with the music.

    Example: videollm demo dance song.wav --out dance.mp4
    """
    import torch

    from videollm.demos.dance import dance_from_audio, render_dance_video

    torch.set_num_threads(args.threads)
    poses, fps = dance_from_audio(args.audio, args.weights)
    render_dance_video(poses, args.audio, args.out, fps=fps, size=args.size)
    print(f"wrote {args.out} ({len(poses) / fps:.1f} s, {len(poses)} frames)")
    return 0


def speech_command(args: argparse.Namespace) -> int:
    """Recognise command words in AUDIO as it streams; prints one JSON object per word: {"word", "time"}.

    Vocabulary: zero..nine, yes, no, up, down, left, right, on, off, stop, go. "time" is the audio time in
    seconds at which the word was detected (shortly after it ends).

    Example: videollm demo speech commands.wav
    """
    import torch

    from videollm.demos.speech import recognise_stream

    torch.set_num_threads(args.threads)
    for word, t in recognise_stream(args.audio, args.weights, threshold=args.threshold):
        print(json.dumps({"word": word, "time": round(t, 3)}), flush=True)
    return 0


def sample_command(args: argparse.Namespace) -> int:
    """Write a generated sample: music with known beats (dance) or spoken command words (speech) as WAV.

    A JSON file next to it (same name, .json) holds the ground truth: beat times, or words with start/end.
    """
    from videollm.demos.samples import write_sample

    out = write_sample(args.what, args.out, seed=args.seed, seconds=args.seconds, tempo=args.tempo,
                       words=args.words, snr=args.snr)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def train_command(args: argparse.Namespace) -> int:
    """Train a demo model from scratch on generated data, evaluate it on held-out data, save weights + metrics.

    dance:  python -m videollm demo train dance --seed 0        (writes data/demos/dance.safetensors)
    speech: python -m videollm demo train speech --kind lmu      (writes data/demos/speech_lmu.safetensors)
    The metrics (held-out tempos / voices) go to the same path with .json.
    """
    import torch

    torch.set_num_threads(args.threads)
    if args.what == "dance":
        from videollm.demos.dance.data import make_dataset
        from videollm.demos.dance.train import evaluate_dance, train_dance

        out = Path(args.out or f"data/demos/dance{'' if args.contrastive > 0 else '_no_contrastive'}.safetensors")
        model = train_dance(seed=args.seed, steps=args.steps or 600, contrastive=args.contrastive, log=print)
        metrics = evaluate_dance(model, make_dataset(48, 12.0, seed=1000, heldout=True))
    else:
        from videollm.demos.speech.data import synthesise_clips
        from videollm.demos.speech.train import evaluate_speech, train_speech

        out = Path(args.out or f"data/demos/speech_{args.kind}.safetensors")
        model = train_speech(kind=args.kind, seed=args.seed, steps=args.steps or 800, log=print)
        metrics = evaluate_speech(model, synthesise_clips(40, seed=1000, heldout=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    record = {"args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str)) or v is None},
              "metrics": metrics}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    print(json.dumps(metrics))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``videollm demo`` and its subcommands."""
    p = add_command(sub, "demo", demo)
    p.set_defaults(demo_parser=p)
    dsub = p.add_subparsers(dest="demo_command", metavar="SUBCOMMAND")

    d = add_command(dsub, "dance", dance_command)
    d.add_argument("audio", help="music file (any format ffmpeg reads)")
    d.add_argument("--out", required=True, help="MP4 to write")
    d.add_argument("--weights", default=None, help="dance weights (default data/demos/dance.safetensors)")
    d.add_argument("--size", type=int, default=320, help="frame size in pixels (default 320)")
    d.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")

    s = add_command(dsub, "speech", speech_command)
    s.add_argument("audio", help="speech file (any format ffmpeg reads)")
    s.add_argument("--weights", default=None, help="recogniser weights (default data/demos/speech_lmu.safetensors)")
    s.add_argument("--threshold", type=float, default=None, help="detection threshold in (0, 1) (default 0.5)")
    s.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")

    g = add_command(dsub, "sample", sample_command)
    g.add_argument("what", choices=("dance", "speech"))
    g.add_argument("--out", required=True, help="WAV to write (ground truth goes to the same name .json)")
    g.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    g.add_argument("--seconds", type=float, default=10.0, help="dance: length (default 10)")
    g.add_argument("--tempo", type=float, default=None, help="dance: BPM (default a random held-out tempo)")
    g.add_argument("--words", type=int, default=6, help="speech: number of words (default 6)")
    g.add_argument("--snr", type=float, default=None, help="speech: signal-to-noise ratio in dB (default 20)")

    t = add_command(dsub, "train", train_command)
    t.add_argument("what", choices=("dance", "speech"))
    t.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    t.add_argument("--steps", type=int, default=None, help="optimiser steps (default 600 dance, 800 speech)")
    t.add_argument("--out", default=None, help="weights to write (default under data/demos/)")
    t.add_argument("--contrastive", type=float, default=0.2,
                   help="dance: weight of the motion/music beat contrastive term; 0 = the ablation (default 0.2)")
    t.add_argument("--kind", choices=("lmu", "cnn"), default="lmu",
                   help="speech: recurrent LMU or the windowed-CNN baseline (default lmu)")
    t.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
