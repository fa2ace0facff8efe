"""SceneTiling: split a video's per-frame features into scenes (VideoLLaMB's rule), offline and streaming.

Depends only on torch and numpy (matplotlib only inside ``plot``). Features can come from any encoder, or from
``hsv_histograms`` (colour histograms of the frames themselves, no network)::

    import scenetiling
    ends = scenetiling.segment_ends(features)  # features: (T, D) -> last frame of every scene

Names are imported on first use, so ``scenetiling.numpy_rule`` and ``scenetiling.histogram.hsv_histogram_array``
(the rule and the histograms in NumPy alone) can be used without importing torch.
"""

from __future__ import annotations

import importlib

_SOURCES = {
    "boundaries_from_depth": "core",
    "depth_scores": "core",
    "segment_ends": "core",
    "similarities": "core",
    "threshold": "core",
    "hsv_histograms": "histogram",
    "boundary_f1": "metrics",
    "match_cuts": "metrics",
    "plot": "plot",
    "StreamingSceneTiler": "streaming",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module 'scenetiling' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"scenetiling.{_SOURCES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))
