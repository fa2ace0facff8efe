"""Where the shipped data is (the trained embedded checkpoint, the sequence demos' weights, the sample media), and
what ``--model`` names (``resolve_model``: the one resolver of checkpoint directories and presets).

They install as package data of ``videollm_data`` (the repository's ``data/`` folder, mapped in pyproject.toml),
so an editable checkout, a non-editable ``pip install`` and a wheel all find them the same way. Nothing here
imports torch.
"""

from __future__ import annotations

import os
import re
from importlib import util
from pathlib import Path

from videollm import configs
from videollm.errors import ModelError, UsageError

DATA_PACKAGE = "videollm_data"
#: What ``--model`` means when not given: the trained embedded checkpoint shipped with the package.
DEFAULT_MODEL = "default"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def data_root() -> Path | None:
    """The installed ``videollm_data`` folder, or None when this install has no shipped data."""
    spec = util.find_spec(DATA_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _data_path(*parts: str) -> Path | None:
    root = data_root()
    return None if root is None else root.joinpath(*parts)


def shipped_checkpoint() -> Path:
    """The trained embedded checkpoint directory (``config.json`` + ``model.safetensors``).

    Raises:
        ModelError: this install lacks it; the message says how to get it or what to pass instead.
    """
    path = _data_path("checkpoints", "embedded")
    if path is None or not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise ModelError(
            "the shipped embedded checkpoint is missing from this install "
            f"({path or DATA_PACKAGE + ' not installed'}); "
            "reinstall videollm from its repository or wheel, or pass --model CHECKPOINT_DIR "
            "(an untrained preset such as --model embedded runs random bridge weights)")
    return path


def demo_weights_dir() -> Path:
    """Folder of the sequence demos' shipped weights (may not exist in an install without data)."""
    return _data_path("demos") or Path(DATA_PACKAGE, "demos")


def samples_dir() -> Path:
    """Folder of the shipped synthetic-world samples (may not exist in an install without data)."""
    return _data_path("samples", "world") or Path(DATA_PACKAGE, "samples", "world")


def resolve_model(spec: str | os.PathLike) -> Path | str:
    """What ``--model SPEC`` names: a checkpoint directory (as a ``Path``) or a preset name (as a ``str``).

    Args:
        spec: ``"default"`` (the shipped trained checkpoint), a checkpoint directory, or a preset name.

    Raises:
        ModelError: the default checkpoint is missing from this install (never replaced by random weights).
        UsageError: ``spec`` is neither a directory nor a preset.
    """
    if str(spec) == DEFAULT_MODEL:
        return shipped_checkpoint()
    if Path(spec).is_dir():
        return Path(spec)
    if str(spec) in preset_names():
        return str(spec)
    hub_id = re.fullmatch(r"[\w.-]+/([\w.-]+)", str(spec))
    if hub_id:  # a model hub id: nothing is fetched at run time, so say how to get it once
        raise UsageError(f"--model {spec}: no such directory; videollm reads models from disk only: "
                         f"huggingface-cli download {spec} --local-dir models/{hub_id.group(1)} "
                         f"and then --model models/{hub_id.group(1)}")
    raise UsageError(f"--model {spec}: no such checkpoint directory or preset "
                     f"(presets: {', '.join(preset_names())})")


def preset_names() -> list[str]:
    """Names of the shipped model presets (``videollm/presets/*.json``)."""
    return configs.preset_names("videollm")
