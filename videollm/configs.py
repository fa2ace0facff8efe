"""The one serialisation rule every config follows, and the one way configs and presets are read from JSON.

Plain JSON types out; unknown keys refused on the way in (they usually mean a typo); named presets are JSON files in
a package's ``presets/`` folder. ``JsonConfig`` gives a dataclass ``to_dict``/``from_dict``; ``build`` is the
parser behind ``from_dict`` for dataclasses that cannot inherit it; ``read_json`` and ``read_preset`` read files
with one-line errors. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from videollm.errors import UsageError, VideollmError


def check_keys(cls, data: dict[str, Any], label: str, error: type[VideollmError] = UsageError) -> None:
    """Raise ``error`` naming the keys of ``data`` that are not fields of the dataclass ``cls``."""
    if not isinstance(data, dict):
        raise error(f"{label}: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls) if f.init})
    if unknown:
        raise error(f"{label}: unknown field(s) {', '.join(unknown)}")


def build(cls, data: dict[str, Any], label: str, error: type[VideollmError] = UsageError):
    """The dataclass ``cls`` from a dict of its fields (validated by its ``__post_init__``)."""
    check_keys(cls, data, label, error)
    try:
        return cls(**data)
    except TypeError as err:
        raise error(f"{label}: {err}") from None


def read_json(path: str | os.PathLike, label: str, error: type[VideollmError] = UsageError) -> Any:
    """The JSON content of a file; a missing or invalid file is ``error`` with one line saying which."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no {label} here")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path}: not a valid JSON {label} ({err.__class__.__name__})") from None


def preset_names(package: str) -> list[str]:
    """Names of the presets shipped in ``<package>/presets/*.json``."""
    folder = resources.files(package).joinpath("presets")
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def read_preset(package: str, name: str, label: str, error: type[VideollmError] = UsageError) -> dict[str, Any]:
    """The content of the preset ``<package>/presets/<name>.json``; an unknown name lists the ones there are."""
    path = resources.files(package).joinpath("presets", f"{name}.json")
    if not path.is_file():
        raise error(f"{label}: no preset named {name!r}; available: {', '.join(preset_names(package))}")
    return json.loads(path.read_text(encoding="utf-8"))


class JsonConfig:
    """Mixin for dataclass configs: ``to_dict`` (tuples become lists) and ``from_dict`` (unknown keys are an error).
    ``_label`` names the config in messages, ``_error`` is the error class raised."""

    _label: ClassVar[str] = "config"
    _error: ClassVar[type[VideollmError]] = UsageError

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build from ``to_dict`` output (validated by the dataclass's ``__post_init__``)."""
        return build(cls, data, cls._label, cls._error)
