"""Options shared by every command that runs a model: which model, device, dtype and sampling fps."""

from __future__ import annotations

import argparse
from pathlib import Path

from videollm.errors import UsageError

DEFAULT_MODEL = "default"
DTYPE_CHOICES = ("float32", "bfloat16")


def add_model_args(p: argparse.ArgumentParser, fps: bool = True) -> None:
    """Add --model/--device/--dtype (and --fps) to a subcommand parser."""
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="DIR_OR_PRESET",
                   help="checkpoint directory (config.json + safetensors) or preset name (tiny, embedded, videollamb-7b); "
                        "default: the shipped embedded checkpoint")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--dtype", default="float32", choices=DTYPE_CHOICES,
                   help="compute dtype of the vision encoder and LM (bfloat16 is ~2x faster on recent CPUs)")
    if fps:
        p.add_argument("--fps", type=positive_float, default=None,
                       help="frames per second to sample (default: the model's setting, 2)")


def default_model_path() -> Path | str:
    """The shipped trained checkpoint (data/checkpoints/embedded) when present, else the untrained ``embedded`` preset."""
    shipped = Path(__file__).resolve().parents[2] / "data" / "checkpoints" / "embedded"
    return shipped if (shipped / "config.json").is_file() else "embedded"


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def model_config(args: argparse.Namespace):
    """The ``ModelConfig`` named by ``--model`` with ``--fps`` applied."""
    from videollm.config import ModelConfig, preset_names

    spec = args.model
    if spec == DEFAULT_MODEL:
        spec = str(default_model_path())
    path = Path(spec)
    if path.is_dir():
        cfg = ModelConfig.load(path)
    elif spec in preset_names():
        cfg = ModelConfig.preset(spec)
    else:
        raise UsageError(f"--model {spec}: no such checkpoint directory or preset "
                         f"(presets: {', '.join(preset_names())})")
    if getattr(args, "fps", None):
        cfg.segmentation.fps = args.fps
    return cfg


def torch_device_dtype(args: argparse.Namespace):
    """Validated (device, dtype) from --device/--dtype; CUDA requested without a GPU is a usage error."""
    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available on this machine")
    return device, getattr(torch, args.dtype)


def load_model(args: argparse.Namespace, load_vision: bool = True, device=None):
    """The ``VideoLLM`` named by --model on --device/--dtype, with --fps applied.

    Args:
        args: parsed options from ``add_model_args``.
        load_vision: False skips the vision tower (answering from a saved memory needs none).
        device: overrides --device (e.g. one GPU per process under ``accelerate launch``).

    Raises:
        UsageError: --model names neither a checkpoint directory nor a preset, or --device is unavailable.
    """
    from videollm.config import preset_names
    from videollm.model import VideoLLM

    spec = str(default_model_path()) if args.model == DEFAULT_MODEL else args.model
    if not Path(spec).is_dir() and spec not in preset_names():
        raise UsageError(f"--model {spec}: no such checkpoint directory or preset "
                         f"(presets: {', '.join(preset_names())})")
    default_device, dtype = torch_device_dtype(args)
    model = VideoLLM.from_pretrained(spec, device=device or default_device, dtype=dtype, load_vision=load_vision)
    if getattr(args, "fps", None):
        model.config.segmentation.fps = args.fps
    return model
