"""``videollm world``: generate synthetic videos, needle tests, EgoPlan tasks and VisDial images."""

from __future__ import annotations

import argparse
import json
import sys

from videollm.cli import add_command
from videollm.errors import UsageError

DEFAULT_SAMPLES_DIR = "data/samples/world"


def world(args: argparse.Namespace) -> int:
    """Synthetic video world: seeded videos with exact ground truth (cuts, captions, QA).

    Subcommands:
      generate  write N samples of one kind (video, needle, egoplan, image)
      samples   rewrite the small sample set shipped in data/samples/world
      vocab     print the vocabulary and the held-out shape x colour x motion split as JSON
    """
    args.world_parser.print_help(sys.stderr)
    return 2


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT or one number, got {text!r}")
    return (int(parts[0]), int(parts[-1]))


def generate_command(args: argparse.Namespace) -> int:
    """Write N synthetic samples of one kind with their JSON ground truth.

    Kinds: video (multi-scene videos: <kind>_<i>.mp4 + .json), needle (long haystack with a 1-second needle clip),
    egoplan (step videos + egoplan.json in EgoPlan-Bench form), image (PNG + visdial_1.0_<split>.json).
    The same --seed always writes the same samples; --heldout draws only held-out shape x colour x motion
    combinations (never present without it).

    Example: videollm world generate --out runs/world/train --n 1000 --seed 1
    """
    from videollm.world.generate import generate
    from videollm.world.spec import WorldConfig

    if args.n < 0:
        raise UsageError(f"--n must be non-negative, got {args.n}")
    width, height = args.size
    config = WorldConfig(
        width=width, height=height, fps=args.fps, scenes=tuple(args.scenes), scene_seconds=tuple(args.scene_seconds),
        objects=tuple(args.objects), fade_prob=args.fade_prob,
    )
    paths = generate(
        args.out, args.n, args.seed, heldout=args.heldout, kind=args.kind, config=config, start=args.start,
        crf=args.crf, needle_depth=args.needle_depth, haystack_seconds=args.haystack_seconds, needle=args.needle,
    )
    split = "held-out" if args.heldout else "training"
    print(f"wrote {len(paths)} {split} {args.kind} samples to {args.out}")
    return 0


def samples_command(args: argparse.Namespace) -> int:
    """Rewrite the small sample set (a few videos, a needle video, EgoPlan tasks, VisDial images).

    The output is the same every time; data/samples/world in the repository was written by
    `videollm world samples --out data/samples/world`.
    """
    from videollm.world.generate import write_samples

    paths = write_samples(args.out)
    print(f"wrote {len(paths)} sample files (and their JSON) to {args.out}")
    return 0


def vocab_command(args: argparse.Namespace) -> int:
    """Print the world's vocabulary and the held-out (shape, colour, motion) triples as JSON."""
    from videollm.world import vocab

    out = {
        "shapes": list(vocab.SHAPES),
        "colours": {k: list(v) for k, v in vocab.COLOURS.items()},
        "sizes": vocab.SIZES,
        "motions": list(vocab.MOTIONS),
        "backgrounds": list(vocab.BACKGROUND_KINDS),
        "photos": list(vocab.PHOTOS),
        "heldout_rule": "(3*shape + 5*colour + 7*motion) % 8 == 0, indices into shapes, colours, motions",
        "heldout": [list(c) for c in vocab.heldout_combos()],
    }
    print(json.dumps(out, indent=1))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``videollm world`` and its subcommands."""
    p = add_command(sub, "world", world)
    p.set_defaults(world_parser=p)
    wsub = p.add_subparsers(dest="world_command", metavar="SUBCOMMAND")

    g = add_command(wsub, "generate", generate_command)
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--n", type=int, default=10, help="number of samples (default 10)")
    g.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    g.add_argument("--start", type=int, default=0, help="index of the first sample, to shard a dataset (default 0)")
    g.add_argument("--kind", choices=("video", "needle", "egoplan", "image"), default="video",
                   help="what to generate (default video)")
    g.add_argument("--heldout", action="store_true",
                   help="only held-out shape x colour x motion combinations (see `videollm world vocab`)")
    g.add_argument("--size", type=_size, default=(224, 224), metavar="WxH",
                   help="frame size, e.g. 224 or 320x240; even numbers (default 224)")
    g.add_argument("--fps", type=float, default=8.0, help="frames per second (default 8)")
    g.add_argument("--scenes", type=int, nargs=2, default=(2, 5), metavar=("MIN", "MAX"),
                   help="scenes per video (default 2 5)")
    g.add_argument("--scene-seconds", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"),
                   help="scene length in seconds (default 2 6)")
    g.add_argument("--objects", type=int, nargs=2, default=(1, 3), metavar=("MIN", "MAX"),
                   help="objects per scene or image, at most 3 (default 1 3)")
    g.add_argument("--fade-prob", type=float, default=0.2,
                   help="probability that a scene boundary is a fade instead of a hard cut (default 0.2)")
    g.add_argument("--crf", type=int, default=26, help="H.264 quality, lower is better and larger (default 26)")
    g.add_argument("--needle-depth", type=float, default=None,
                   help="needle: position in [0, 1] (default: random per sample)")
    g.add_argument("--haystack-seconds", type=float, default=60.0,
                   help="needle: haystack length in seconds (default 60)")
    g.add_argument("--needle", choices=("text", "object"), default="text",
                   help="needle: a word or a still object on a checkerboard (default text)")

    s = add_command(wsub, "samples", samples_command)
    s.add_argument("--out", default=DEFAULT_SAMPLES_DIR, help=f"output folder (default {DEFAULT_SAMPLES_DIR})")

    add_command(wsub, "vocab", vocab_command)
