"""Word ids in an LM's vocabulary: the shared vocabulary of the word-alignment loss (training) and of
question-conditioned recall (inference), which must score against the same words to agree."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def word_id(tokenizer, word: str) -> int:
    """Token id of `` word`` (with its leading space, as in a caption); the first piece when it splits."""
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"{word!r} tokenises to nothing")
    return int(ids[0])


def word_vocab(tokenizer, vocab_size: int, words: Sequence[str], distractors: int = 1024, seed: int = 0) -> Tensor:
    """The token ids target words compete against: the target words plus a seeded sample of others.

    Args:
        tokenizer: the LM's tokenizer.
        vocab_size: rows of the LM's embedding matrix.
        words: the target words.
        distractors: how many other token ids to sample.
        seed: sampling seed (fixed, so training and recall score against the same words).

    Returns:
        (K,) int64, sorted and unique.
    """
    ids = {word_id(tokenizer, w) for w in words}
    generator = torch.Generator().manual_seed(seed)
    others = torch.randint(0, vocab_size, (distractors,), generator=generator).tolist()
    return torch.tensor(sorted(ids | set(others)), dtype=torch.int64)
