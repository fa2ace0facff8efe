"""Prompt building: chat template, visual-marker expansion into placeholder tokens, labels, batching.

A user message marks where the video (or image) goes with one marker (``<video>`` or ``<image>``). The
processor replaces each marker with exactly ``num_visual_tokens`` copies of the placeholder token, which the
model later overwrites with the visual embeddings (:func:`videollm.lm.scatter_visual`). The number of
visual tokens is decided by the caller (the bridge readout length), never guessed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch.nn.utils.rnn import pad_sequence

from videollm.errors import ModelError, UsageError
from videollm.lm.config import LMConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
ROLES = ("system", "user", "assistant")

Message = Mapping[str, str]


class Processor:
    """Turns chat messages into token ids with visual placeholders (and training labels).

    Args:
        tokenizer: a fast tokenizer with a chat template that already knows ``placeholder_token``
            (``load_lm`` ensures this).
        placeholder_token: token text standing for one visual embedding.
        markers: text markers a user message uses for its video / image.
        system_prompt: system message put first when a conversation has none (``None``: the chat
            template decides).
        frame_tokens, frame_open, frame_close, frame_separator: per-frame layout of the placeholders
            (``LMConfig.frame_tokens``).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        placeholder_token: str = "<|vid_pad|>",
        markers: Sequence[str] = ("<video>", "<image>"),
        system_prompt: str | None = None,
        frame_tokens: int = 0,
        frame_open: str = "",
        frame_close: str = "",
        frame_separator: str = "",
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ModelError("the processor needs a fast (tokenizers-backed) tokenizer for offset mapping")
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError("the tokenizer has no chat template")
        placeholder_id = tokenizer.get_vocab().get(placeholder_token)
        if placeholder_id is None:
            raise ModelError(
                f"tokenizer does not know the placeholder token {placeholder_token!r} (load the LM with load_lm)"
            )
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise ModelError("the tokenizer has neither a pad nor an EOS token")
        self.tokenizer = tokenizer
        self.placeholder_token = placeholder_token
        self.placeholder_id: int = placeholder_id
        self.pad_id: int = pad_id
        self.markers = tuple(markers)
        self.system_prompt = system_prompt
        self.frame_tokens = frame_tokens
        self.frame_open = frame_open
        self.frame_close = frame_close
        self.frame_separator = frame_separator

    @classmethod
    def from_config(cls, tokenizer: PreTrainedTokenizerBase, cfg: LMConfig) -> Processor:
        """Processor with the placeholder, markers and system prompt of ``cfg``."""
        return cls(tokenizer, cfg.placeholder_token, cfg.markers, cfg.system_prompt, cfg.frame_tokens,
                   cfg.frame_open, cfg.frame_close, cfg.frame_separator)

    def count_markers(self, text: str) -> int:
        """Number of visual markers in ``text``."""
        return sum(text.count(marker) for marker in self.markers)

    def expand(self, text: str, num_visual_tokens: int) -> str:
        """Replace every marker in ``text`` with ``num_visual_tokens`` placeholder tokens.

        Args:
            text: message or prompt text.
            num_visual_tokens: placeholders per marker (>= 0).

        Returns:
            The expanded text.
        """
        if num_visual_tokens < 0:
            raise UsageError(f"num_visual_tokens must be >= 0, got {num_visual_tokens}")
        run = self.placeholder_token * num_visual_tokens
        if self.frame_tokens and (self.frame_open or self.frame_close or self.frame_separator):
            frames, rest = divmod(num_visual_tokens, self.frame_tokens)
            body = self.placeholder_token * self.frame_tokens + self.frame_close
            run = self.frame_separator.join(self.frame_open.replace("{n}", str(n)) + body
                                            for n in range(1, frames + 1)) + self.placeholder_token * rest
        for marker in self.markers:
            text = text.replace(marker, run)
        return text

    def render(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        """Apply the LM's chat template (text only, no marker expansion, no tokenisation).

        Args:
            messages: ``[{"role": ..., "content": ...}, ...]``.
            add_generation_prompt: end with the header that starts an assistant turn.

        Returns:
            The rendered prompt text.
        """
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        if self.system_prompt is not None and (not msgs or msgs[0]["role"] != "system"):
            msgs.insert(0, {"role": "system", "content": self.system_prompt})
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt)

    def encode_prompt(self, messages: Sequence[Message], num_visual_tokens: int = 0) -> dict[str, torch.Tensor]:
        """Token ids of a generation prompt (ends with the assistant header).

        Args:
            messages: the conversation so far, last message from the user.
            num_visual_tokens: placeholders per marker; must be > 0 iff a marker is present.

        Returns:
            ``input_ids`` (T,) long and ``attention_mask`` (T,) long.
        """
        expanded = self._expand_messages(messages, num_visual_tokens)
        text = self.render(expanded, add_generation_prompt=True)
        ids, _ = self._tokenize(text, self._expected_placeholders(messages, num_visual_tokens))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def build_training_example(
        self, messages: Sequence[Message], num_visual_tokens: int = 0
    ) -> dict[str, torch.Tensor]:
        """Token ids and labels for supervised fine-tuning on a conversation.

        Labels are ``-100`` everywhere except on the tokens of assistant answers (their text and the
        end-of-turn token that follows, so the model learns to stop). Trailing whitespace the template puts
        after a turn is not trained on.

        Args:
            messages: the conversation, with at least one assistant message.
            num_visual_tokens: placeholders per marker; must be > 0 iff a marker is present.

        Returns:
            ``input_ids``, ``attention_mask`` and ``labels``, each (T,) long.

        Raises:
            UsageError: no assistant message, bad roles, or a marker / ``num_visual_tokens`` mismatch.
            ModelError: the chat template renders a conversation's prefix differently from the
                conversation's start (labels could not be placed).
        """
        expanded = self._expand_messages(messages, num_visual_tokens)
        if not any(m["role"] == "assistant" for m in expanded):
            raise UsageError("a training conversation needs at least one assistant message")
        full = self.render(expanded, add_generation_prompt=False)
        spans: list[tuple[int, int]] = []
        for i, message in enumerate(expanded):
            if message["role"] != "assistant":
                continue
            before = self.render(expanded[:i], add_generation_prompt=True)
            upto = self.render(expanded[: i + 1], add_generation_prompt=False)
            if not (upto.startswith(before) and full.startswith(upto)):
                raise ModelError("the chat template does not render conversations prefix-stably; cannot place labels")
            spans.append((len(before), len(upto.rstrip())))
        ids, offsets = self._tokenize(full, self._expected_placeholders(messages, num_visual_tokens))
        starts = offsets[:, 0]  # (T,)
        bounds = torch.tensor(spans, dtype=torch.long)  # (S, 2)
        in_answer = ((starts[:, None] >= bounds[None, :, 0]) & (starts[:, None] < bounds[None, :, 1])).any(dim=1)
        labels = torch.where(in_answer, ids, torch.full_like(ids, IGNORE_INDEX))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

    def collate(
        self, examples: Sequence[Mapping[str, torch.Tensor]], padding_side: Literal["left", "right"] = "right"
    ) -> dict[str, torch.Tensor]:
        """Pad 1-D examples into a batch.

        Use ``"right"`` for training and ``"left"`` for batched generation (so every prompt ends at the
        last column). Padding uses the pad id, mask 0 and label ``-100``.

        Args:
            examples: dicts with ``input_ids`` and ``attention_mask`` (T_i,), optionally ``labels`` (T_i,).
            padding_side: where the padding goes.

        Returns:
            The same keys, each (B, T_max) long.
        """
        if not examples:
            raise UsageError("cannot collate an empty batch")
        if padding_side not in ("left", "right"):
            raise UsageError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        fill = {"input_ids": self.pad_id, "attention_mask": 0, "labels": IGNORE_INDEX}
        keys = [k for k in fill if k in examples[0]]
        return {
            k: pad_sequence(
                [ex[k] for ex in examples], batch_first=True, padding_value=fill[k], padding_side=padding_side
            )
            for k in keys
        }

    def _expand_messages(self, messages: Sequence[Message], num_visual_tokens: int) -> list[dict[str, str]]:
        out = []
        for message in messages:
            role, content = message.get("role"), message.get("content")
            if role not in ROLES:
                raise UsageError(f"message role must be one of {', '.join(ROLES)}, got {role!r}")
            if not isinstance(content, str):
                raise UsageError(f"message content must be a string, got {type(content).__name__}")
            if self.placeholder_token in content:
                raise UsageError(f"message text must not contain the placeholder token {self.placeholder_token!r}")
            if self.count_markers(content) > 1:
                raise UsageError(f"a message may hold at most one of {', '.join(self.markers)}")
            out.append({"role": role, "content": self.expand(content, num_visual_tokens)})
        return out

    def _expected_placeholders(self, messages: Sequence[Message], num_visual_tokens: int) -> int:
        n_markers = sum(self.count_markers(m["content"]) for m in messages)
        if (n_markers > 0) != (num_visual_tokens > 0):
            raise UsageError(
                f"{n_markers} visual marker(s) in the messages but num_visual_tokens={num_visual_tokens}: "
                f"put {' or '.join(self.markers)} in a user message exactly when visual tokens are given"
            )
        return n_markers * num_visual_tokens

    def _tokenize(self, text: str, expected_placeholders: int) -> tuple[torch.Tensor, torch.Tensor]:
        # The template already holds its special tokens (BOS etc.) as text: add none on top.
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = torch.tensor(enc["input_ids"], dtype=torch.long)  # (T,)
        offsets = torch.tensor(enc["offset_mapping"], dtype=torch.long).reshape(-1, 2)  # (T, 2)
        found = int((ids == self.placeholder_id).sum())
        if found != expected_placeholders:
            raise ModelError(
                f"prompt tokenised to {found} placeholder tokens, expected {expected_placeholders} "
                "(the tokenizer splits or merges the placeholder token)"
            )
        return ids, offsets
