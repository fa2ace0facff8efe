"""Text generation from input embeddings on transformers' own ``generate``, chat turns, and candidate scoring.

Streamed generation runs ``generate`` in a worker thread that feeds a ``TextIteratorStreamer``: grad mode and
autocast are thread-local switches, so setting them in the worker never leaks them into the consumer's code while
the consumer's generator is suspended. Leaving that generator early cancels the worker at its next token.

Candidate scoring is the one thing ``generate`` cannot do (log-likelihoods of given continuations); it is a plain
forward over prompt and candidate, with no key/value cache to pass between calls, so nothing here depends on what a
transformers version calls that cache.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from videollm.errors import UsageError
from videollm.lm.scatter import embed_with_visual

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from videollm.lm.processor import Processor


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(int(v) for v in value)
    return sorted(ids)


def _generate_kwargs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_new_tokens: int,
                     temperature: float, top_p: float, suppress_token_ids: Sequence[int]) -> dict[str, Any]:
    """The decoding settings, all explicit: ``generate`` fills whatever is left unset from the model's own
    generation config (a hub checkpoint may ship sampling on, top-k or a repetition penalty)."""
    eos = _eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos[0] if eos else 0)
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens, "min_new_tokens": 0, "num_beams": 1, "repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0, "eos_token_id": eos, "pad_token_id": pad,
        "suppress_tokens": list(suppress_token_ids) or None, "do_sample": temperature > 0.0,
    }
    if temperature > 0.0:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    return kwargs


class _Cancel(StoppingCriteria):
    """Ends ``generate`` once set: the consumer of a stream went away or found a stop string first."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _StopFilter:
    """Withholds text that might be the start of a stop string; cuts the output before a stop string.

    ``generate``'s own ``stop_strings`` ends decoding but keeps the stop string in the text; the answer must not
    show it, nor a prefix of it while it is still undecided.
    """

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


@contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seeds the global RNG ``generate`` samples from, restoring it afterwards (``generate`` takes no generator;
    a seeded stream is reproducible as long as no other thread samples at the same time)."""
    if seed is None:
        yield
        return
    on_cpu = device.type == "cpu"  # the CPU generator is always forked
    with torch.random.fork_rng(devices=[] if on_cpu else [device], device_type=None if on_cpu else device.type):
        torch.manual_seed(seed)
        yield


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

    Stops at an EOS token, a stop string (which is never yielded, nor any text after it) or ``max_new_tokens``.
    Special tokens are not rendered. ``"".join(pieces)`` is the decoded answer.

    Args:
        model: causal LM.
        tokenizer: its tokenizer.
        inputs_embeds: (1, T, H) prompt embeddings (visual tokens already scattered in), or (T, H).
        attention_mask: (1, T) or (T,); 0 marks left padding. ``None``: all ones.
        max_new_tokens: upper bound on generated tokens.
        temperature: 0 for greedy decoding, else the softmax temperature of sampling.
        top_p: nucleus sampling mass (only with ``temperature > 0``).
        stop: strings that end the answer.
        seed: seeds the sampler (``None``: torch's global RNG as it is).
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
    if max_new_tokens == 0:
        return iter(())
    kwargs = _generate_kwargs(model, tokenizer, max_new_tokens, temperature, top_p, suppress_token_ids)
    stops = [s for s in stop if s]
    if stops:
        kwargs.update(stop_strings=stops, tokenizer=tokenizer)
    return _stream(model, tokenizer, inputs_embeds, mask, kwargs, stops, seed, autocast_dtype)


def _stream(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, inputs_embeds: torch.Tensor,
            mask: torch.Tensor, kwargs: dict[str, Any], stops: Sequence[str], seed: int | None,
            autocast_dtype: torch.dtype | None) -> Iterator[str]:
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True,
                                    clean_up_tokenization_spaces=False)
    cancel = _Cancel()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with torch.no_grad(), _autocast(inputs_embeds.device, autocast_dtype), _seeded(seed, inputs_embeds.device):
                model.generate(inputs_embeds=inputs_embeds, attention_mask=mask, streamer=streamer,
                               stopping_criteria=StoppingCriteriaList([cancel]), **kwargs)
        except BaseException as err:  # noqa: BLE001 (re-raised in the consumer, which would otherwise wait forever)
            failure.append(err)
            streamer.end()

    worker = threading.Thread(target=work, name="videollm-generate", daemon=True)
    stopper = _StopFilter(stops)
    worker.start()
    try:
        for piece in streamer:
            text, stopped = stopper.push(piece)
            if text:
                yield text
            if stopped:
                return
        worker.join()
        if failure:
            raise failure[0]
        if stopper.pending:
            yield stopper.pending
    finally:
        cancel.event.set()
        worker.join()


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
    batch = inputs_embeds.shape[0]
    if max_new_tokens <= 0:
        return [""] * batch
    kwargs = _generate_kwargs(model, tokenizer, max_new_tokens, 0.0, 1.0, suppress_token_ids)
    mask = attention_mask.to(device=inputs_embeds.device, dtype=torch.long)
    with torch.no_grad(), _autocast(inputs_embeds.device, autocast_dtype):
        # With embeddings only, ``generate`` returns just the new tokens: (B, N).
        out = model.generate(inputs_embeds=inputs_embeds, attention_mask=mask, **kwargs)
    eos = set(kwargs["eos_token_id"])
    answers = []
    for row in out.tolist():
        end = next((i for i, t in enumerate(row) if t in eos), len(row))  # finished rows are padded after EOS
        answers.append(tokenizer.decode(row[:end], skip_special_tokens=True, clean_up_tokenization_spaces=False))
    return answers


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
    with_greedy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Log-likelihood of each candidate continuation of one prompt (multiple choice, answer ranking).

    The prompt runs once; each batch of candidates (right padded) is one forward continuing from a copy of the
    prompt's key/value cache (passed as ``cache=``, the name transformers' forwards take from 5.24 on).

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
        with_greedy: also return whether greedy decoding would produce each candidate (every token the argmax).

    Returns:
        (C,) float32 scores, higher is more likely; with ``with_greedy`` also a (C,) bool tensor.
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
    # The prompt runs once; every batch of candidates continues from a copy of its key/value cache.
    with _autocast(device, autocast_dtype):
        prompt = model(inputs_embeds=prefix_embeds, attention_mask=pmask, position_ids=(pmask.cumsum(-1) - 1).clamp(min=0),
                       use_cache=True, logits_to_keep=1)
    first_logp = torch.log_softmax(prompt.logits[:, -1].float(), dim=-1)  # (1, V): predicts each candidate's 1st token
    start = int(pmask.sum())
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # Several batches (long option lists such as VisDial's 100): candidates of equal token length go together, so
    # short ones are not padded to the longest; one batch keeps the given order.
    order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i])) if len(token_lists) > batch_size \
        else list(range(len(token_lists)))
    token_lists = [token_lists[i] for i in order]
    scores, greedy = [], []
    for lo in range(0, len(token_lists), batch_size):
        chunk = token_lists[lo : lo + batch_size]
        rows = [torch.tensor(toks, dtype=torch.long, device=device) for toks in chunk]
        ids = pad_sequence(rows, batch_first=True, padding_value=pad)  # (n, L)
        valid = pad_sequence([torch.ones_like(r, dtype=torch.bool) for r in rows], batch_first=True)  # (n, L)
        n, length = ids.shape
        cache = copy.deepcopy(prompt.cache)
        cache.batch_repeat_interleave(n)
        mask = torch.cat([pmask.expand(n, -1), valid.long()], dim=1)  # (n, P + L)
        position = (start + torch.arange(length, device=device)).expand(n, -1)  # (n, L)
        with _autocast(device, autocast_dtype):
            logits = model(input_ids=ids, attention_mask=mask, position_ids=position, cache=cache,
                           use_cache=True).logits.float()  # (n, L, V)
        # Position j's logits predict token j + 1; the prompt's last logits predict token 0.
        logp = torch.cat([first_logp[:, None].expand(n, 1, -1), torch.log_softmax(logits[:, :-1], dim=-1)], dim=1)
        token_logp = logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1) * valid  # (n, L)
        total = token_logp.sum(dim=1)  # (n,)
        scores.append(total / valid.sum(dim=1) if reduction == "mean" else total)
        if with_greedy:
            greedy.append(((logp.argmax(-1) == ids) | ~valid).all(dim=1))
    back = torch.argsort(torch.tensor(order, device=device))  # back in the candidates' order
    flat = torch.cat(scores).float()[back]
    return (flat, torch.cat(greedy)[back]) if with_greedy else flat
