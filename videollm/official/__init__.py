"""Published checkpoints read in their own layout (``--model DIR``): the VideoLLaMB release (``videollamb``)."""

from videollm.official.videollamb import is_videollamb_dir

__all__ = ["is_videollamb_dir"]
