"""The one serialisation rule every component config follows: plain JSON types out, unknown keys refused on the way in."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from videollm.errors import UsageError, VideollmError


class JsonConfig:
    """Mixin for dataclass configs: ``to_dict`` (tuples become lists) and ``from_dict`` (unknown keys are an error;
    they usually mean a typo). ``_label`` names the config in messages, ``_error`` is the error class raised."""

    _label: ClassVar[str] = "config"
    _error: ClassVar[type[VideollmError]] = UsageError

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build from ``to_dict`` output (validated by the dataclass's ``__post_init__``)."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise cls._error(f"{cls._label}: unknown field(s) {', '.join(unknown)}")
        return cls(**data)
