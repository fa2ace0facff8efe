"""Options shared by every command that runs a model: which model, device, dtype and sampling fps."""

from __future__ import annotations

import argparse

from videollm.assets import DEFAULT_MODEL
from videollm.errors import UsageError

DTYPE_CHOICES = ("float32", "bfloat16")


def add_signal_args(parser: argparse.ArgumentParser) -> None:
    """``--speech`` / ``--text``: what besides frames goes into a watched video's memory (``caption``, ``ask``,
    ``chat``, ``search``)."""
    parser.add_argument("--speech", action=argparse.BooleanOptionalAction, default=None,
                        help="transcribe the speech of a video with sound into its scenes (caption JSON \"speech\" "
                             "and \"words\"; default: on when faster-whisper and the Whisper weight packages are "
                             "installed); a saved memory keeps what it has")
    parser.add_argument("--text", action=argparse.BooleanOptionalAction, default=None,
                        help="read each scene's on-screen text from its middle frame (caption JSON \"text\"; "
                             "RapidOCR; default: on when RapidOCR is installed; it costs a fraction of a second a "
                             "scene)")


def add_model_args(p: argparse.ArgumentParser, fps: bool = True) -> None:
    """Add --model/--device/--dtype (and --fps) to a subcommand parser."""
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="DIR_OR_PRESET",
                   help="checkpoint directory (config.json + safetensors), a downloaded SmolVLM2 / "
                        "LLaVA-OneVision / InternVL or VideoLLaMB directory, or a preset name (tiny, embedded, videollamb-7b); default: the "
                        "shipped embedded checkpoint")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--dtype", default="float32", choices=DTYPE_CHOICES,
                   help="compute dtype of the vision encoder and LM (bfloat16 helps on GPUs and CPUs with AVX-512 BF16 or AMX; on AVX2-only CPUs it is several times slower)")
    if fps:
        p.add_argument("--fps", type=positive_float, default=None,
                       help="frames per second to sample (default: the model's setting, 2)")


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
    from videollm.config import load_config

    cfg = load_config(args.model)
    if getattr(args, "fps", None):
        cfg.segmentation.fps = args.fps
    return cfg


def segmentation_config(args: argparse.Namespace):
    """The ``SegmentationConfig`` of --model with --fps applied, read from its config file alone (imports neither
    torch nor transformers: ``videollm scenes`` on colour histograms needs nothing else)."""
    from pathlib import Path

    from videollm.assets import CONFIG_NAME, resolve_model
    from videollm.configs import read_json, read_preset
    from videollm.errors import ModelError
    from videollm.segmentation import SegmentationConfig

    source = resolve_model(args.model)
    data = (read_json(source / CONFIG_NAME, "model config", ModelError) if isinstance(source, Path)
            else read_preset("videollm", source, "model"))
    if not isinstance(data, dict):
        raise ModelError(f"{args.model}: the model config is not a JSON object")
    seg = SegmentationConfig.from_dict(data.get("segmentation", {}))
    if getattr(args, "fps", None):
        seg.fps = args.fps
    return seg


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
        ModelError: the default checkpoint is missing from this install.
    """
    from videollm.model import VideoLLM

    spec = model_source(args)
    default_device, dtype = torch_device_dtype(args)
    model = VideoLLM.from_pretrained(spec, device=device or default_device, dtype=dtype, load_vision=load_vision)
    if getattr(args, "fps", None):
        model.config.segmentation.fps = args.fps
    return model


def model_source(args: argparse.Namespace):
    """What --model names (``videollm.assets.resolve_model``: a checkpoint directory or a preset name); a preset's
    untrained bridge and projector are announced on stderr, since its captions mean nothing."""
    import sys

    from videollm.assets import resolve_model

    source = resolve_model(args.model)
    if isinstance(source, str):
        print(f"videollm: note: preset {source!r} has untrained bridge and projector weights; pass a trained "
              "checkpoint directory (or leave --model out for the shipped one) for meaningful output", file=sys.stderr)
    return source
