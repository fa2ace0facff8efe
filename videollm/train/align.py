"""Word-alignment auxiliary loss: make the projected visual tokens of a scene point at the LM's own word embeddings
of what the scene shows.

A frozen LM reads a visual token most easily when it looks like a word it knows. For every training clip the
target words are the attribute words of the scene the readout shows (size, colour, shape and motion of each
object, e.g. " large", " red", " star", " bounces"). The loss scores every visual token against every vocabulary
embedding by cosine similarity, pools over the clip's tokens (log-sum-exp, so one token may carry one word), and
takes the cross-entropy of each target word against the whole vocabulary. It needs no LM forward pass, so it is
cheap enough to add to every step, and it gives the bridge and projector a direct gradient towards encoding the
attributes before the LM has learnt to read them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from videollm.lm.words import word_id, word_vocab  # noqa: F401  (word_id: part of this module's API)
from videollm.world.vocab import MOTION_PHRASES

# The word of each motion phrase that carries the motion ("moves left" -> "left", "stays still" -> "still").
MOTION_WORDS = {motion: phrase.split()[-1] for motion, phrase in MOTION_PHRASES.items()}


# The needle clips' background (the one background a caption names: "a large red star on a checkerboard").
NEEDLE_WORD = "checkerboard"


def scene_words(scene) -> list[str]:
    """Attribute words of a world ``SceneSpec`` (deduplicated, in order of appearance), then ``NEEDLE_WORD`` for a
    scene on the needle checkerboard."""
    words: list[str] = []
    for obj in scene.objects:
        for word in (obj.size, obj.colour, obj.shape, MOTION_WORDS[obj.motion]):
            if word not in words:
                words.append(word)
    if scene.background.kind == "checker":
        words.append(NEEDLE_WORD)
    return words


def align_loss(visual: Tensor, mask: Tensor, targets: Sequence[Sequence[int]], embeddings: Tensor,
               vocab: Tensor, temperature: float = 0.05) -> Tensor:
    """Bag-of-words loss of projected visual tokens against the LM's vocabulary.

    Args:
        visual: (B, R, H) projected readout tokens.
        mask: (B, R) True on real tokens.
        targets: per clip, the token ids its tokens should name (empty: the clip adds nothing).
        embeddings: (V, H) the LM's input embedding matrix (frozen).
        vocab: (K,) sorted token ids the words compete against (every target must be among them): the attribute words
            plus a fixed sample of other words; scoring the whole vocabulary would cost more than the LM step.
        temperature: cosine-similarity temperature.

    Returns:
        Mean cross-entropy over all target words of the batch (0 when there is none).
    """
    rows = [b for b, t in enumerate(targets) if len(t)]
    if not rows:
        return visual.sum() * 0.0
    v = F.normalize(visual[rows], dim=-1)  # (B', R, H)
    e = F.normalize(embeddings.detach()[vocab].to(v.dtype), dim=-1)  # (K, H)
    scores = (v @ e.T) / temperature  # (B', R, K)
    scores = scores.masked_fill(~mask[rows].unsqueeze(-1), float("-inf"))
    pooled = torch.logsumexp(scores, dim=1)  # (B', K)
    logp = F.log_softmax(pooled, dim=-1)
    ids = torch.tensor([t for b in rows for t in targets[b]], device=logp.device)  # (N,)
    row = torch.repeat_interleave(torch.arange(len(rows), device=logp.device),
                                  torch.tensor([len(targets[b]) for b in rows], device=logp.device))  # (N,)
    return -logp[row, torch.searchsorted(vocab.to(logp.device), ids)].mean()


def world_words() -> list[str]:
    """Every attribute word a world caption can contain."""
    from videollm.world.vocab import COLOUR_NAMES, MOTIONS, SHAPES, SIZE_NAMES

    return [*SIZE_NAMES, *COLOUR_NAMES, *SHAPES, *(MOTION_WORDS[m] for m in MOTIONS)]


def grounded_words() -> list[str]:
    """Every word a world scene's tokens can be aligned to: the attribute words and ``NEEDLE_WORD``."""
    return [*world_words(), NEEDLE_WORD]


def align_vocab(tokenizer, vocab_size: int, distractors: int = 1024, seed: int = 0,
                words: Sequence[str] | None = None) -> Tensor:
    """``videollm.lm.words.word_vocab`` over ``words`` (default ``world_words()``; recipes with needle clips add
    ``NEEDLE_WORD``)."""
    return word_vocab(tokenizer, vocab_size, world_words() if words is None else words, distractors, seed)


def word_targets(tokenizer, words_per_example: Sequence[Sequence[str]]) -> list[list[int]]:
    """Token ids of each example's words (see ``word_id``)."""
    cache: dict[str, int] = {}
    out = []
    for words in words_per_example:
        out.append([cache.setdefault(w, word_id(tokenizer, w)) for w in words])
    return out
