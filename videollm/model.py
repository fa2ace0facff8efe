"""The composed model: vision encoder → segmentation → memory bridge → projector → language model.

Data flow and shapes (docs/design.md §1)::

    frames (N, H, W, 3) uint8 ──vision──► cls (N, Dv), patches (N, gh, gw, Dv)
                              (or ──colour histogram──► cls (N, 256) when segmentation.feature is "histogram")
    patches ──pool──► tokens (N, P*P, Dv) ──segmentation(cls)──► segments [(L_k, P*P, Dv)]
    segments ──bridge──► readout (R, W) ──projector──► visual (R, H) ──placeholders──► LM

Two paths share the weights: ``forward`` (training, all segments of a batch of clips in parallel) and the
streaming path (``MemoryBridge.step`` one segment at a time with an explicit ``BridgeState``), used through
``videollm.memory``. Only the bridge and projector are trained; vision and LM are frozen and referenced by their
configs in ``config.json`` (never copied into the checkpoint).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from videollm.bridge import (
    BridgeState,
    MemoryBridge,
    pad_segments,
    pool_patches,
    segments_from_ends,
)
from videollm.assets import WEIGHTS_NAME
from videollm.config import CONFIG_NAME, ModelConfig, resolve_model
from videollm.errors import ModelError, UsageError
from videollm.projector import build_projector
from videollm.segmentation import segment_ends

ANSWER_MEMO = 8192  # greedy answers ``VideoLLM.answer_many`` remembers (a scene caption is ~100 bytes)


class VideoLLM(nn.Module):
    """Vision tower (frozen, optional), memory bridge, projector and LM (frozen) held together.

    Args:
        config: the composed model config.
        lm: a Hugging Face causal LM (from ``videollm.lm.load_lm``).
        tokenizer: its tokenizer (knows the placeholder token).
        vision: a ``videollm.vision.VisionEncoder``, or None when features come precomputed (training, saved memory).
    """

    def __init__(self, config: ModelConfig, lm, tokenizer, vision=None) -> None:
        super().__init__()
        from videollm.lm import Processor

        hidden = lm.config.hidden_size
        if config.projector.out_dim != hidden:
            raise ModelError(f"projector out_dim {config.projector.out_dim} != LM hidden size {hidden}")
        if vision is not None and vision.hidden_size != config.bridge.vision_dim:
            raise ModelError(f"vision width {vision.hidden_size} != bridge vision_dim {config.bridge.vision_dim}")
        self.config = config
        self.vision = vision
        self.lm = lm
        self.tokenizer = tokenizer
        self.processor = Processor.from_config(tokenizer, config.lm)
        param = next(lm.parameters())
        self.bridge = MemoryBridge(config.bridge, device=param.device)
        self.projector = build_projector(config.projector, device=param.device)
        for p in self.lm.parameters():
            p.requires_grad_(False)
        if config.lm.lora_rank:
            self._add_lora()

    def _add_lora(self) -> None:
        """Add trainable LoRA adapters (zero-initialised update) to the frozen LM, in place."""
        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError:
            raise ModelError("this model config has LoRA adapters (lm.lora_rank > 0): install peft "
                             "(a core dependency of videollm: pip install peft)") from None
        cfg = self.config.lm
        lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                          target_modules=list(cfg.lora_targets), bias="none")
        inject_adapter_in_model(lora, self.lm)
        if not self.lora_parameters():
            raise ModelError(f"LoRA targets {', '.join(cfg.lora_targets)} match no module of the LM")

    def lora_parameters(self) -> dict[str, nn.Parameter]:
        """The LM's LoRA adapter parameters by name (empty without adapters)."""
        return {k: p for k, p in self.lm.named_parameters() if ".lora_" in k}

    # ------------------------------------------------------------------ construction and checkpoints

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike | ModelConfig, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, load_vision: bool = True) -> VideoLLM:
        """Build a model from a checkpoint directory, a preset name or a config.

        A checkpoint directory holds ``config.json`` and ``model.safetensors`` (bridge + projector weights). A preset
        or a bare config gives freshly initialised bridge and projector.

        Args:
            source: ``"default"`` (the shipped checkpoint), checkpoint directory, preset name, or ``ModelConfig``
                (``videollm.config.resolve_model``).
            device: where every part goes (the library never picks a GPU by itself).
            dtype: dtype of the frozen vision encoder and LM (the bridge and projector stay float32).
            load_vision: False skips the vision tower (features precomputed or a saved memory is used).
        """
        from videollm.lm import load_lm
        from videollm.official import reader_for
        from videollm.vision import build_vision_encoder

        weights = release = None
        if not isinstance(source, ModelConfig):
            source = resolve_model(source)
        if isinstance(source, ModelConfig):
            config = source
        elif isinstance(source, Path):
            config = ModelConfig.load(source)  # a VideoLLaMB release directory gives the videollamb-official config
        else:
            config = ModelConfig.preset(source)
        if config.vision.backend == "videollamb" and config.vision.pretrained:
            release = Path(config.vision.pretrained)  # a VideoLLaMB release: its bridge weights are in its shards
        elif isinstance(source, Path) and reader_for(source) is not None:
            release = source  # a vision-language model read as a backbone: its own connector's extras, if any
        elif isinstance(source, Path):
            weights = source / WEIGHTS_NAME
            if not weights.is_file():
                raise ModelError(f"{source}: checkpoint has config.json but no {WEIGHTS_NAME}")
        lm, tokenizer = load_lm(config.lm, device=device, dtype=dtype)
        vision = build_vision_encoder(config.vision, device=device, dtype=dtype) if load_vision else None
        model = cls(config, lm, tokenizer, vision)
        if weights is not None:
            model.load_trained(weights)
        if release is not None:
            model.load_trained_tensors(reader_for(release).bridge_tensors(release), str(release))
        return model.eval()

    def trained_state_dict(self) -> dict[str, Tensor]:
        """Only what the project trains: bridge and projector parameters (the frozen parts are referenced)."""
        state = {f"bridge.{k}": v for k, v in self.bridge.state_dict().items()}
        state.update({f"projector.{k}": v for k, v in self.projector.state_dict().items()})
        state.update({f"lm.{k}": v for k, v in self.lora_parameters().items()})
        return state

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (trained parts only) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.trained_state_dict().items()}
        tmp = directory / (WEIGHTS_NAME + ".tmp")
        save_file(tensors, str(tmp), metadata={"format": "videollm", "config": CONFIG_NAME})
        os.replace(tmp, directory / WEIGHTS_NAME)
        return directory

    def load_trained(self, path: str | os.PathLike, new_lora: bool = False) -> None:
        """Load bridge + projector (+ LoRA) weights from a safetensors file (strict: every key must match).

        Args:
            path: a ``model.safetensors`` written by ``save_pretrained``.
            new_lora: accept a file with no LoRA weights at all into a model with adapters, which keep their
                fresh initialisation (a zero update): training adapters on top of a checkpoint trained without.
        """
        try:
            tensors = load_file(str(path))
        except Exception as err:  # OSError, or safetensors' own SafetensorError on bytes that are not safetensors
            raise ModelError(f"{path}: cannot read weights ({err.__class__.__name__})") from None
        self.load_trained_tensors(tensors, str(path), new_lora)

    def load_trained_tensors(self, tensors: Mapping[str, Tensor], path: str, new_lora: bool = False) -> None:
        """``load_trained`` on tensors already read (named as ``trained_state_dict`` names them); ``path`` names
        their origin in errors."""
        self.__dict__.pop("_answer_memo", None)  # answers of the old weights
        stray = sorted(k for k in tensors if not k.startswith(("bridge.", "projector.", "lm.")))
        not_float = sorted(k for k, v in tensors.items() if not v.is_floating_point())
        if stray or not_float:
            raise ModelError(f"{path}: weights do not match the config ("
                             + (f"unexpected {stray[0]}" if stray else f"{not_float[0]} is not floating point") + ")")
        for prefix, module in (("bridge.", self.bridge), ("projector.", self.projector)):
            part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            own = module.state_dict()
            wrong = sorted(k for k, v in part.items() if k in own and tuple(v.shape) != tuple(own[k].shape))
            if wrong:
                raise ModelError(f"{path}: {prefix}{wrong[0]} has shape {tuple(part[wrong[0]].shape)}, the config "
                                 f"makes {tuple(own[wrong[0]].shape)}")
            missing, unexpected = module.load_state_dict(part, strict=False)
            if missing or unexpected:
                raise ModelError(f"{path}: {prefix.rstrip('.')} weights do not match the config "
                                 f"(missing {len(missing)}, unexpected {len(unexpected)})")
        lora = self.lora_parameters()
        stored = {k[len("lm."):]: v for k, v in tensors.items() if k.startswith("lm.")}
        if new_lora and not stored:
            return
        if set(stored) != set(lora) or any(stored[k].shape != lora[k].shape for k in lora):
            raise ModelError(f"{path}: LoRA weights do not match the config (stored {len(stored)}, "
                             f"expected {len(lora)}; lm.lora_rank is {self.config.lm.lora_rank})")
        with torch.no_grad():
            for name, param in lora.items():
                param.copy_(stored[name].to(param.dtype))

    # ------------------------------------------------------------------ frames → segments

    @property
    def device(self) -> torch.device:
        return self.bridge.initial_memory.device  # the projector may have no parameters (identity)

    @torch.inference_mode()
    def encode_frames(self, frames) -> tuple[Tensor, Tensor]:
        """Encode decoded frames once.

        Args:
            frames: (N, H, W, 3) uint8 RGB.

        Returns:
            The per-frame features segmentation runs on, (N, Ds) float32: the penultimate-layer CLS (Ds = Dv), or
            with ``segmentation.feature == "histogram"`` the frames' colour histograms (Ds = 256); and the pooled
            patch tokens (N, P*P, Dv) float32 for the bridge.
        """
        if self.vision is None:
            raise ModelError("this model was loaded without a vision encoder (load_vision=False)")
        out = self.vision.encode(frames)
        histogram = self.config.segmentation.feature == "histogram"
        scene = self.scene_features(frames) if histogram else out.cls.float()
        return scene, pool_patches(out.patches.float(), self.config.bridge.pool)

    @torch.inference_mode()
    def scene_features(self, frames) -> Tensor:
        """The per-frame features segmentation runs on, without the patch tokens (``encode_frames``' first output).

        With ``segmentation.feature == "histogram"`` no vision forward runs: offline watching scans a whole video
        with this and encodes only the frames the bridge reads (``frame_tokens``).

        Args:
            frames: (N, H, W, 3) uint8 RGB.

        Returns:
            (N, Ds) float32.
        """
        if self.config.segmentation.feature == "histogram":
            import scenetiling

            return scenetiling.hsv_histograms(frames)
        return self.encode_frames(frames)[0]

    def encoder_input(self, frames) -> Tensor:
        """Frames resized and centre-cropped to the encoder's input, (N, 3, S, S) uint8: ``frame_tokens`` of these
        equals ``frame_tokens`` of the original frames, and a buffered frame costs 3 * S * S bytes whatever the
        video's size (streaming keeps the open scene's frames this way until it closes)."""
        from videollm.io import resize_center_crop

        if self.vision is None:
            raise ModelError("this model was loaded without a vision encoder (load_vision=False)")
        return resize_center_crop(frames, self.vision.image_size)

    @torch.inference_mode()
    def frame_tokens(self, frames) -> Tensor:
        """The pooled patch tokens (N, P*P, Dv) float32 the bridge reads (``encode_frames``' second output); frames
        are (N, H, W, 3) uint8 RGB, or ``encoder_input``'s (N, 3, S, S)."""
        if self.vision is None:
            raise ModelError("this model was loaded without a vision encoder (load_vision=False)")
        return pool_patches(self.vision.encode(frames).patches.float(), self.config.bridge.pool)

    def split(self, cls: Tensor, tokens: Tensor) -> tuple[list[int], list[Tensor]]:
        """Segment one clip: end indices and per-segment tokens (each subsampled to at most F frames).

        Args:
            cls: (N, Ds) per-frame segmentation features (``encode_frames``' first output).
            tokens: (N, P*P, Dv) pooled patch tokens.
        """
        ends = segment_ends(cls, self.config.segmentation)
        return ends, segments_from_ends(tokens, ends, self.config.bridge.max_frames_per_segment)

    # ------------------------------------------------------------------ visual tokens

    def visual_tokens(self, clips: Sequence[Sequence[Tensor]], memory_only: Tensor | None = None
                      ) -> tuple[Tensor, Tensor]:
        """Parallel path: the projected readout of each clip.

        Args:
            clips: B clips, each a list of segments (L_k, P*P, Dv).
            memory_only: (B,) bool, clips whose readout is their final memory alone (``MemoryBridge.forward``).

        Returns:
            visual (B, R, H) and mask (B, R) (True where a clip has a readout token; readouts are left-aligned).
        """
        visual, mask, _ = self._visual_and_bridge(clips, memory_only)
        return visual, mask

    def _visual_and_bridge(self, clips: Sequence[Sequence[Tensor]], memory_only: Tensor | None):
        tokens, frame_mask = pad_segments(clips, self.config.bridge.max_frames_per_segment)
        out = self.bridge(tokens.to(self.device), frame_mask.to(self.device), memory_only)
        visual = self.projector(out.readout)
        mask = out.readout_mask
        if visual.shape[1] > mask.shape[1]:  # the projector appended tokens (``end_token``): real in every clip
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], visual.shape[1] - mask.shape[1])], dim=1)
        return visual, mask, out

    def project_state(self, state: BridgeState, at: int | None = None) -> Tensor:
        """Streaming path: the projected readout of a bridge state, (R, H); with ``at``, the readout as it was right
        after segment ``at`` (see ``MemoryBridge.readout``)."""
        with torch.no_grad():
            return self.projector(self.bridge.readout(state, at=at).to(self.device))

    def word_scorer(self):
        """The ``videollm.recall.WordScorer`` of this model's LM (built once)."""
        if getattr(self, "_word_scorer", None) is None:
            from videollm.recall import WordScorer

            self._word_scorer = WordScorer.for_model(self)
        return self._word_scorer

    def forward(self, clips: Sequence[Sequence[Tensor]], batch: Mapping[str, Tensor] | None,
                return_visual: bool = False, return_memories: bool = False
                ) -> Tensor | tuple[Tensor | None, Tensor, Tensor] | tuple[Tensor | None, Tensor, Tensor, Tensor]:
        """Training loss of a batch.

        Args:
            clips: B clips of segments (see ``visual_tokens``).
            batch: ``input_ids``, ``attention_mask``, ``labels`` (B, T) from ``Processor.build_training_example`` +
                ``collate``; each example holds exactly as many placeholders as its clip's readout has tokens.
                An optional ``memory_only`` (B,) bool marks clips read out as their final memory alone. None skips
                the LM (only with ``return_visual``: an alignment-only step).
            return_visual: also return the projected visual tokens (B, R, H) and their mask (B, R), for auxiliary
                losses on them.
            return_memories: with ``return_visual``, also return the memory carried after every segment, projected
                (B, S, M, H) (segments past a clip's end repeat its last memory), for the per-step memory loss.

        Returns:
            Mean next-token cross-entropy over answer tokens (scalar), or ``(loss or None, visual, mask)``, or
            ``(loss or None, visual, mask, memories)``.
        """
        from videollm.lm import lm_loss, scatter_visual

        visual, mask, out = self._visual_and_bridge(clips, None if batch is None else batch.get("memory_only"))
        loss = None
        if batch is not None:
            input_ids = batch["input_ids"].to(self.device)
            embeds = self.lm.get_input_embeddings()(input_ids)  # (B, T, H)
            embeds = scatter_visual(embeds, input_ids, visual[mask], self.processor.placeholder_id)
            loss = lm_loss(self.lm, embeds, batch["attention_mask"].to(self.device),
                           batch["labels"].to(self.device))
        elif not return_visual:
            raise UsageError("forward needs a batch unless return_visual=True")
        if return_memories:
            m = out.memories.shape[-2]
            return loss, visual, mask, self.projector(out.memories)[..., :m, :]  # (an end token is not memory)
        return (loss, visual, mask) if return_visual else loss

    def num_visual_tokens(self, segment_lengths: Sequence[int], memory_only: bool = False) -> int:
        """How many placeholders a clip with these segment lengths (frames) needs (``memory_only``: read out as its
        final memory alone)."""
        extra = int(self.config.projector.end_token)
        if memory_only:
            return self.config.bridge.memory_tokens + extra
        return self.bridge.num_readout_tokens(len(segment_lengths), list(segment_lengths)) + extra

    def project_memory(self, state: BridgeState) -> Tensor:
        """The projected final carried memory of a streaming state, (M, H): what the memory reader of questions
        that span scenes shows the LM (``ModelConfig.cross_reader`` "memory")."""
        with torch.no_grad():
            return self.projector(state.memory.to(self.device))

    # ------------------------------------------------------------------ language

    def chat(self, visual: Tensor | None, history: Sequence[Mapping[str, str]], question: str,
             max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
             stop: Sequence[str] = (), seed: int | None = None) -> Iterator[str]:
        """Answer ``question`` about ``visual`` (R, H) tokens given the dialog ``history``; yields text pieces."""
        from videollm.lm import chat

        if max_new_tokens < 1:
            raise UsageError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        return chat(self.lm, self.processor, history, question, visual=visual, max_new_tokens=max_new_tokens,
                    temperature=temperature, top_p=top_p, stop=stop, seed=seed)

    @torch.no_grad()
    def answer_many(self, visuals: Sequence[Tensor], question: str, max_new_tokens: int = 64,
                    batch_size: int = 32) -> list[str]:
        """Greedy answers to one question about each of several readouts (R_i, H), batched: what ``chat`` with
        greedy decoding gives each alone, several times faster (captioning every scene of a saved memory).

        Greedy answers are a function of (readout, question, bound), so the latest ``ANSWER_MEMO`` are remembered:
        a readout seen again (the same video watched again, the scenes before a needle spliced into a haystack)
        is not decoded twice.
        """
        import hashlib

        if max_new_tokens < 1:
            raise UsageError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        keys = [(question, max_new_tokens, hashlib.blake2b(v.detach().float().cpu().contiguous().numpy().tobytes(),
                                                           digest_size=16).digest()) for v in visuals]
        memo = self.__dict__.setdefault("_answer_memo", OrderedDict())
        lock = self.__dict__.setdefault("_answer_lock", threading.Lock())  # the app answers several visitors
        with lock:
            answers = {i: memo[key] for i, key in enumerate(keys) if key in memo}
            for key in keys:
                if key in memo:
                    memo.move_to_end(key)
        todo = [i for i in range(len(keys)) if i not in answers]
        for lo in range(0, len(todo), batch_size):
            chunk = todo[lo:lo + batch_size]
            answers.update(zip(chunk, self._answer_batch([visuals[i] for i in chunk], question, max_new_tokens),
                               strict=True))
        with lock:
            memo.update((keys[i], answers[i]) for i in todo)
            while len(memo) > ANSWER_MEMO:
                memo.popitem(last=False)
        return [answers[i] for i in range(len(keys))]

    def _answer_batch(self, visuals: Sequence[Tensor], question: str, max_new_tokens: int) -> list[str]:
        from videollm.lm import embed_with_visual
        from videollm.lm.generation import generate_greedy_batch

        content = f"{self.processor.markers[0]}\n{question}"
        embeds = []
        for visual in visuals:
            visual = visual.reshape(-1, visual.shape[-1]).to(self.device)
            ids = self.processor.encode_prompt([{"role": "user", "content": content}], visual.shape[0])
            embeds.append(embed_with_visual(self.lm, ids["input_ids"][None].to(self.device), visual,
                                            self.processor.placeholder_id)[0])
        longest = max(e.shape[0] for e in embeds)
        batch = torch.stack([F.pad(e, (0, 0, longest - e.shape[0], 0)) for e in embeds])  # left padding
        mask = torch.stack([torch.arange(longest, device=self.device) >= longest - e.shape[0] for e in embeds])
        return generate_greedy_batch(self.lm, self.tokenizer, batch, mask.long(), max_new_tokens,
                                     suppress_token_ids=(self.processor.placeholder_id,))

    @torch.no_grad()
    def score(self, visual: Tensor | None, question: str, candidates: Sequence[str],
              history: Sequence[Mapping[str, str]] = (), reduction: str = "mean",
              with_greedy: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Log-likelihood of each candidate answer to ``question`` about ``visual`` after the dialog ``history``
        (multiple choice, answer ranking): the mean over its tokens (default) or their ``"sum"``; with
        ``with_greedy`` also whether greedy decoding would give each candidate. The visual marker goes in front of
        the first user message, as in ``chat``."""
        from videollm.lm import embed_with_visual, score_candidates

        messages = [dict(m) for m in history] + [{"role": "user", "content": question}]
        if visual is not None:
            first_user = next(m for m in messages if m["role"] == "user")
            first_user["content"] = f"{self.processor.markers[0]}\n{first_user['content']}"
        enc = self.processor.encode_prompt(messages, 0 if visual is None else visual.shape[0])
        ids = enc["input_ids"].unsqueeze(0).to(self.device)
        embeds = embed_with_visual(self.lm, ids, visual, self.processor.placeholder_id)
        return score_candidates(self.lm, self.tokenizer, embeds, list(candidates), reduction=reduction,
                                with_greedy=with_greedy)
