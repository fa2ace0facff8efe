"""Whether the model recognises a scene: a per-scene out-of-domain score, and the rule that withholds the caption of
a scene it does not recognise (docs/design.md §5, "Honest limits").

The shipped embedded model was trained only on the synthetic world (§6); shown anything else, it still answers in
world words ("a small yellow star grows"). Its checkpoint folder holds ``ood.safetensors`` (``CALIBRATION_NAME``):
the means of the world's object classes (shape x colour) in the space of the pooled DINOv2 tokens the bridge reads,
measured on the training pool's tokens that an object covers, and a whitening matrix (the inverse square root of
their shared within-class covariance). A scene's **novelty** is the smallest squared Mahalanobis distance, per
dimension, from any of its bridge tokens to any object class::

    novelty = min over the scene's L x P*P tokens x, min over classes c of |W (x - mu_c)|^2 / D

Every world scene holds at least one object, so one of its tokens lies close to a class; footage from elsewhere
has no such token. The tokens are the ones the bridge step reads anyway, so the score costs one small matrix
product a scene and no vision work. A scene is **recognised** when its novelty is at most the calibrated
threshold (``benchmarks/ood_calibrate.py``: validation split; ``benchmarks/ood.py``: test figures). Models without
the file (presets, other checkpoints, vision-language backbones) have no score: every caption is shown, as before.

What the product does with an unrecognised scene: no caption is generated for it; the caption JSON has
``"caption": null, "recognised": false``; subtitles and the web app show ``NOT_RECOGNISED``; questions recalled to
it are answered with ``NOT_RECOGNISED_ANSWER`` (``videollm.recall.answer``), while its spoken words and on-screen
text stay available. Each scene's novelty is kept in the memory (``state.extra["novelty"]``), so a saved memory
answers the same way without the video.
"""

from __future__ import annotations

import json
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videollm.errors import ModelError

if TYPE_CHECKING:  # torch is imported where a score is computed: the output writers only need the strings here
    from torch import Tensor

#: The calibration file's name inside a checkpoint folder.
CALIBRATION_NAME = "ood.safetensors"
#: What subtitles and the app show instead of an unrecognised scene's caption.
NOT_RECOGNISED = "(scene not recognised by the embedded model)"
#: The answer to a question about an unrecognised scene.
NOT_RECOGNISED_ANSWER = ("The model does not recognise this scene: it was trained only on synthetic videos of "
                         "coloured shapes, so it cannot say what this scene shows.")
#: ``state.extra`` key of the per-scene scores.
STATE_KEY = "novelty"
_FORMAT = "videollm.ood"
_VERSION = "1"


@dataclass
class SceneNovelty:
    """The out-of-domain score of one checkpoint (see the module docstring).

    Attributes:
        whiten: (D, D) whitening matrix W (W^T W is the inverse of the shared within-class covariance).
        means: (K, D) class means, already whitened (rows W mu_c).
        threshold: a scene whose novelty is above this is not recognised.
        classes: the K class names ("red star", ...).
        info: calibration facts (how it was fitted, the validation figures, the command), from the file.
    """

    whiten: Tensor
    means: Tensor
    threshold: float
    classes: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def score(self, tokens: Tensor) -> float:
        """The novelty of one scene.

        Args:
            tokens: (L, T, D) the scene's pooled tokens as the bridge reads them (any leading shape, last dim D).

        Returns:
            min over tokens and classes of the squared whitened distance, divided by D.
        """
        import torch

        with torch.no_grad():
            x = tokens.reshape(-1, tokens.shape[-1]).to(self.whiten) @ self.whiten.T  # (N, D)
            dist = torch.cdist(x, self.means).square()  # (N, K)
        return float(dist.min()) / x.shape[-1]

    def recognised(self, novelty: float) -> bool:
        """Whether a scene of this novelty is recognised."""
        return novelty <= self.threshold

    @classmethod
    def fit(cls, tokens: Tensor, labels: Tensor, classes: tuple[str, ...], shrink: float = 1e-3) -> SceneNovelty:
        """Class means and the whitening of their shared (tied) within-class covariance.

        Args:
            tokens: (N, D) training tokens that an object covers.
            labels: (N,) class index of each token, in ``range(len(classes))`` (every class present).
            classes: class names.
            shrink: ridge added to the covariance, as a fraction of its mean eigenvalue.

        Returns:
            A detector with threshold +inf (set it from a validation split).
        """
        import torch

        tokens = tokens.double()
        d = tokens.shape[1]
        means = torch.stack([tokens[labels == k].mean(0) for k in range(len(classes))])  # (K, D)
        resid = tokens - means[labels]
        cov = resid.T @ resid / (len(tokens) - len(classes))
        cov += shrink * torch.trace(cov) / d * torch.eye(d, dtype=cov.dtype)
        vals, vecs = torch.linalg.eigh(cov)
        whiten = (vecs * vals.rsqrt()).T  # (D, D): W cov W^T = I
        return cls(whiten.float(), (means @ whiten.T).float(), float("inf"), tuple(classes))

    def save(self, path: str | os.PathLike, vision: dict[str, Any], info: dict[str, Any] | None = None) -> None:
        """Write the calibration file (safetensors: tensors plus JSON metadata).

        Args:
            path: the file (``<checkpoint>/ood.safetensors``).
            vision: ``{"vision": VisionConfig.to_dict(), "pool": P}`` of the model it was fitted for; loading
                checks it.
            info: calibration facts kept with it.
        """
        from safetensors.torch import save_file

        self.info = dict(info or self.info)
        metadata = {"format": _FORMAT, "version": _VERSION, "threshold": repr(float(self.threshold)),
                    "classes": json.dumps(list(self.classes)), "vision": json.dumps(vision, sort_keys=True),
                    "info": json.dumps(self.info)}
        save_file({"whiten": self.whiten.contiguous(), "means": self.means.contiguous()}, os.fspath(path),
                  metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike, vision: dict[str, Any] | None = None) -> SceneNovelty:
        """Read a calibration file; with ``vision``, check it was fitted for that vision encoder and pooling.

        Raises:
            ModelError: the file is not a calibration file, is damaged, or belongs to another vision encoder.
        """
        from safetensors import safe_open

        try:
            with safe_open(os.fspath(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in list(f.keys())}
        except Exception as err:  # noqa: BLE001 (safetensors raises its own error type on bad bytes)
            raise ModelError(f"{path}: not a safetensors file ({err.__class__.__name__})") from None
        if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
            raise ModelError(f"{path}: not a videollm out-of-domain calibration file (version {_VERSION})")
        try:
            whiten, means = tensors["whiten"].float(), tensors["means"].float()
            threshold = float(meta["threshold"])
            saved_vision = json.loads(meta["vision"])
            classes = tuple(json.loads(meta.get("classes", "[]")))
            info = json.loads(meta.get("info", "{}"))
        except (KeyError, ValueError) as err:
            raise ModelError(f"{path}: damaged calibration file ({err.__class__.__name__}: {err})") from None
        d = whiten.shape[-1]
        if whiten.shape != (d, d) or means.dim() != 2 or means.shape[1] != d or len(classes) not in (0, len(means)):
            raise ModelError(f"{path}: damaged calibration file (whiten {tuple(whiten.shape)}, means "
                             f"{tuple(means.shape)})")
        if vision is not None and saved_vision != json.loads(json.dumps(vision, sort_keys=True)):
            raise ModelError(f"{path}: calibrated for another vision encoder or pooling ({saved_vision}); remove it "
                             "or recalibrate (benchmarks/ood_calibrate.py)")
        return cls(whiten, means, threshold, classes, info)


def vision_key(config) -> dict[str, Any]:
    """What a calibration depends on in a ``ModelConfig``: the vision encoder and the token pooling."""
    return {"vision": config.vision.to_dict(), "pool": config.bridge.pool}


_DETECTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def for_model(model) -> SceneNovelty | None:
    """The detector of ``model``: its checkpoint folder's ``ood.safetensors`` (read once), or None when the model was
    not loaded from a folder holding one (``ModelConfig.directory``), or one was set with ``attach``."""
    if model not in _DETECTORS:
        directory = getattr(model.config, "directory", None)
        path = Path(directory) / CALIBRATION_NAME if directory is not None else None
        _DETECTORS[model] = (SceneNovelty.load(path, vision_key(model.config))
                             if path is not None and path.is_file() else None)
    return _DETECTORS[model]


def attach(model, detector: SceneNovelty | None) -> None:
    """Use ``detector`` for ``model`` from now on (None: no score, every caption shown)."""
    _DETECTORS[model] = detector


# ------------------------------------------------------------------------------------------ scores in a memory


def record(state, index: int, novelty: float, threshold: float) -> None:
    """Keep scene ``index``'s novelty in the memory (``state.extra["novelty"]``, saved with it)."""
    entry = state.extra.get(STATE_KEY)
    if not isinstance(entry, dict) or not isinstance(entry.get("scores"), list):
        entry = state.extra[STATE_KEY] = {"threshold": threshold, "scores": []}
    entry["threshold"] = threshold
    scores = entry["scores"]
    scores.extend([None] * (index + 1 - len(scores)))
    scores[index] = round(float(novelty), 4)


def recognised(state, index: int) -> bool | None:
    """Whether scene ``index`` of a memory was recognised: None when it has no score (a model without a calibration
    file, or the evaluation, which bypasses the rule)."""
    entry = state.extra.get(STATE_KEY)
    if not isinstance(entry, dict):
        return None
    scores, threshold = entry.get("scores"), entry.get("threshold")
    if not isinstance(scores, list) or not 0 <= index < len(scores) or not isinstance(scores[index], (int, float)):
        return None
    if not isinstance(threshold, (int, float)):
        return None
    return scores[index] <= threshold


def shown(caption: str, is_recognised: bool | None) -> str:
    """The caption as outputs show it: ``NOT_RECOGNISED`` for a scene the model does not recognise."""
    return NOT_RECOGNISED if is_recognised is False else caption


__all__ = ["CALIBRATION_NAME", "NOT_RECOGNISED", "NOT_RECOGNISED_ANSWER", "SceneNovelty", "attach", "for_model",
           "recognised", "record", "shown", "vision_key"]
