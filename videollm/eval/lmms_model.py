"""videollm as an lmms-eval model: ``python -m lmms_eval --model videollm --model_args model=DIR_OR_PRESET ...``.

Registered through the Python entry point group ``lmms_eval.models`` (``manifest`` below; nothing in lmms-eval is
edited). Every question goes through the product's own path:

- a video or image is watched as ``videollm ask`` watches it (``videollm.captioning.open_memory``: SceneTiling, the
  memory bridge; a saved memory file loads without decoding);
- ``generate_until`` answers with ``videollm.captioning.ask`` (recall of the scene the question is about);
- ``loglikelihood`` scores continuations with ``VideoLLM.score`` on the readout after the last scene, as ``videollm
  eval``'s EgoPlan and ``videollm bench visdial`` do, and returns what lmms-eval's own LLaVA-family models return:
  the continuation's loss, its mean negative log-likelihood per token (lmms-eval's multiple-choice scorer picks the
  option of least loss, so its ``acc`` equals ``videollm eval``'s choice of the highest mean log-likelihood). All the
  continuations of one context (the options of a multiple-choice question) are scored together: the prompt runs
  once.

A document with a ``history`` field (a list of ``{"role": "user"|"assistant", "content": str}`` turns, oldest first)
gets those turns as chat history, as Visual Dialog rounds need.

Model arguments (``--model_args key=value,...``):
    model: checkpoint folder or preset name (default: the shipped checkpoint), as ``videollm --model``.
    fps: frames per second to sample (default: the model's).
    dtype: float32 (default), bfloat16 or float16.
    max_new_tokens: answer bound when the task's generation_kwargs give none (default 128).
The ``--device`` option of lmms-eval picks the torch device (default cpu); ``--batch_size`` is accepted, and
questions run one at a time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmms_eval.api.model import lmms

from videollm.errors import UsageError

MODEL_ID = "videollm"
#: Watched videos kept for the next requests (the questions of one video come together).
MEMORY_CACHE = 4


def manifest():
    """The entry point's payload (``[project.entry-points."lmms_eval.models"]`` in pyproject.toml)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.VideoLLMEval")


class VideoLLMEval(lmms):
    """lmms-eval's view of a ``VideoLLM`` (a simple model: each request brings its doc's visuals)."""

    is_simple = True

    def __init__(self, model: str | None = None, fps: float | None = None, dtype: str = "float32",
                 max_new_tokens: int = 128, device: str | None = None,
                 batch_size: int | str | None = 1, max_batch_size: int | None = None, **unknown: Any) -> None:
        super().__init__()
        if unknown:
            raise UsageError(f"videollm model_args: unknown {', '.join(sorted(unknown))} (known: model, fps, dtype, "
                             "max_new_tokens)")
        if int(max_new_tokens) < 1:
            raise UsageError(f"videollm model_args: max_new_tokens must be >= 1, got {max_new_tokens}")
        from videollm.commands import common

        args = argparse.Namespace(model=str(model) if model else common.DEFAULT_MODEL, device=device or "cpu",
                                  dtype=dtype, fps=float(fps) if fps else None)
        self.model = common.load_model(args).eval()
        self.max_new_tokens = int(max_new_tokens)
        self._memories: OrderedDict[str, Any] = OrderedDict()
        self._images = tempfile.TemporaryDirectory(prefix="videollm-lmms-")

    # ---------------------------------------------------------------------------------------------- visuals

    def _doc(self, task: str, split: str, doc_id: int) -> dict:
        return self.task_dict[task][split][doc_id]

    def _visual(self, doc_to_visual, task: str, split: str, doc_id: int):
        """The projected readout after the last scene of the doc's video or image (None without one), and the
        memory (None without a visual)."""
        visuals = doc_to_visual(self._doc(task, split, doc_id)) if doc_to_visual is not None else []
        visuals = [v for v in _flatten(visuals) if v is not None]
        if not visuals:
            return None
        if len(visuals) > 1:
            raise UsageError(f"videollm answers about one video or image a question; task {task} gave "
                             f"{len(visuals)} for doc {doc_id}")
        return self._memory(visuals[0], f"{task}/{split}/{doc_id}")

    def _memory(self, visual, key: str):
        """The memory of one visual: a file path (video, image or saved memory) or a PIL image, cached."""
        from videollm.captioning import open_memory

        if isinstance(visual, (str, os.PathLike)):
            path = str(visual)
            if not Path(path).is_file():
                raise UsageError(f"videollm: visual {path} is not a file")
        elif hasattr(visual, "save") and hasattr(visual, "mode"):  # a PIL image: lossless PNG, the image path
            path = os.path.join(self._images.name, f"{abs(hash(key))}.png")
            if path not in self._memories:
                visual.convert("RGB").save(path)
        else:
            raise UsageError(f"videollm: cannot read a visual of type {type(visual).__name__} (a video or image "
                             "file path, or a PIL image)")
        if path in self._memories:
            self._memories.move_to_end(path)
            return self._memories[path]
        state = open_memory(self.model, path)
        self._memories[path] = state
        while len(self._memories) > MEMORY_CACHE:
            self._memories.popitem(last=False)
        return state

    # ---------------------------------------------------------------------------------------------- requests

    def generate_until(self, requests) -> list[str]:
        """Answers as ``videollm ask`` gives them (greedy unless the task asks for sampling)."""
        from videollm.captioning import ask

        out = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            gen_kwargs = dict(gen_kwargs or {})
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            bound = int(gen_kwargs.get("max_new_tokens") or self.max_new_tokens)
            temperature = float(gen_kwargs.get("temperature") or 0.0) if gen_kwargs.get("do_sample") else 0.0
            history = self._doc(task, split, doc_id).get("history") or []
            state = self._visual(doc_to_visual, task, split, doc_id)
            if state is None:
                pieces = self.model.chat(None, list(history), context, max_new_tokens=bound,
                                         temperature=temperature, stop=until)
            else:
                pieces = ask(self.model, state, context, history, max_new_tokens=bound, temperature=temperature,
                             stop=until)
            text = _cut(("".join(pieces)).strip(), until)
            out.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return out

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        """(loss, is greedy) of each continuation as the answer to its context about its visual: the loss is the
        mean negative log-likelihood of its tokens, as lmms-eval's LLaVA-family models return it."""
        groups: OrderedDict[tuple, list[int]] = OrderedDict()
        continuations = []
        for i, request in enumerate(requests):
            context, target, doc_to_visual, doc_id, task, split = request.args
            if not isinstance(target, str):  # output_type loglikelihood: the doc's target
                target = target(self._doc(task, split, doc_id))
            continuations.append(str(target).strip())
            groups.setdefault((context, doc_to_visual, doc_id, task, split), []).append(i)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        for (context, doc_to_visual, doc_id, task, split), members in groups.items():
            history = self._doc(task, split, doc_id).get("history") or []
            state = self._visual(doc_to_visual, task, split, doc_id)
            visual = None if state is None else self.model.project_state(state)
            options = [continuations[i] for i in members]
            scores, greedy = self.model.score(visual, context, options, history, with_greedy=True)
            for i, s, g in zip(members, scores.tolist(), greedy.tolist(), strict=True):
                results[i] = (-float(s), bool(g))
                self.cache_hook.add_partial("loglikelihood", (context, continuations[i]), results[i])
        return results

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("videollm: multi-round generation is not supported; tasks with a dialog give it "
                                  "in the doc's `history` field")


def _flatten(items) -> list:
    if not isinstance(items, (list, tuple)):
        return [items]
    out = []
    for item in items:
        out.extend(_flatten(item))
    return out


def _cut(text: str, until: Sequence[str]) -> str:
    """The text up to the first stop string."""
    for stop in until:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text.strip()


__all__ = ["MODEL_ID", "VideoLLMEval", "manifest"]
