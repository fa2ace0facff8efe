"""Metrics of the two audio demos against their baselines, on held-out data.

Dance (held-out tempos 92/111/133 BPM, 48 songs of 12 s): beat F-measure (+-70 ms) between motion beats and
music beats, step accuracy (bars whose nearest step template is the reference step) and mean joint error, for
the shipped model, the model trained without the contrastive term, and a fixed-period dancer (120 BPM, given
the reference step sequence).

Speech (held-out voices, 40 espeak-ng takes): word accuracy per SNR, insertions per word, and streaming latency
(audio time from a word's end to its detection) for the recurrent LMU recogniser and the windowed-CNN baseline.

Usage: python benchmarks/demos.py [--only dance|speech] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from videollm.demos import WEIGHTS_DIR


def dance_rows() -> dict:
    from videollm.demos.dance.data import make_dataset
    from videollm.demos.dance.model import DanceNet
    from videollm.demos.dance.train import evaluate_dance

    data = make_dataset(48, 12.0, seed=1000, heldout=True)
    rows = {}
    for name in ("dance", "dance_no_contrastive"):
        path = WEIGHTS_DIR / f"{name}.safetensors"
        if path.is_file():
            rows[name] = evaluate_dance(DanceNet.load(path), data)
    rows["fixed_period_120bpm"] = evaluate_dance(None, data)
    return rows


def speech_rows() -> dict:
    from videollm.demos.speech.data import synthesise_clips
    from videollm.demos.speech.model import SpeechNet
    from videollm.demos.speech.train import evaluate_speech

    clips = synthesise_clips(40, seed=1000, heldout=True)
    rows = {}
    for name in ("speech_lmu", "speech_cnn"):
        path = WEIGHTS_DIR / f"{name}.safetensors"
        if path.is_file():
            rows[name] = evaluate_speech(SpeechNet.load(path), clips)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("dance", "speech"), default=None)
    parser.add_argument("--json", default=None, help="also write all figures to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = {}
    if args.only in (None, "dance"):
        out["dance"] = dance_rows()
        print(f"{'dance (held-out tempos)':28} {'beat F':>7} {'step acc':>9} {'joint err':>10}")
        for name, r in out["dance"].items():
            print(f"{name:28} {r['beat_f']:7.3f} {r['step_accuracy']:9.3f} {r['joint_error']:10.3f}")
    if args.only in (None, "speech"):
        out["speech"] = speech_rows()
        snrs = list(next(iter(out["speech"].values()))["per_snr"]) if out["speech"] else []
        print(f"\n{'speech (held-out voices)':20} {'params':>7} {'acc':>6} "
              + " ".join(f"{s + 'dB':>6}" for s in snrs) + f" {'ins/w':>6} {'lat50':>6} {'lat90':>6}")
        for name, r in out["speech"].items():
            print(f"{name:20} {r['n_params']:7d} {r['accuracy']:6.3f} "
                  + " ".join(f"{r['per_snr'][s]['accuracy']:6.3f}" for s in snrs)
                  + f" {r['insertions_per_word']:6.3f} {r['latency_median_s']:6.3f} {r['latency_p90_s']:6.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
