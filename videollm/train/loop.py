"""The training loop on Hugging Face accelerate: the same code on CPU, one GPU, or ``accelerate launch``.

Steps of ``train``: build the model from the recipe, encode and cache missing vision features (main process first),
drop the vision tower, then optimise bridge + projector (and the LM when the recipe says so) with AdamW and a
warmup + cosine schedule. Checkpoints (``<output_dir>/checkpoints/step_NNNNNN``) hold ``config.json`` +
``model.safetensors`` (the trained weights, loadable by ``VideoLLM.from_pretrained``) and the optimiser state as
``optimizer.safetensors`` + ``trainer_state.json``; a run restarted with the same recipe resumes from the latest one and
continues exactly as if it had not stopped (data order is a function of the example index, and every step reseeds
dropout).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from videollm.errors import ModelError, UsageError
from videollm.train.config import (
    ConversationSourceConfig,
    TrainConfig,
    WorldSourceConfig,
)
from videollm.train.data import (
    ConversationExamples,
    Example,
    MixedDataset,
    WorldExamples,
    WorldScenes,
    total_examples,
)
from videollm.feature_cache import FeatureCache, namespace

CHECKPOINTS = "checkpoints"
FINAL = "final"
LM_DIR = "lm"


@dataclass
class TrainResult:
    """What a run did.

    Attributes:
        output_dir: the run folder.
        final_dir: ``<output_dir>/final`` (config.json + model.safetensors).
        steps: optimiser steps done in total (including those before a resume).
        target_steps: steps the recipe asked for.
        losses: per-step training loss (mean over the step's examples).
        extract_seconds: time spent encoding features in this process.
        train_seconds: time spent in optimiser steps in this process.
        stopped_early: True when ``max_minutes`` ended the run.
    """

    output_dir: Path
    final_dir: Path
    steps: int
    target_steps: int
    losses: list[float] = field(default_factory=list)
    extract_seconds: float = 0.0
    train_seconds: float = 0.0
    stopped_early: bool = False


def build_model_config(config: TrainConfig):
    """The recipe's model config: the preset (or checkpoint) config with ``model_overrides`` applied."""
    from videollm.config import ModelConfig, preset_names

    if Path(config.model).is_dir():
        data = ModelConfig.load(config.model).to_dict()
    elif config.model in preset_names():
        data = ModelConfig.preset(config.model).to_dict()
    else:
        raise UsageError(f"{config.model}: no such model preset or checkpoint directory")
    for section, fields in config.model_overrides.items():
        if section not in data or not isinstance(data[section], dict):
            raise UsageError(f"model_overrides: unknown model config section {section!r}")
        data[section].update(fields)
    return ModelConfig.from_dict(data)


def world_namespace(model_config) -> str:
    """Feature namespace of world scene pools (rendered at the model fps, F frames kept per scene; cut at the true
    scene boundaries, so the segmentation feature does not matter)."""
    c = model_config
    return namespace(c, f"world-scenes-fps{c.segmentation.fps}-F{c.bridge.max_frames_per_segment}",
                     scene_feature=False)


def lr_at(step: int, total: int, config: TrainConfig) -> float:
    """Learning rate for optimiser step ``step`` (0-based): linear warmup, then cosine to 0 or constant."""
    warmup = math.ceil(config.warmup_ratio * total)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "constant":
        return config.lr
    progress = (step - warmup) / max(1, total - warmup)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_collate(model):
    """Collate ``Example``s into ``(clips, batch, (word_targets, memory_word_targets, step_word_targets))`` for
    ``VideoLLM.forward`` and the alignment losses."""
    from videollm.train.align import word_targets

    def collate(examples: list[Example]) -> tuple[list[list[torch.Tensor]], dict[str, torch.Tensor],
                                                  tuple[list[list[int]], list[list[int]], list[list[list[int]]]]]:
        clips, encoded = [], []
        for ex in examples:
            n = model.num_visual_tokens([s.shape[0] for s in ex.segments], ex.memory_only)
            encoded.append(model.processor.build_training_example(ex.messages, n))
            clips.append(ex.segments)
        targets = (word_targets(model.tokenizer, [ex.words for ex in examples]),
                   word_targets(model.tokenizer, [ex.memory_words for ex in examples]),
                   [word_targets(model.tokenizer, ex.step_words) for ex in examples])
        batch = model.processor.collate(encoded)
        if any(ex.memory_only for ex in examples):
            batch["memory_only"] = torch.tensor([ex.memory_only for ex in examples])
        return clips, batch, targets

    return collate


def objective(model, clips, batch, targets, config: TrainConfig, vocab: torch.Tensor | None) -> torch.Tensor:
    """The weighted training objective of one micro-batch: LM answer loss and/or word-alignment losses.

    ``targets`` is ``(words, memory_words, step_words)`` from ``make_collate``: the shown scene's words for the
    whole readout, every scene's words for the readout's leading memory tokens, and per scene k the words of scenes
    0..k for the memory carried after it.
    """
    from videollm.train.align import align_loss

    if not (config.align_weight or config.memory_align_weight or config.step_align_weight):
        return model(clips, batch)
    outputs = model(clips, batch if config.lm_weight else None, return_visual=True,
                    return_memories=bool(config.step_align_weight))
    lm, visual, mask = outputs[:3]
    raw = model.module if hasattr(model, "module") else model
    embeddings = raw.lm.get_input_embeddings().weight
    words, memory_words, step_words = targets
    loss = config.lm_weight * lm if lm is not None else visual.sum() * 0.0
    if config.align_weight:
        loss = loss + config.align_weight * align_loss(visual, mask, words, embeddings, vocab)
    if config.memory_align_weight:
        counts = torch.tensor([raw.bridge.config.num_memory_readout_tokens(len(c)) for c in clips],
                              device=mask.device)  # (B,) memory tokens lead each clip's readout
        memory_mask = mask & (torch.arange(mask.shape[1], device=mask.device) < counts[:, None])
        loss = loss + config.memory_align_weight * align_loss(visual, memory_mask, memory_words, embeddings, vocab)
    if config.step_align_weight:
        memories = outputs[3]  # (B, S, M, H): one row per (clip, step); steps past a clip's end have no targets
        b, s, m, h = memories.shape
        per_step = [steps[k] if k < len(steps) else [] for steps in step_words for k in range(s)]
        loss = loss + config.step_align_weight * align_loss(
            memories.reshape(b * s, m, h), mask.new_ones(b * s, m), per_step, embeddings, vocab)
    return loss


def trainable_parameters(model, train_lm: bool) -> list[torch.nn.Parameter]:
    params = list(model.bridge.parameters()) + list(model.projector.parameters())
    params += list(model.lm.parameters()) if train_lm else list(model.lora_parameters().values())
    return [p for p in params if p.requires_grad]


# ------------------------------------------------------------------------------------------------ checkpoints


def save_checkpoint(directory: Path, model, optimizer, state: dict[str, Any], train_lm: bool) -> Path:
    """Weights (safetensors), optimiser state (safetensors) and the trainer state (JSON) in ``directory``."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp, train_lm)
    opt = optimizer.state_dict()
    tensors = {f"{idx}.{name}": value.detach().cpu().contiguous()
               for idx, slots in opt["state"].items() for name, value in slots.items() if torch.is_tensor(value)}
    save_file(tensors, str(tmp / "optimizer.safetensors"),
              metadata={"param_groups": json.dumps(opt["param_groups"])})
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(tmp, directory)
    return directory


def save_model(model, directory: Path, train_lm: bool) -> Path:
    """``model.save_pretrained`` plus, for a fine-tuned LM, the LM itself (its config then points at it)."""
    if not train_lm:
        return model.save_pretrained(directory)
    import dataclasses

    lm_dir = directory / LM_DIR
    model.lm.save_pretrained(lm_dir, safe_serialization=True)
    model.tokenizer.save_pretrained(lm_dir)
    original = model.config
    model.config = dataclasses.replace(original, lm=dataclasses.replace(original.lm, source=str(lm_dir.resolve())))
    try:
        return model.save_pretrained(directory)
    finally:
        model.config = original


def load_checkpoint(directory: Path, model, optimizer, train_lm: bool) -> dict[str, Any]:
    """Restore weights and optimiser state saved by ``save_checkpoint``; returns the trainer state."""
    from videollm.model import WEIGHTS_NAME

    model.load_trained(directory / WEIGHTS_NAME)
    if train_lm:
        lm_weights: dict[str, torch.Tensor] = {}
        for shard in sorted((directory / LM_DIR).glob("*.safetensors")):
            lm_weights.update(load_file(str(shard)))
        missing, _ = model.lm.load_state_dict(lm_weights, strict=False)
        # Tied embeddings are saved once; anything else missing means the checkpoint is not this LM's.
        if [k for k in missing if "lm_head" not in k]:
            raise ModelError(f"{directory / LM_DIR}: LM weights do not match the model")
    flat = load_file(str(directory / "optimizer.safetensors"))
    from safetensors import safe_open

    with safe_open(str(directory / "optimizer.safetensors"), framework="pt") as f:
        groups = json.loads((f.metadata() or {})["param_groups"])
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return json.loads((directory / "trainer_state.json").read_text(encoding="utf-8"))


def latest_checkpoint(output_dir: Path) -> Path | None:
    folder = output_dir / CHECKPOINTS
    found = sorted(p for p in folder.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp")) \
        if folder.is_dir() else []
    return found[-1] if found else None


# ------------------------------------------------------------------------------------------------ the run


def train(config: TrainConfig, resume: bool = True, progress: bool = True) -> TrainResult:
    """Run a training recipe.

    Args:
        config: the recipe.
        resume: continue from the latest checkpoint in ``output_dir`` when there is one.
        progress: show tqdm bars.

    Returns:
        A ``TrainResult``; the final model is in ``<output_dir>/final`` and the loss curve in
        ``<output_dir>/loss.png`` (+ ``train_log.json``).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm import tqdm

    from videollm.model import VideoLLM

    accelerator = Accelerator(cpu=config.cpu, mixed_precision=config.mixed_precision,
                              gradient_accumulation_steps=config.grad_accum)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    set_seed(config.seed)
    out = Path(config.output_dir)
    model_config = build_model_config(config)
    if config.memory_align_weight and not model_config.bridge.num_memory_readout_tokens(1):
        raise UsageError(f"memory_align_weight needs a readout with memory tokens; readout is "
                         f"{model_config.bridge.readout!r}")
    model = VideoLLM.from_pretrained(model_config, device=accelerator.device)
    if Path(config.model).is_dir():
        model.load_trained(Path(config.model) / "model.safetensors", new_lora=True)

    # Features: the main process encodes what is missing; the others then only read the cache.
    t0 = time.perf_counter()
    sources = []
    with accelerator.main_process_first():
        for src in config.data:
            if isinstance(src, WorldSourceConfig):
                cache = FeatureCache(config.features_dir, world_namespace(model_config))
                pool = WorldScenes(src, cache, model_config.segmentation.fps,
                                   model_config.bridge.max_frames_per_segment)
                pool.extract(model.encode_frames, config.extract_batch, progress and accelerator.is_main_process)
                sources.append(WorldExamples(src, pool.load()))
            else:
                assert isinstance(src, ConversationSourceConfig)
                sampling = f"uniform{src.num_frames}" if src.num_frames else f"fps{model_config.segmentation.fps}"
                cache = FeatureCache(config.features_dir, namespace(model_config, sampling))
                conv = ConversationExamples(src, cache, model_config.segmentation.fps, model.split)
                conv.extract(model.encode_frames, progress and accelerator.is_main_process)
                sources.append(conv)
    extract_seconds = time.perf_counter() - t0
    model.vision = None  # never needed again: every frame is cached

    epoch_size = sum(len(s) for s in sources)
    per_step = config.batch_size * config.grad_accum * accelerator.num_processes
    target = config.steps or math.ceil(total_examples(epoch_size, config.epochs) / per_step)
    dataset = MixedDataset(sources, config.seed, target * per_step)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=False,
                                         collate_fn=make_collate(model))
    if config.train_lm:
        for p in model.lm.parameters():
            p.requires_grad_(True)
    params = trainable_parameters(model, config.train_lm)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)

    step, losses, prior_seconds = 0, [], 0.0
    ckpt = latest_checkpoint(out) if resume else None
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, optimizer, config.train_lm)
        if state.get("recipe") != _recipe_fingerprint(config):
            raise ModelError(f"{ckpt}: checkpoint was made by a different recipe; use a fresh output_dir")
        step, losses, prior_seconds = int(state["step"]), list(state["losses"]), float(state["train_seconds"])
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    if step:
        loader = accelerator.skip_first_batches(loader, step * config.grad_accum)

    raw = accelerator.unwrap_model(model)
    vocab = None
    if config.align_weight or config.memory_align_weight or config.step_align_weight:
        from videollm.train.align import align_vocab, grounded_words, world_words

        needles = any(isinstance(src, WorldSourceConfig) and src.needles for src in config.data)
        words = grounded_words() if needles else world_words()
        vocab = align_vocab(raw.tokenizer, raw.lm.get_input_embeddings().weight.shape[0], words=words).to(raw.device)
    raw.train()
    raw.lm.train(config.train_lm)
    bar = tqdm(total=target, initial=step, unit="step", desc="train",
               disable=not (progress and accelerator.is_main_process))
    t_start = time.perf_counter()
    micro, running = step * config.grad_accum, []
    stopped_early = False
    for clips, batch, targets in loader:
        if step >= target:
            break
        # Reseed per micro-batch: dropout masks depend only on the position in the run (exact resume).
        torch.manual_seed(config.seed * 1_000_003 + micro)
        with accelerator.accumulate(model):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, target, config)
            loss = objective(model, clips, batch, targets, config, vocab)
            accelerator.backward(loss)
            if accelerator.sync_gradients and config.max_grad_norm:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        micro += 1
        running.append(loss.detach())
        if not accelerator.sync_gradients:
            continue
        step_loss = accelerator.gather(torch.stack(running).mean()[None]).mean().item()
        running = []
        losses.append(step_loss)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{lr_at(step - 1, target, config):.1e}")
        elapsed = prior_seconds + time.perf_counter() - t_start
        out_of_time = config.max_minutes is not None and elapsed >= 60.0 * config.max_minutes
        if step % config.save_every == 0 or step == target or out_of_time:
            _save_step(accelerator, raw, optimizer, config, out, step, losses, elapsed)
        if out_of_time and step < target:
            stopped_early = True
            break
    bar.close()
    train_seconds = time.perf_counter() - t_start
    final = out / FINAL
    if accelerator.is_main_process:
        save_model(raw, final, config.train_lm)
        log = {"steps": step, "target_steps": target, "examples_per_step": per_step, "losses": losses,
               "extract_seconds": extract_seconds, "train_seconds": prior_seconds + train_seconds,
               "stopped_early": stopped_early, "recipe": config.to_dict()}
        (out / "train_log.json").write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
        if losses:
            plot_losses(losses, out / "loss.png")
    accelerator.wait_for_everyone()
    return TrainResult(out, final, step, target, losses, extract_seconds, train_seconds, stopped_early)


def _recipe_fingerprint(config: TrainConfig) -> str:
    import hashlib

    data = config.to_dict()
    for volatile in ("max_minutes", "save_every", "keep_checkpoints", "num_threads", "cache_dir", "output_dir"):
        data.pop(volatile)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def _save_step(accelerator, model, optimizer, config: TrainConfig, out: Path, step: int, losses: list[float],
               elapsed: float) -> None:
    if accelerator.is_main_process:
        state = {"step": step, "losses": losses, "train_seconds": elapsed, "recipe": _recipe_fingerprint(config)}
        save_checkpoint(out / CHECKPOINTS / f"step_{step:06d}", model, optimizer, state, config.train_lm)
        old = sorted(p for p in (out / CHECKPOINTS).glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))
        for stale in old[: -config.keep_checkpoints]:
            shutil.rmtree(stale)
        plot_losses(losses, out / "loss.png")
    accelerator.wait_for_everyone()


def plot_losses(losses: list[float], path: Path, window: int = 10) -> Path:
    """Loss per step and its running mean, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    y = np.asarray(losses, dtype=np.float64)
    x = np.arange(1, len(y) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(x, y, lw=0.8, alpha=0.5, label="step loss")
    if len(y) >= window:
        smooth = np.convolve(y, np.ones(window) / window, mode="valid")
        ax.plot(x[window - 1:], smooth, lw=1.8, label=f"mean of {window}")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("cross-entropy (answer tokens)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
