"""The VideoLLaMB release's directory layout, read in place: ``--model DIR`` on a download of
``ColorfulAI/videollamb-llava-1.5-7b`` (docs/design.md §3, "The published checkpoint").

A release directory holds a LLaVA-style ``config.json`` (``model_type`` ``llava_llama``, ``mm_projector_type``
``rmt_r_transformer{N}x``), the tokenizer, and safetensors shards with four parts side by side:

==========================================  ====================================================================
release tensor                              here
==========================================  ====================================================================
``model.embed_tokens``, ``model.layers.*``,  the LM: transformers' ``LlamaForCausalLM``, same names
``model.norm``, ``lm_head``
``model.video_tower.video_tower.*``         the vision encoder: ``vision.languagebind.LanguageBindVideoModel``
``model.image_tower.image_tower.*``         LanguageBind's image tower (a plain CLIP ViT); checked, not loaded:
                                            a still image is a one-frame video here (see ``IMAGE_TOWER``)
``model.mm_projector.projector.*``,         bridge and projector (``bridge_names``)
``model.mm_projector.retrieval.*``
==========================================  ====================================================================

Three groups of bridge tensors exist in the release but take no part in its forward pass (``UNUSED``): the
``memory_tokens`` parameter (the initial memory is ``read_memory_emb``), the bridge layers' ``crossattention``
blocks (never given a second input), and the retriever's ``selfattention`` block. Any other name is refused, so
a renamed or foreign tensor never goes unnoticed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from videollm.errors import ModelError

CONFIG_FILE = "config.json"
INDEX_FILE = "model.safetensors.index.json"
PROJECTOR_TYPE = re.compile(r"rmt_r_transformer(\d+)x")

LM_PREFIXES = ("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head.")
VIDEO_TOWER = "model.video_tower.video_tower."
IMAGE_TOWER = "model.image_tower.image_tower."
BRIDGE = "model.mm_projector.projector."
RETRIEVAL = "model.mm_projector.retrieval.layers.0."

#: Release tensors its own forward pass never reads (``is_unused``).
UNUSED = (
    re.compile(re.escape(BRIDGE) + r"memory_tokens"),
    re.compile(re.escape(BRIDGE) + r"layers\.\d+\.crossattention\."),
    re.compile(re.escape(RETRIEVAL) + r"selfattention\."),
)

#: The conversation format the release's evaluation and demo use (``llava_v1``).
SYSTEM_PROMPT = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives "
                 "helpful, detailed, and polite answers to the human's questions.")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] + ' ' }}"
    "{% elif m['role'] == 'user' %}{{ 'USER: ' + m['content'] + ' ' }}"
    "{% else %}{{ 'ASSISTANT: ' + m['content'] + eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def is_videollamb_dir(directory: str | os.PathLike) -> bool:
    """True when ``directory`` is a VideoLLaMB release (its config names an ``rmt_r_transformer`` projector)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return False
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(PROJECTOR_TYPE.fullmatch(str(config.get("mm_projector_type", ""))))


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The release's ``config.json``, checked for the fields this reader relies on."""
    from videollm.configs import read_json

    config = read_json(Path(directory) / CONFIG_FILE, "VideoLLaMB config", ModelError)
    if not PROJECTOR_TYPE.fullmatch(str(config.get("mm_projector_type", ""))):
        raise ModelError(f"{directory}: mm_projector_type {config.get('mm_projector_type')!r} is not a VideoLLaMB "
                         "bridge (rmt_r_transformer<N>x)")
    for key in ("mm_hidden_size", "hidden_size"):
        if not isinstance(config.get(key), int):
            raise ModelError(f"{directory}/{CONFIG_FILE}: {key} is missing or not an integer")
    return config


def bridge_depth(config: Mapping[str, Any]) -> int:
    """Bridge layers: the N of ``rmt_r_transformer{N}x``."""
    return int(PROJECTOR_TYPE.fullmatch(str(config["mm_projector_type"])).group(1))


# ---------------------------------------------------------------------------------------------- names


def bridge_names(depth: int) -> dict[str, str]:
    """Release name -> this project's checkpoint name (``VideoLLM.trained_state_dict``) for every bridge and
    projector tensor the release's forward pass reads.

    The release's attention output projection is its ``residual.dense`` and the norm after it ``residual.layernorm``
    (post-LN); the feed-forward block is ``mlp.0`` (in), ``residual.dense`` (out), ``residual.layernorm``.
    """
    names = {BRIDGE + "read_memory_emb": "bridge.initial_memory"}
    attention = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "residual.dense": "out_proj",
                 "residual.layernorm": "norm"}
    for i in range(depth):
        src, dst = f"{BRIDGE}layers.{i}.", f"bridge.layers.{i}."
        pairs = {f"selfattention.{a}": f"attention.{b}" for a, b in attention.items()}
        pairs.update({"mlp.0": "ffn_in", "residual.dense": "ffn_out", "residual.layernorm": "norm"})
        for a, b in pairs.items():
            for suffix in ("weight", "bias"):
                names[f"{src}{a}.{suffix}"] = f"{dst}{b}.{suffix}"
    for a, b in attention.items():
        for suffix in ("weight", "bias"):
            names[f"{RETRIEVAL}crossattention.{a}.{suffix}"] = f"bridge.retriever.{b}.{suffix}"
    for suffix in ("weight", "bias"):
        names[f"{BRIDGE}proj.0.{suffix}"] = f"projector.0.{suffix}"
    return names


def is_unused(name: str) -> bool:
    """Whether a release tensor is one its forward pass never reads (``UNUSED``)."""
    return any(p.match(name) for p in UNUSED)


def part_of(name: str, depth: int) -> str:
    """Which part a release tensor belongs to: ``lm``, ``video_tower``, ``image_tower``, ``bridge`` or ``unused``.

    Raises:
        ModelError: the name is none of the release's (a renamed or foreign tensor).
    """
    if name.startswith(LM_PREFIXES):
        return "lm"
    if name.startswith(VIDEO_TOWER):
        return "video_tower"
    if name.startswith(IMAGE_TOWER):
        return "image_tower"
    if name in _bridge_names_cached(depth):
        return "bridge"
    if is_unused(name):
        return "unused"
    raise ModelError(f"unexpected tensor {name} (not part of a VideoLLaMB release)")


_BRIDGE_NAMES: dict[int, dict[str, str]] = {}


def _bridge_names_cached(depth: int) -> dict[str, str]:
    if depth not in _BRIDGE_NAMES:
        _BRIDGE_NAMES[depth] = bridge_names(depth)
    return _BRIDGE_NAMES[depth]


def to_release(trained: Mapping[str, Any], depth: int) -> dict[str, Any]:
    """This project's bridge + projector tensors under the release's names (the inverse of ``bridge_names``)."""
    inverse = {v: k for k, v in bridge_names(depth).items()}
    extra = sorted(set(trained) - set(inverse))
    if extra:
        raise ModelError(f"{extra[0]} has no place in the VideoLLaMB layout")
    return {inverse[k]: v for k, v in trained.items()}


# ---------------------------------------------------------------------------------------------- tensors


def weight_files(directory: str | os.PathLike) -> dict[str, Path]:
    """Every tensor name of the release -> the shard that holds it (from the shard index, or every shard)."""
    directory = Path(directory)
    index = directory / INDEX_FILE
    if index.is_file():
        from videollm.configs import read_json

        weight_map = read_json(index, "safetensors index", ModelError).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ModelError(f"{index}: no weight_map")
        files = {name: directory / shard for name, shard in weight_map.items()}
        absent = sorted({p for p in files.values() if not p.is_file()})
        if absent:
            raise ModelError(f"{absent[0]}: shard named in {INDEX_FILE} is missing (download incomplete?)")
        return files
    shards = sorted(directory.glob("*.safetensors"))
    if not shards:
        raise ModelError(f"{directory}: no *.safetensors weights (only safetensors checkpoints are loaded)")
    files = {}
    for shard in shards:
        for name in _keys(shard):
            files[name] = shard
    return files


def _keys(shard: Path) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(shard), framework="pt") as f:
            return list(f.keys())
    except Exception as err:  # OSError or safetensors' SafetensorError
        raise ModelError(f"{shard}: cannot read weights ({err.__class__.__name__})") from None


def load_tensors(files: Mapping[str, Path], names: Iterable[str], strip: str = "") -> dict[str, Any]:
    """The named tensors (read shard by shard, nothing else), keyed without the prefix ``strip``."""
    from safetensors import safe_open

    by_shard: dict[Path, list[str]] = {}
    for name in names:
        by_shard.setdefault(files[name], []).append(name)
    out = {}
    for shard, wanted in by_shard.items():
        try:
            with safe_open(str(shard), framework="pt") as f:
                for name in wanted:
                    out[name.removeprefix(strip)] = f.get_tensor(name)
        except Exception as err:  # OSError or SafetensorError
            raise ModelError(f"{shard}: cannot read weights ({err.__class__.__name__})") from None
    return out


def check_layout(directory: str | os.PathLike) -> dict[str, list[str]]:
    """Sort every tensor of a release into its part (``part_of``); the bridge must be complete.

    Returns:
        Part name -> the release's tensor names in it.
    """
    depth = bridge_depth(read_config(directory))
    parts: dict[str, list[str]] = {"lm": [], "video_tower": [], "image_tower": [], "bridge": [], "unused": []}
    for name in weight_files(directory):
        try:
            parts[part_of(name, depth)].append(name)
        except ModelError as err:
            raise ModelError(f"{directory}: {err}") from None
    missing = sorted(set(bridge_names(depth)) - set(parts["bridge"]))
    if missing:
        raise ModelError(f"{directory}: VideoLLaMB bridge tensor {missing[0]} is missing")
    for part in ("lm", "video_tower"):
        if not parts[part]:
            raise ModelError(f"{directory}: no {part.replace('_', ' ')} tensors in this VideoLLaMB release")
    return parts


def bridge_tensors(directory: str | os.PathLike) -> dict[str, Any]:
    """Bridge + projector weights of a release under this project's names (``VideoLLM.load_trained_tensors``)."""
    depth = bridge_depth(read_config(directory))
    names = bridge_names(depth)
    check_layout(directory)
    tensors = load_tensors(weight_files(directory), names)
    return {names[k]: v for k, v in tensors.items()}


# ---------------------------------------------------------------------------------------------- parts


def model_config(directory: str | os.PathLike):
    """The ``ModelConfig`` that runs a release: the ``videollamb-official`` preset with the release's sizes, its
    vision tower, LM and tokenizer all read from ``directory``."""
    from videollm.config import ModelConfig

    directory = Path(directory)
    config = read_config(directory)
    files = weight_files(directory)
    memory = files.get(BRIDGE + "read_memory_emb")
    if memory is None:
        raise ModelError(f"{directory}: VideoLLaMB bridge tensor {BRIDGE}read_memory_emb is missing")
    memory_tokens = int(load_tensors(files, [BRIDGE + "read_memory_emb"])[BRIDGE + "read_memory_emb"].shape[0])
    data = ModelConfig.preset("videollamb-official").to_dict()
    width = config["mm_hidden_size"]
    data["name"] = f"videollamb-official:{directory.name}"
    data["vision"].update(backend="videollamb", model=str(directory), pretrained=str(directory),
                          layer=int(config.get("mm_vision_select_layer", -2)))
    data["bridge"].update(vision_dim=width, width=width, layers=bridge_depth(config),
                          heads=int(config.get("mm_num_attention_heads", 8)),
                          ffn=int(config.get("mm_intermediate_size", 4096)),
                          ln_eps=float(config.get("mm_layer_norm_eps", 1e-12)), memory_tokens=memory_tokens,
                          retrieval_heads=int(config.get("mm_num_attention_heads", 8)))
    data["projector"].update(in_dim=width, out_dim=config["hidden_size"])
    data["lm"]["source"] = str(directory)
    num_frames = config.get("num_frames")
    if isinstance(num_frames, int) and num_frames > 0:
        data["segmentation"]["num_frames"] = num_frames
    return ModelConfig.from_dict(data)


def lm_config(directory: str | os.PathLike):
    """A ``LlamaConfig`` from the release's config (its Llama fields; the multimodal ones are dropped)."""
    from transformers import LlamaConfig

    config = read_config(directory)
    known = set(LlamaConfig().to_dict())
    fields = {k: v for k, v in config.items() if k in known and k not in ("model_type", "architectures",
                                                                          "transformers_version")}
    return LlamaConfig(**fields)


def load_lm(directory: str | os.PathLike, dtype, device="cpu"):
    """The release's language model and tokenizer: ``LlamaForCausalLM`` from the shards (the other parts' tensors are
    skipped) and the tokenizer in the directory with the ``llava_v1`` conversation template."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    directory = Path(directory)
    parts = check_layout(directory)
    config = lm_config(directory)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, config=config, local_files_only=True)
    except (OSError, ValueError, KeyError, ImportError) as err:
        raise ModelError(f"{directory}: cannot load the tokenizer ({_first_line(err)}; a release with only "
                         "tokenizer.model needs: pip install sentencepiece)") from None
    files = weight_files(directory)
    import torch

    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    names = set(model.state_dict())
    stored = set(parts["lm"])
    if names - stored or stored - names:
        odd = sorted((names - stored) or (stored - names))[0]
        raise ModelError(f"{directory}: LM tensor {odd} is {'missing' if odd in names else 'unexpected'}")
    state = load_tensors(files, sorted(stored))
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    _materialise_buffers(model, config)
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHAT_TEMPLATE
    return model.to(device).eval(), tokenizer


def _materialise_buffers(model, config) -> None:
    """Non-persistent buffers (the rotary frequencies) are still on the meta device after ``assign=True``."""
    for module in model.modules():
        if hasattr(module, "inv_freq") and module.inv_freq.is_meta:
            fresh = type(module)(config)  # built outside the meta-device context: real tensors
            module.inv_freq = fresh.inv_freq
            if hasattr(fresh, "original_inv_freq"):
                module.original_inv_freq = fresh.original_inv_freq
    meta = [n for n, b in [*model.named_buffers(), *model.named_parameters()] if b.is_meta]
    if meta:
        raise ModelError(f"LM tensor {meta[0]} could not be built")


def build_video_tower(directory: str | os.PathLike, layer: int, device, dtype):
    """The release's LanguageBind video tower as a ``VisionEncoder``."""
    from videollm.vision.languagebind import LanguageBindVideoEncoder, LanguageBindVideoModel, tower_config

    parts = check_layout(directory)
    tensors = load_tensors(weight_files(directory), parts["video_tower"], strip=VIDEO_TOWER)
    model = LanguageBindVideoModel(tower_config(tensors))
    model.load_checkpoint(tensors, str(directory), VIDEO_TOWER)
    return LanguageBindVideoEncoder(model, layer=layer, device=device, dtype=dtype)


def image_tower(directory: str | os.PathLike):
    """The release's LanguageBind image tower as transformers' ``CLIPVisionModel`` (strict: every tensor used).

    videollm reads a still image as a one-frame video through the video tower, so no command loads this; it shows
    that the image tower's tensors are a plain CLIP ViT's (tests) and serves callers who want the release's image
    path.
    """
    from transformers import CLIPVisionModel

    from videollm.vision.languagebind import tower_config

    parts = check_layout(directory)
    tensors = load_tensors(weight_files(directory), parts["image_tower"], strip=IMAGE_TOWER)
    model = CLIPVisionModel(tower_config(tensors))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ModelError(f"{directory}: image tower weights do not match a CLIP ViT ("
                         + (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}") + ")")
    return model.eval()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
