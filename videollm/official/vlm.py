"""Small open video language models as backbones, read in place: ``--model DIR`` on a transformers
vision-language model directory (SmolVLM2, LLaVA-OneVision, InternVL).

Such a model sees 8-64 frames of a video at once. Here it sees one scene at a time: SceneTiling cuts the video (on
colour histograms, so the backbone never runs on frames nobody reads), each scene's frames (at most
``MAX_FRAMES`` of them, the published linspace rule) go through the backbone's own vision tower and connector
once, and those tokens, in the LM's input space, are the scene's entry in the memory. Captions are the backbone
reading one scene's tokens (training-free); ``ask``/``chat``/``search`` recall the scene a question is about and
let the backbone read that scene's stored tokens, so no frame is encoded twice.

How a backbone maps onto the model's stages (``model_config``):

=================  ==============================================================================================
stage              with a backbone
=================  ==============================================================================================
vision             ``VLMVisionEncoder``: vision tower + connector, one frame at a time; tokens on their grid
bridge             ``layers`` 0: no bridge layer, a scene's tokens pass unchanged (``readout`` "last_segment").
                   A bridge trained for the backbone is a config change (``layers`` >= 1 + its weights)
projector          ``identity``: the connector already speaks the LM's input space (LLaVA-OneVision: plus its
                   end-of-video vector, ``end_token``)
LM                 the backbone's text model and LM head (shared with the loaded model, not copied), with a
                   chat template written here in the family's conversation format
=================  ==============================================================================================

Where it differs from the family's own video path: frames are resized on the shorter side and centre-cropped to
the tower's square input (the families resize the whole frame); SmolVLM2's per-frame timestamps ("Frame from
00:01:") are not written.

The whole model is loaded once (``load_vlm``, kept for the LM and the vision encoder to share); weights are
safetensors only, nothing is fetched, no remote code runs.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videollm.errors import ModelError

CONFIG_FILE = "config.json"
#: Frames of a scene the backbone reads (the bridge's ``max_frames_per_segment``).
MAX_FRAMES = 8


@dataclass(frozen=True)
class Family:
    """What differs between the supported backbone families.

    Attributes:
        label: the family's name in messages and the model's name.
        model_class: the transformers class that loads it.
        chat_template: the family's conversation format, over string message contents.
        frame_open, frame_close: text around each frame's tokens in a prompt (SmolVLM2 marks every image);
            ``{n}`` in ``frame_open`` is the frame's number from 1.
        frame_separator: text between two frames.
        end_token: a learned vector follows a video's frames (LLaVA-OneVision's ``image_newline``).
    """

    label: str
    model_class: str
    chat_template: str
    frame_open: str = ""
    frame_close: str = ""
    frame_separator: str = ""
    end_token: bool = False


FAMILIES: dict[str, Family] = {
    "smolvlm": Family(
        label="SmolVLM2",
        model_class="SmolVLMForConditionalGeneration",
        chat_template=(
            "<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}<end_of_utterance>\n"
            "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"),
        frame_open="<fake_token_around_image><global-img>",
        frame_close="<fake_token_around_image>",
    ),
    "llava_onevision": Family(
        label="LLaVA-OneVision",
        model_class="LlavaOnevisionForConditionalGeneration",
        chat_template=(
            "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}"
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
            "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
        end_token=True,
    ),
    "internvl": Family(
        label="InternVL",
        model_class="InternVLForConditionalGeneration",
        chat_template=(
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
        frame_open="Frame{n}: <img>",
        frame_close="</img>",
        frame_separator="\n",
    ),
}


def read_config(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The directory's ``config.json`` when it names a supported family, else None."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and config.get("model_type") in FAMILIES else None


def is_vlm_dir(directory: str | os.PathLike) -> bool:
    """True when ``directory`` holds a supported transformers vision-language model (its ``model_type``)."""
    return read_config(directory) is not None


def family_of(directory: str | os.PathLike) -> Family:
    config = read_config(directory)
    if config is None:
        raise ModelError(f"{directory}: not a supported vision-language model directory (model_type one of "
                         f"{', '.join(FAMILIES)})")
    return FAMILIES[config["model_type"]]


def square(value) -> int:
    """A size the config may write as one number or as (height, width) of a square."""
    return int(value[0]) if isinstance(value, (list, tuple)) else int(value)


def token_grid(config) -> int:
    """Tokens per side of one frame after the connector (the family's own video path)."""
    vision = config.vision_config
    side = square(vision.image_size) // square(vision.patch_size)
    if config.model_type == "smolvlm":
        return side // config.scale_factor  # pixel shuffle
    if config.model_type == "internvl":
        return int(side * config.downsample_ratio)  # pixel shuffle at 0.5
    return math.ceil(side / 2)  # LLaVA-OneVision pools video frames 2x (bilinear)


def _image_stats(directory: Path) -> tuple[list[float], list[float]]:
    """The image processor's normalisation (mean, std); the families' SigLIP default when none is written."""
    for name in ("preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json"):
        path = directory / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        data = data.get("image_processor", data) if isinstance(data, dict) else {}
        mean, std = data.get("image_mean"), data.get("image_std")
        if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3:
            return [float(m) for m in mean], [float(s) for s in std]
    return [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


def model_config(directory: str | os.PathLike):
    """The ``ModelConfig`` that runs a backbone directory (see the module docstring for each stage)."""
    from transformers import AutoConfig

    from videollm.config import ModelConfig

    directory = Path(directory)
    family = family_of(directory)
    try:
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"{directory}: cannot read the {family.label} config ({_first_line(err)})") from None
    hidden = int(config.text_config.hidden_size)
    grid = token_grid(config)
    data = ModelConfig.preset("embedded").to_dict()  # its segmentation: SceneTiling on colour histograms at 2 fps
    data.update(name=f"{family.label}:{directory.name}", recall_words=[])
    data["vision"] = {"backend": "vlm", "model": str(directory), "pretrained": str(directory),
                      "image_size": square(config.vision_config.image_size), "layer": -1}
    data["bridge"] = {"vision_dim": hidden, "width": hidden, "layers": 0, "heads": 1, "ffn": 1, "dropout": 0.0,
                      "memory_tokens": 1, "pool": grid, "max_frames_per_segment": MAX_FRAMES, "retrieval": False,
                      "retrieval_heads": 1, "readout": "last_segment", "use_memory": True,
                      "position_embedding": "none", "memory_init": "zeros", "temporal_diff": False}
    data["projector"] = {"in_dim": hidden, "out_dim": hidden, "kind": "identity", "end_token": family.end_token}
    data["lm"] = {"source": str(directory), "dtype": "float32", "frame_tokens": grid * grid,
                  "frame_open": family.frame_open, "frame_close": family.frame_close,
                  "frame_separator": family.frame_separator}
    return ModelConfig.from_dict(data)


_LOADED: dict[tuple[str, str], Any] = {}


def load_vlm(directory: str | os.PathLike, dtype):
    """The whole model, loaded once per (directory, dtype) and shared by ``load_lm`` and ``build_vision``."""
    import transformers

    directory = Path(directory).resolve()
    key = (str(directory), str(dtype))
    if key not in _LOADED:
        family = family_of(directory)
        cls = getattr(transformers, family.model_class)
        try:
            model = cls.from_pretrained(directory, dtype=dtype, local_files_only=True, use_safetensors=True)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ModelError(f"{directory}: cannot load the {family.label} model ({_first_line(err)})") from None
        _LOADED.clear()  # one backbone at a time: a second directory replaces the first
        _LOADED[key] = model.eval().requires_grad_(False)
    return _LOADED[key]


def language_model(vlm):
    """The backbone's text model inside the loaded model."""
    inner = vlm.model
    return inner.text_model if hasattr(inner, "text_model") else inner.language_model


def load_lm(directory: str | os.PathLike, dtype, device="cpu"):
    """The backbone's LM as a plain causal LM (its text model and LM head, shared, not copied) and its tokenizer
    with the family's conversation format as the chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = Path(directory)
    family = family_of(directory)
    vlm = load_vlm(directory, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError, KeyError, ImportError) as err:
        raise ModelError(f"{directory}: cannot load the {family.label} tokenizer ({_first_line(err)})") from None
    tokenizer.chat_template = family.chat_template
    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(vlm.config.text_config)
    lm.model = language_model(vlm)
    lm.lm_head = vlm.lm_head
    lm.generation_config = vlm.generation_config
    # The placeholder row is added here, while the loaded model still shares its LM head: an untied head is
    # replaced when the vocabulary grows, and the loaded model must not keep the old one alive.
    from videollm.lm.config import LMConfig
    from videollm.lm.loading import ensure_placeholder_token

    ensure_placeholder_token(lm, tokenizer, LMConfig.placeholder_token)
    vlm.lm_head = lm.lm_head
    meta = [n for n, t in [*lm.named_parameters(), *lm.named_buffers()] if t.is_meta]
    if meta:
        raise ModelError(f"{directory}: LM tensor {meta[0]} has no place in the {family.label} model")
    return lm.to(device).eval(), tokenizer


def bridge_tensors(directory: str | os.PathLike) -> dict[str, Any]:
    """What takes the bridge and projector's place, named as ``VideoLLM.trained_state_dict`` names them: the
    bridge's (unused) one-token initial memory, zero, and LLaVA-OneVision's end-of-video vector."""
    import torch

    directory = Path(directory).resolve()
    loaded = [m for (d, _), m in _LOADED.items() if d == str(directory)]
    vlm = loaded[0] if loaded else load_vlm(directory, torch.float32)
    tensors = {"bridge.initial_memory": torch.zeros(1, vlm.config.text_config.hidden_size)}
    if family_of(directory).end_token:
        tensors["projector.0.end"] = vlm.model.image_newline.detach()
    return tensors


def build_vision(directory: str | os.PathLike, device, dtype):
    """The backbone's vision tower + connector as a ``VisionEncoder``."""
    from videollm.vision.vlm import VLMVisionEncoder

    directory = Path(directory)
    mean, std = _image_stats(directory)
    return VLMVisionEncoder(load_vlm(directory, dtype), mean=mean, std=std, device=device, dtype=dtype)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
