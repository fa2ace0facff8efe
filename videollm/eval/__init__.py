"""Evaluation on held-out synthetic videos: metrics (``metrics``), runners (``runner``), end-to-end suites that write
JSON + PNG (``suite``). Used by ``videollm eval`` and ``videollm bench``."""

from videollm.eval.metrics import (
    ATTRIBUTES,
    answer_correct,
    match_objects,
    mean_by,
    normalize_answer,
    overlap_assign,
    parse_caption,
    score_caption,
)

__all__ = ["ATTRIBUTES", "answer_correct", "match_objects", "mean_by", "normalize_answer", "overlap_assign",
           "parse_caption", "score_caption"]
