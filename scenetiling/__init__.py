"""SceneTiling: split a video's per-frame features into scenes (VideoLLaMB's rule), offline and streaming.

Depends only on torch and numpy (matplotlib only inside ``plot``). Features can come from any encoder, or from
``hsv_histograms`` (colour histograms of the frames themselves, no network)::

    import scenetiling
    ends = scenetiling.segment_ends(features)  # features: (T, D) -> last frame of every scene
"""

from scenetiling.core import boundaries_from_depth, depth_scores, segment_ends, similarities, threshold
from scenetiling.histogram import hsv_histograms
from scenetiling.metrics import boundary_f1, match_cuts
from scenetiling.plot import plot
from scenetiling.streaming import StreamingSceneTiler

__all__ = [
    "StreamingSceneTiler",
    "boundaries_from_depth",
    "boundary_f1",
    "match_cuts",
    "depth_scores",
    "hsv_histograms",
    "plot",
    "segment_ends",
    "similarities",
    "threshold",
]
