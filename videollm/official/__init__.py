"""Published checkpoints read in their own layout (``--model DIR``): the VideoLLaMB release (``videollamb``) and
transformers vision-language models used as backbones (``vlm``: SmolVLM2, LLaVA-OneVision, InternVL).

Each reader module has ``model_config(directory)`` (the ``ModelConfig`` that runs it) and
``load_lm(directory, dtype, device)`` (its language model and tokenizer); ``reader_for`` picks one.
"""

from __future__ import annotations

import os
from types import ModuleType

from videollm.official import videollamb, vlm
from videollm.official.videollamb import is_videollamb_dir
from videollm.official.vlm import is_vlm_dir

__all__ = ["is_videollamb_dir", "is_vlm_dir", "reader_for"]


def reader_for(directory: str | os.PathLike) -> ModuleType | None:
    """The module that reads ``directory`` in its own layout, or None (a videollm checkpoint or a plain LM)."""
    if is_videollamb_dir(directory):
        return videollamb
    if is_vlm_dir(directory):
        return vlm
    return None
