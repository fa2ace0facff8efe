"""Tiny random-weight stand-ins for three published vision-language checkpoints, for tests and benchmarks offline.

``build_tiny_smolvlm`` mirrors ``HuggingFaceTB/SmolVLM2-256M-Video-Instruct``, ``build_tiny_llava_onevision``
mirrors ``llava-hf/llava-onevision-qwen2-0.5b-ov-hf`` and ``build_tiny_internvl`` mirrors
``OpenGVLab/InternVL3-1B-hf``: the same transformers model, processor, image processor and video processor
classes, the same structure choices (SigLIP-style or InternViT vision tower, pixel shuffle or 2x2 video pooling,
Llama or Qwen2 text model, anyres grid, special tokens, chat format), shrunk to under a megabyte of random
weights that build in well under a second on CPU. Each builder writes a directory the way ``save_pretrained``
writes a real checkpoint, so code written for the real ones loads it unchanged with ``local_files_only=True``.

Sizes: SmolVLM frames are 64 px, patch 8, pixel shuffle 2, so 16 image tokens a frame; LLaVA-OneVision frames are
56 px, patch 8 (7x7 grid), pooled to 4x4, so 16 tokens a frame plus one newline after the video; InternVL frames
are 64 px, patch 8, pixel shuffle 0.5, so 16 tokens a frame. The text models have hidden size 64, and the tokenizers are a ~500-token byte-level BPE trained on ``CORPUS``. Weights are
float32 (the real ones are bfloat16 / float16).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    GotOcr2ImageProcessor,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLProcessor,
    InternVLVideoProcessor,
    LlamaConfig,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessor,
    LlavaOnevisionProcessor,
    LlavaOnevisionVideoProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2Config,
    SiglipVisionConfig,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
    SmolVLMImageProcessor,
    SmolVLMProcessor,
    SmolVLMVideoProcessor,
)
from transformers.models.internvl.configuration_internvl import InternVLVisionConfig
from transformers.models.smolvlm.configuration_smolvlm import SmolVLMVisionConfig

#: Training text for the tokenizers: the words video questions and answers are made of.
CORPUS = (
    "a the an this that these those it is are was were be been has have had do does did not and or but of in on "
    "at to from with by for as into over under up down left right top bottom front back near far here there",
    "what who where when why how which many much one two three four five six seven eight nine ten first last "
    "next before after then now again begin end start stop",
    "video scene shot clip frame frames image picture camera view screen moment second seconds minute minutes",
    "person people man woman child dog cat car ball table chair door window room street road tree sky water",
    "red blue green yellow black white orange purple gray brown bright dark small large big little round square",
    "circle square triangle line box shape color colour moves moving move turns walks runs jumps falls sits "
    "stands holds opens closes enters leaves appears disappears shows showing shown",
    "what is said in the video? describe the scene. summarize the video. what happens next? what color is the "
    "circle? the red circle moves to the left. a blue square appears on the right. the person walks away.",
    "question answer caption summary description describe summarize explain tell me say said says speak "
    "speaks talking sound audio music text title yes no maybe",
    "User: Assistant: System: user assistant system you are a helpful assistant. Frame from 00:01: "
    "You are provided the following series of frames from a video.",
)
BPE_VOCAB_SIZE = 480

#: Special tokens in the real vocabularies' id order; the named ones are also set as bos/eos/pad/unk.
SMOLVLM_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<global-img>",
                          *(f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)),
                          "<fake_token_around_image>", "<image>", "<end_of_utterance>"]
SMOLVLM_NAMED_TOKENS = {"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>",
                        "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"}
#: SmolVLM's conversation: one ``<|im_start|>``, then ``Role: text<end_of_utterance>\n`` per message.
SMOLVLM_CHAT_TEMPLATE = (
    "{{- '<|im_start|>' -}}"
    "{%- for message in messages -%}"
    "{{- message['role'] | capitalize + ':' -}}"
    "{%- if message['content'] is string -%}{{- ' ' + message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- ' ' + part['text'] -}}"
    "{%- elif part['type'] == 'image' -%}{{- '<image>' -}}"
    "{%- elif part['type'] == 'video' -%}{{- '<video>' -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<end_of_utterance>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)

LLAVA_OV_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
LLAVA_OV_NAMED_TOKENS = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
#: Qwen2's ChatML: ``<|im_start|>role\ncontent<|im_end|>\n``; media tokens stand on their own line.
LLAVA_OV_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- elif part['type'] == 'image' -%}{{- '<image>\\n' -}}"
    "{%- elif part['type'] == 'video' -%}{{- '<video>\\n' -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

INTERNVL_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>",
                           "<video>"]
INTERNVL_NAMED_TOKENS = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
#: What InternVLProcessor reads from the tokenizer by name.
INTERNVL_MEDIA_TOKENS = {"start_image_token": "<img>", "end_image_token": "</img>",
                         "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}
#: ChatML, as LLaVA-OneVision's; a video stands where its ``<video>`` token is.
INTERNVL_CHAT_TEMPLATE = LLAVA_OV_CHAT_TEMPLATE.replace("'<video>\\n'", "'<video>'")

SIGLIP_MEAN_STD = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}

SMOLVLM_IMAGE_SIZE, SMOLVLM_PATCH, SMOLVLM_SCALE = 64, 8, 2
SMOLVLM_IMAGE_TOKENS = (SMOLVLM_IMAGE_SIZE // SMOLVLM_PATCH) ** 2 // SMOLVLM_SCALE**2

INTERNVL_IMAGE_SIZE, INTERNVL_PATCH, INTERNVL_DOWNSAMPLE = 64, 8, 0.5
INTERNVL_IMAGE_TOKENS = int((INTERNVL_IMAGE_SIZE // INTERNVL_PATCH) ** 2 * INTERNVL_DOWNSAMPLE**2)
#: InternVL normalises with ImageNet's statistics.
IMAGENET_MEAN_STD = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}

LLAVA_OV_IMAGE_SIZE, LLAVA_OV_PATCH = 56, 8
LLAVA_OV_IMAGE_TOKENS = (LLAVA_OV_IMAGE_SIZE // LLAVA_OV_PATCH) ** 2
#: The real anyres grid is every (h, w) in {1..6} x {1..6} tiles of the 384 px base size.
LLAVA_OV_PINPOINTS = [[LLAVA_OV_IMAGE_SIZE * rows, LLAVA_OV_IMAGE_SIZE * cols]
                      for rows in range(1, 7) for cols in range(1, 7)]


def _tokenizer(specials: list[str], named: dict[str, str], chat_template: str,
               media: dict[str, str] | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``CORPUS``, with the family's special tokens appended after the learnt vocab
    (``media``: special tokens the family's processor reads from the tokenizer by name)."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB_SIZE, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(CORPUS, trainer=trainer)
    bpe.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    extra_special: list[str] | dict[str, str] = [token for token in specials if token not in named.values()]
    if media:
        extra_special = media
    return PreTrainedTokenizerFast(tokenizer_object=bpe, chat_template=chat_template,
                                   extra_special_tokens=extra_special, **named)


def _text_ids(tokenizer: PreTrainedTokenizerFast, bos_token: str) -> dict[str, int]:
    return {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.convert_tokens_to_ids(bos_token),
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}


def _generation_config(text_config: Any) -> GenerationConfig:
    return GenerationConfig(bos_token_id=text_config.bos_token_id, eos_token_id=text_config.eos_token_id,
                            pad_token_id=text_config.pad_token_id)


def _smolvlm_config(tokenizer: PreTrainedTokenizerFast) -> SmolVLMConfig:
    text_ids = _text_ids(tokenizer, SMOLVLM_NAMED_TOKENS["bos_token"])
    vision = SmolVLMVisionConfig(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                 image_size=SMOLVLM_IMAGE_SIZE, patch_size=SMOLVLM_PATCH)
    text = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=8192, rms_norm_eps=1e-5,
                       rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
                       tie_word_embeddings=False, **text_ids)
    return SmolVLMConfig(vision_config=vision, text_config=text, scale_factor=SMOLVLM_SCALE,
                         image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                         pad_token_id=text_ids["pad_token_id"], tie_word_embeddings=False)


def _smolvlm_processor(tokenizer: PreTrainedTokenizerFast) -> SmolVLMProcessor:
    frame_size = {"longest_edge": SMOLVLM_IMAGE_SIZE}
    image_processor = SmolVLMImageProcessor(size=frame_size, max_image_size=frame_size, do_image_splitting=True,
                                            **SIGLIP_MEAN_STD)
    video_processor = SmolVLMVideoProcessor(
        size=frame_size, max_image_size=frame_size,
        video_sampling={"fps": 1, "max_frames": 64, "video_size": frame_size}, **SIGLIP_MEAN_STD)
    # SmolVLMProcessor needs num2words (the bench extra) to be built.
    return SmolVLMProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                            image_seq_len=SMOLVLM_IMAGE_TOKENS, chat_template=SMOLVLM_CHAT_TEMPLATE)


def _llava_onevision_config(tokenizer: PreTrainedTokenizerFast) -> LlavaOnevisionConfig:
    text_ids = _text_ids(tokenizer, "<|endoftext|>")
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                image_size=LLAVA_OV_IMAGE_SIZE, patch_size=LLAVA_OV_PATCH, vision_use_head=False)
    # Qwen2-0.5B, the real text model, ties its input and output embeddings.
    text = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
                       rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                       tie_word_embeddings=True, **text_ids)
    return LlavaOnevisionConfig(vision_config=vision, text_config=text,
                                image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                                video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
                                vision_feature_layer=-1, vision_feature_select_strategy="full",
                                image_grid_pinpoints=LLAVA_OV_PINPOINTS, vision_aspect_ratio="anyres_max_9",
                                tie_word_embeddings=True)


def _llava_onevision_processor(tokenizer: PreTrainedTokenizerFast) -> LlavaOnevisionProcessor:
    frame_size = {"height": LLAVA_OV_IMAGE_SIZE, "width": LLAVA_OV_IMAGE_SIZE}
    image_processor = LlavaOnevisionImageProcessor(size=frame_size, image_grid_pinpoints=LLAVA_OV_PINPOINTS,
                                                   do_pad=True, **SIGLIP_MEAN_STD)
    video_processor = LlavaOnevisionVideoProcessor(size=frame_size, **SIGLIP_MEAN_STD)
    return LlavaOnevisionProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                   video_processor=video_processor, num_image_tokens=LLAVA_OV_IMAGE_TOKENS,
                                   vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
                                   chat_template=LLAVA_OV_CHAT_TEMPLATE)


def _internvl_config(tokenizer: PreTrainedTokenizerFast) -> InternVLConfig:
    text_ids = _text_ids(tokenizer, "<|endoftext|>")
    vision = InternVLVisionConfig(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=[INTERNVL_IMAGE_SIZE] * 2, patch_size=[INTERNVL_PATCH] * 2,
                                  use_mean_pooling=False)
    # InternVL3-1B's text model is Qwen2.5-0.5B, which ties its input and output embeddings.
    text = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
                       rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                       tie_word_embeddings=True, **text_ids)
    return InternVLConfig(vision_config=vision, text_config=text,
                          image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
                          image_seq_length=INTERNVL_IMAGE_TOKENS, downsample_ratio=INTERNVL_DOWNSAMPLE,
                          vision_feature_layer=-1, vision_feature_select_strategy="default",
                          tie_word_embeddings=True)


def _internvl_processor(tokenizer: PreTrainedTokenizerFast) -> InternVLProcessor:
    frame_size = {"height": INTERNVL_IMAGE_SIZE, "width": INTERNVL_IMAGE_SIZE}
    image_processor = GotOcr2ImageProcessor(size=frame_size, crop_to_patches=False, **IMAGENET_MEAN_STD)
    video_processor = InternVLVideoProcessor(size=frame_size, **IMAGENET_MEAN_STD)
    return InternVLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                             image_seq_length=INTERNVL_IMAGE_TOKENS, chat_template=INTERNVL_CHAT_TEMPLATE)


def _save(directory: str | os.PathLike, model: PreTrainedModel, processor: ProcessorMixin) -> Path:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _random_model(model_class: type[PreTrainedModel], config: Any, seed: int) -> PreTrainedModel:
    torch.manual_seed(seed)
    model = model_class(config).eval()
    model.generation_config = _generation_config(config.text_config)
    return model


def build_tiny_smolvlm(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random ``SmolVLMForConditionalGeneration`` checkpoint (SmolVLM2-256M-Video's layout)."""
    tokenizer = _tokenizer(SMOLVLM_SPECIAL_TOKENS, SMOLVLM_NAMED_TOKENS, SMOLVLM_CHAT_TEMPLATE)
    model = _random_model(SmolVLMForConditionalGeneration, _smolvlm_config(tokenizer), seed)
    return _save(directory, model, _smolvlm_processor(tokenizer))


def build_tiny_llava_onevision(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random ``LlavaOnevisionForConditionalGeneration`` checkpoint (LLaVA-OV-0.5B-OV's layout)."""
    tokenizer = _tokenizer(LLAVA_OV_SPECIAL_TOKENS, LLAVA_OV_NAMED_TOKENS, LLAVA_OV_CHAT_TEMPLATE)
    model = _random_model(LlavaOnevisionForConditionalGeneration, _llava_onevision_config(tokenizer), seed)
    return _save(directory, model, _llava_onevision_processor(tokenizer))


def build_tiny_internvl(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random ``InternVLForConditionalGeneration`` checkpoint (InternVL3-1B-hf's layout)."""
    tokenizer = _tokenizer(INTERNVL_SPECIAL_TOKENS, INTERNVL_NAMED_TOKENS, INTERNVL_CHAT_TEMPLATE,
                           media=INTERNVL_MEDIA_TOKENS)
    model = _random_model(InternVLForConditionalGeneration, _internvl_config(tokenizer), seed)
    return _save(directory, model, _internvl_processor(tokenizer))


TINY_BUILDERS: dict[str, Callable[..., Path]] = {
    "smolvlm": build_tiny_smolvlm,
    "llava_onevision": build_tiny_llava_onevision,
    "internvl": build_tiny_internvl,
}
