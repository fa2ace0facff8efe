"""``videollm train``: run a training recipe (JSON) on CPU, one GPU, or many under ``accelerate launch``."""

from __future__ import annotations

from videollm.cli import add_command
from videollm.commands.common import positive_float


def register(sub) -> None:
    p = add_command(sub, "train", train)
    p.add_argument("config", metavar="CONFIG", help="training recipe: a JSON file or a shipped recipe name "
                                                  "(embedded, published)")
    p.add_argument("--output", metavar="DIR", help="output folder (default: the recipe's output_dir)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: from the recipe)")
    p.add_argument("--max-minutes", type=positive_float, default=None,
                   help="stop and save after this many minutes of training (default: the recipe's)")
    p.add_argument("--fresh", action="store_true", help="ignore checkpoints already in the output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--export", metavar="DIR", default=None,
                   help="afterwards, copy the final model to DIR with float16 weights (how data/checkpoints/embedded "
                        "is made)")


def train(args) -> int:
    """Train the bridge and projector (and the LM if the recipe says so) from a recipe.

    Vision features are encoded once and cached as safetensors under <output>/features; checkpoints go to
    <output>/checkpoints and a run restarted with the same recipe resumes from the latest one. The final model
    (config.json + model.safetensors, loadable with --model DIR) is <output>/final; the loss curve is
    <output>/loss.png and the per-step log <output>/train_log.json.

    Same command on several GPUs or nodes: accelerate launch -m videollm train CONFIG.json
    """
    import dataclasses

    from videollm.train import TrainConfig
    from videollm.train import train as run

    config = TrainConfig.load(args.config)
    changes = {}
    if args.output:
        changes["output_dir"] = args.output
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.max_minutes is not None:
        changes["max_minutes"] = args.max_minutes
    if changes:
        config = dataclasses.replace(config, **changes)
    result = run(config, resume=not args.fresh, progress=not args.quiet)
    last = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    note = " (stopped by the time limit)" if result.stopped_early else ""
    print(f"trained {result.steps}/{result.target_steps} steps{note}; last loss {last}; "
          f"features {result.extract_seconds:.0f} s, training {result.train_seconds:.0f} s")
    print(f"model: {result.final_dir}")
    if args.export:
        from videollm.train.export import export_checkpoint

        print(f"exported: {export_checkpoint(result.output_dir, args.export)}")
    return 0
