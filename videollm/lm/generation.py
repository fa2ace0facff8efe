"""Streaming generation from input embeddings, chat turns, and candidate scoring.

Everything here runs the model under ``torch.no_grad`` (and optional autocast) *per forward call*, never
around a ``yield``: grad mode and autocast are thread-local switches, and holding them across a yield would
leak them into the consumer's code while the generator is suspended.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch.nn.utils.rnn import pad_sequence

from videollm.errors import UsageError
from videollm.lm.scatter import embed_with_visual

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from videollm.lm.processor import Processor


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _cache_argument(model: PreTrainedModel) -> str:
    """The name the model's forward takes the key/value cache under: ``cache`` once transformers renamed
    ``past_key_values`` (after 5.17, by 5.24; the old name is a deprecated alias until 5.40), else ``past_key_values``.
    A PEFT wrapper forwards ``**kwargs``, so the wrapped model's class is asked."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _cache_argument_of(type(base))


@functools.cache
def _cache_argument_of(cls: type) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


@torch.no_grad()
def _forward(
    model: PreTrainedModel,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    cache: Any,
    autocast_dtype: torch.dtype | None,
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    last_only: bool = True,
) -> tuple[torch.Tensor, Any]:
    device = (inputs_embeds if inputs_embeds is not None else input_ids).device
    with _autocast(device, autocast_dtype):
        out = model(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            # Only the last position's logits are needed while generating: skip the (T, V) head matmul.
            logits_to_keep=1 if last_only else 0,
            **{_cache_argument(model): cache},
        )
    cache = getattr(out, "cache", None)  # the output field was renamed with the argument
    if cache is None:
        cache = getattr(out, "past_key_values", None)
    return out.logits.float(), cache


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    # Left padding: real tokens count from 0 after the pads (pads get 0, they are masked anyway).
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(int(v) for v in value)
    return ids


def _pick_token(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> int:
    """Greedy (temperature 0) or nucleus sampling from (1, V) logits."""
    if temperature <= 0.0:
        return int(logits.argmax(dim=-1))
    probs = torch.softmax(logits / temperature, dim=-1)  # (1, V)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Drop a token once the mass before it already reaches top_p (the top token always stays).
        drop = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


class _IncrementalDecoder:
    """Decodes a growing id list into only the newly stable text.

    A piece is released once the decoded text stops ending in U+FFFD (an incomplete UTF-8 sequence of a
    byte-level BPE); the text is decoded in a short window that starts one piece back, so tokenizers that
    render a leading space depending on context (SentencePiece) still produce the same text as decoding
    everything at once.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix_text = self._decode(self.ids[self.prefix : self.read])
        new_text = self._decode(self.ids[self.prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return new_text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        prefix_text = self._decode(self.ids[self.prefix : self.read])
        new_text = self._decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return new_text[len(prefix_text) :]


class _StopFilter:
    """Withholds text that might be the start of a stop string; cuts the output before a stop string."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""

    def push(self, text: str) -> tuple[str, bool]:
        buf = self.pending + text
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.pending = ""
            return buf[: min(hits)], True
        hold = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(buf)), hold, -1):
                if buf.endswith(stop[:k]):
                    hold = k
                    break
        self.pending = buf[len(buf) - hold :]
        return buf[: len(buf) - hold], False


def generate_stream(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop: Sequence[str] = (),
    seed: int | None = None,
    suppress_token_ids: Sequence[int] = (),
    autocast_dtype: torch.dtype | None = None,
) -> Iterator[str]:
    """Generate text from prompt embeddings, yielding each newly decoded piece as soon as it is stable.

    Uses the KV cache (one forward per new token after the prompt). Stops at an EOS token, a stop string
    (which is never yielded, nor any text after it) or ``max_new_tokens``. Special tokens are not
    rendered. ``"".join(pieces)`` is the decoded answer.

    Args:
        model: causal LM.
        tokenizer: its tokenizer.
        inputs_embeds: (1, T, H) prompt embeddings (visual tokens already scattered in), or (T, H).
        attention_mask: (1, T) or (T,); 0 marks left padding. ``None``: all ones.
        max_new_tokens: upper bound on generated tokens.
        temperature: 0 for greedy decoding, else the softmax temperature of sampling.
        top_p: nucleus sampling mass (only with ``temperature > 0``).
        stop: strings that end the answer.
        seed: seeds the sampler (``None``: torch's global RNG).
        suppress_token_ids: ids never generated (e.g. the visual placeholder).
        autocast_dtype: e.g. ``torch.bfloat16`` to run the forwards under autocast.

    Returns:
        An iterator of text pieces (arguments are checked at the call, before the first piece).
    """
    if inputs_embeds.dim() == 2:
        inputs_embeds = inputs_embeds.unsqueeze(0)
    if inputs_embeds.dim() != 3 or inputs_embeds.shape[0] != 1:
        raise UsageError(f"generate_stream takes one prompt, (1, T, H) embeddings; got {tuple(inputs_embeds.shape)}")
    if max_new_tokens < 0:
        raise UsageError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    device = inputs_embeds.device
    mask = (
        torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=device)
        if attention_mask is None
        else attention_mask.reshape(1, -1).to(device=device, dtype=torch.long)
    )  # (1, T)
    args = (max_new_tokens, temperature, top_p, stop, seed, suppress_token_ids, autocast_dtype)
    return _generate(model, tokenizer, inputs_embeds, mask, *args)


def _generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    inputs_embeds: torch.Tensor,
    mask: torch.Tensor,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    stop: Sequence[str],
    seed: int | None,
    suppress_token_ids: Sequence[int],
    autocast_dtype: torch.dtype | None,
) -> Iterator[str]:
    device = inputs_embeds.device
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    eos = _eos_ids(model, tokenizer)
    suppress = torch.tensor(list(suppress_token_ids), dtype=torch.long, device=device)
    decoder, stopper = _IncrementalDecoder(tokenizer), _StopFilter(stop)
    if max_new_tokens == 0:
        return
    position = _positions(mask)  # (1, T)
    logits, cache = _forward(model, mask, position, None, autocast_dtype, inputs_embeds=inputs_embeds)
    position = position[:, -1:]  # (1, 1)
    for step in range(max_new_tokens):
        logits = logits[:, -1]  # (1, V)
        if suppress.numel():
            logits = logits.index_fill(-1, suppress, float("-inf"))
        token = _pick_token(logits, temperature, top_p, generator)
        if token in eos:
            break
        text, stopped = stopper.push(decoder.push(token))
        if text:
            yield text
        if stopped:
            return
        if step + 1 == max_new_tokens:
            break
        mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)  # (1, T + step + 1)
        position = position + 1
        token_ids = torch.tensor([[token]], dtype=torch.long, device=device)
        logits, cache = _forward(model, mask, position, cache, autocast_dtype, input_ids=token_ids)
    text, _ = stopper.push(decoder.flush())
    text += stopper.pending
    if text:
        yield text


@torch.no_grad()
def generate_greedy_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    suppress_token_ids: Sequence[int] = (),
    autocast_dtype: torch.dtype | None = None,
) -> list[str]:
    """Greedy answers to several prompts at once (one forward per new token for the whole batch).

    The same text ``generate_stream`` gives each prompt alone with greedy decoding (up to float rounding of
    batched matrix products), at a fraction of the time when the prompts are many: one forward serves them all.

    Args:
        model: causal LM.
        tokenizer: its tokenizer.
        inputs_embeds: (B, T, H) prompt embeddings, left padded.
        attention_mask: (B, T); 0 marks left padding.
        max_new_tokens: upper bound on generated tokens per prompt.
        suppress_token_ids: ids never generated.
        autocast_dtype: e.g. ``torch.bfloat16`` to run the forwards under autocast.

    Returns:
        B decoded answers (special tokens not rendered).
    """
    if inputs_embeds.dim() != 3 or attention_mask.shape != inputs_embeds.shape[:2]:
        raise UsageError(f"generate_greedy_batch takes (B, T, H) embeddings and a (B, T) mask; got "
                         f"{tuple(inputs_embeds.shape)} and {tuple(attention_mask.shape)}")
    device = inputs_embeds.device
    batch = inputs_embeds.shape[0]
    mask = attention_mask.to(device=device, dtype=torch.long)
    eos = torch.tensor(sorted(_eos_ids(model, tokenizer)), dtype=torch.long, device=device)
    suppress = torch.tensor(list(suppress_token_ids), dtype=torch.long, device=device)
    out = torch.zeros(batch, 0, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    if max_new_tokens > 0:
        position = _positions(mask)
        logits, cache = _forward(model, mask, position, None, autocast_dtype, inputs_embeds=inputs_embeds)
        position = position[:, -1:]  # (B, 1)
        for step in range(max_new_tokens):
            last = logits[:, -1]  # (B, V)
            if suppress.numel():
                last = last.index_fill(-1, suppress, float("-inf"))
            token = last.argmax(dim=-1)  # (B,)
            finished = torch.isin(token, eos) | done
            out = torch.cat([out, token.masked_fill(finished, -1)[:, None]], dim=1)
            done = finished
            if bool(done.all()) or step + 1 == max_new_tokens:
                break
            mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
            position = position + 1
            logits, cache = _forward(model, mask, position, cache, autocast_dtype, input_ids=token[:, None])
    return [tokenizer.decode([int(t) for t in row if t >= 0], skip_special_tokens=True,
                             clean_up_tokenization_spaces=False) for row in out]


def chat(
    model: PreTrainedModel,
    processor: Processor,
    history: Sequence[Mapping[str, str]],
    question: str,
    visual: torch.Tensor | None = None,
    **generate_kwargs: Any,
) -> Iterator[str]:
    """Answer ``question`` after ``history``, optionally about visual tokens; returns the text stream.

    If ``visual`` is given and no message holds a marker, the first marker (``<video>``) is put in front
    of the first user message. The prompt is built eagerly (errors surface at the call, not at the first
    ``next``); the returned iterator is :func:`generate_stream`'s, with the placeholder suppressed.

    Args:
        model: causal LM.
        processor: the processor of its tokenizer.
        history: earlier ``{"role", "content"}`` messages (may be empty).
        question: the new user message.
        visual: (R, H) or (1, R, H) visual tokens for the marker, or ``None``.
        **generate_kwargs: forwarded to :func:`generate_stream` (``max_new_tokens``, ``temperature``, ...).

    Returns:
        Iterator of answer text pieces.
    """
    messages = [dict(m) for m in history] + [{"role": "user", "content": question}]
    num_visual = 0
    if visual is not None:
        visual = visual.reshape(-1, visual.shape[-1])  # (R, H)
        num_visual = visual.shape[0]
        if not any(processor.count_markers(m["content"]) for m in messages):
            first_user = next(m for m in messages if m["role"] == "user")
            first_user["content"] = f"{processor.markers[0]}\n{first_user['content']}"
    enc = processor.encode_prompt(messages, num_visual)
    device = model.get_input_embeddings().weight.device
    input_ids = enc["input_ids"].unsqueeze(0).to(device)  # (1, T)
    visual = None if visual is None else visual.to(device)
    with torch.no_grad():
        embeds = embed_with_visual(model, input_ids, visual, processor.placeholder_id)  # (1, T, H)
    suppress = tuple(generate_kwargs.pop("suppress_token_ids", ())) + (processor.placeholder_id,)
    mask = enc["attention_mask"].unsqueeze(0)  # (1, T)
    return generate_stream(model, processor.tokenizer, embeds, mask, suppress_token_ids=suppress, **generate_kwargs)


@torch.no_grad()
def score_candidates(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prefix_embeds: torch.Tensor,
    candidates: Sequence[str],
    prefix_mask: torch.Tensor | None = None,
    reduction: Literal["mean", "sum"] = "mean",
    append_eos: bool = False,
    batch_size: int = 16,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Log-likelihood of each candidate continuation of one prompt (multiple choice, answer ranking).

    The prompt runs once; its KV cache is repeated for each batch of candidates.

    Args:
        model: causal LM.
        tokenizer: its tokenizer (candidates are tokenised without special tokens).
        prefix_embeds: (1, P, H) or (P, H) prompt embeddings, typically ending with the assistant header.
        candidates: continuation texts (each must tokenise to at least one token).
        prefix_mask: (1, P) or (P,) attention mask of the prompt (0 = left padding); ``None``: all ones.
        reduction: ``"sum"`` of token log-probs, or their ``"mean"`` (length-normalised).
        append_eos: also score the EOS token after each candidate (rewards complete answers).
        batch_size: candidates per forward.
        autocast_dtype: e.g. ``torch.bfloat16`` to run the forwards under autocast.

    Returns:
        (C,) float32 scores, higher is more likely.
    """
    if reduction not in ("mean", "sum"):
        raise UsageError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if not candidates:
        raise UsageError("score_candidates needs at least one candidate")
    if prefix_embeds.dim() == 2:
        prefix_embeds = prefix_embeds.unsqueeze(0)
    device = prefix_embeds.device
    pmask = (
        torch.ones(prefix_embeds.shape[:2], dtype=torch.long, device=device)
        if prefix_mask is None
        else prefix_mask.reshape(1, -1).to(device=device, dtype=torch.long)
    )  # (1, P)
    token_lists = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in candidates]
    if append_eos:
        token_lists = [ids + [tokenizer.eos_token_id] for ids in token_lists]
    empty = [c for c, ids in zip(candidates, token_lists) if not ids]
    if empty:
        raise UsageError(f"candidate {empty[0]!r} tokenises to nothing")
    prefix_logits, prefix_cache = _forward(
        model, pmask, _positions(pmask), None, autocast_dtype, inputs_embeds=prefix_embeds
    )
    first_logp = torch.log_softmax(prefix_logits[:, -1], dim=-1)  # (1, V): predicts each candidate's 1st token
    start = int(pmask.sum())
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores = []
    for lo in range(0, len(token_lists), batch_size):
        chunk = token_lists[lo : lo + batch_size]
        rows = [torch.tensor(toks, dtype=torch.long, device=device) for toks in chunk]
        ids = pad_sequence(rows, batch_first=True, padding_value=pad)  # (n, L)
        valid = pad_sequence([torch.ones_like(r, dtype=torch.bool) for r in rows], batch_first=True)  # (n, L)
        n, length = ids.shape
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(n)
        mask = torch.cat([pmask.expand(n, -1), valid.long()], dim=1)  # (n, P + L)
        position = (start + torch.arange(length, device=device)).expand(n, -1)  # (n, L)
        logits, _ = _forward(model, mask, position, cache, autocast_dtype, input_ids=ids, last_only=False)
        # Position j's logits predict token j + 1; the prompt's last logits predict token 0.
        logp = torch.cat([first_logp[:, None].expand(n, 1, -1), torch.log_softmax(logits[:, :-1], dim=-1)], dim=1)
        token_logp = logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1) * valid  # (n, L)
        total = token_logp.sum(dim=1)  # (n,)
        scores.append(total / valid.sum(dim=1) if reduction == "mean" else total)
    return torch.cat(scores).float()
