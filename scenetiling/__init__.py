"""SceneTiling: split a video's per-frame features into scenes (VideoLLaMB's rule), offline and streaming.

Depends only on torch and numpy (matplotlib only inside ``plot``)::

    import scenetiling
    ends = scenetiling.segment_ends(features)  # features: (T, D) -> last frame of every scene
"""

from scenetiling.core import boundaries_from_depth, depth_scores, segment_ends, similarities, threshold
from scenetiling.metrics import boundary_f1, match_cuts
from scenetiling.plot import plot
from scenetiling.streaming import StreamingSceneTiler

__all__ = [
    "StreamingSceneTiler",
    "boundaries_from_depth",
    "boundary_f1",
    "match_cuts",
    "depth_scores",
    "plot",
    "segment_ends",
    "similarities",
    "threshold",
]
