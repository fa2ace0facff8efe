"""A tiny random Llama with a small byte-level BPE tokenizer: the LM of the ``tiny`` preset.

It exists so that the whole pipeline (vision → bridge → projector → LM → generation) runs in milliseconds in tests
and smoke checks, with no package-shipped weights. It is built deterministically on first use into the cache
directory (``<cache>/lm/tiny-random-v1``) and is loaded from there like any local model directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

TINY_ALIAS = "tiny-random"
_VERSION = "v1"
_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _corpus() -> list[str]:
    from videollm.world import COLOUR_NAMES, MOTIONS, SHAPES, SIZES

    words = [*SHAPES, *COLOUR_NAMES, *SIZES, *MOTIONS]
    return [" ".join(words), "describe the scene. what happens in the video? a the and moves spins stays still",
            "how many objects are there? what appeared first? what colour is it? yes no one two three"] * 4


def tiny_lm_dir() -> Path:
    """Directory of the tiny LM, building it on first use (atomically: temp dir + rename)."""
    from videollm.lm.loading import cache_dir

    target = cache_dir() / "lm" / f"tiny-random-{_VERSION}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    try:
        build_tiny_lm(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():  # another process may have won the race
            raise
    return target


def build_tiny_lm(directory: str | os.PathLike, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Write a random tiny Llama (safetensors) and its tokenizer (with a chat template) into ``directory``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = _TEMPLATE
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    directory = Path(directory)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory
