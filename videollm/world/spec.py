"""Pure-data descriptions of synthetic videos (``VideoSpec``) and the per-frame geometry of their objects.

A ``VideoSpec`` fully determines every pixel: rendering, ground truth and file writing are pure functions of it, so
the same seed gives the same JSON and the same frames. Positions are fractions of the frame (x of the width, y of
the height); radii are fractions of ``min(width, height)``; floats are rounded to 4 decimals when sampled so that a
spec survives a JSON round trip unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from videollm.errors import UsageError

# Every shape fits inside EXTENT x its radius (star tips and square corners reach furthest).
EXTENT = 1.16
# Scale range of a "grow" object over its scene (its nominal size is the one at the midpoint).
GROW_SCALE = (0.6, 1.4)
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class WorldConfig:
    """What the sampler draws from.

    Args:
        width, height: frame size in pixels (even numbers: H.264 yuv420p needs them).
        fps: frames per second.
        scenes: (min, max) number of scenes per video, inclusive.
        scene_seconds: (min, max) length of one scene in seconds.
        objects: (min, max) objects per scene, inclusive (at most 3 keeps scenes readable).
        fade_prob: probability that a scene boundary is a short fade through black instead of a hard cut.
        background_weights: relative frequency of flat, gradient, noise and photo backgrounds.
    """

    width: int = 224
    height: int = 224
    fps: float = 8.0
    scenes: tuple[int, int] = (2, 5)
    scene_seconds: tuple[float, float] = (2.0, 6.0)
    objects: tuple[int, int] = (1, 3)
    fade_prob: float = 0.2
    background_weights: tuple[float, float, float, float] = (0.25, 0.25, 0.2, 0.3)

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64 or self.width % 2 or self.height % 2:
            raise UsageError(f"frame size must be even and at least 64x64, got {self.width}x{self.height}")
        if not 1.0 <= self.fps <= 120.0:
            raise UsageError(f"fps must be between 1 and 120, got {self.fps}")
        if not 1 <= self.scenes[0] <= self.scenes[1]:
            raise UsageError(f"scene count range must satisfy 1 <= min <= max, got {self.scenes}")
        if not 0.25 <= self.scene_seconds[0] <= self.scene_seconds[1]:
            raise UsageError(f"scene length range must satisfy 0.25 <= min <= max, got {self.scene_seconds}")
        if not 1 <= self.objects[0] <= self.objects[1] <= 3:
            raise UsageError(f"objects per scene must satisfy 1 <= min <= max <= 3, got {self.objects}")
        if not 0.0 <= self.fade_prob <= 1.0:
            raise UsageError(f"fade probability must be in [0, 1], got {self.fade_prob}")
        if len(self.background_weights) != 4 or min(self.background_weights) < 0 or sum(self.background_weights) <= 0:
            raise UsageError("background weights must be 4 non-negative numbers with a positive sum")


@dataclass(frozen=True)
class Background:
    """A static scene background.

    Args:
        kind: "flat", "gradient", "noise", "photo" or "checker" (checker is reserved for needle clips).
        colours: flat: 1 colour; gradient, noise, checker: 2 colours (RGB 0..255).
        name: the scikit-image picture for kind "photo".
        angle: gradient direction in degrees.
        seed: noise pattern seed.
        crop: photo crop as (left, top, zoom): left/top place the crop inside the free margin (0..1), zoom >= 1.
    """

    kind: str
    colours: tuple[RGB, ...] = ()
    name: str = ""
    angle: float = 0.0
    seed: int = 0
    crop: tuple[float, float, float] = (0.0, 0.0, 1.0)


@dataclass(frozen=True)
class ObjectSpec:
    """One object of a scene and its motion.

    Args:
        shape, colour, size, motion: names from the vocabulary.
        radius: nominal radius as a fraction of min(width, height).
        x, y: centre at the scene's first frame (fractions of width and height).
        dx, dy: displacement over the scene (fractions); positions reflect at the frame edges ("bounce").
        angle: rotation at the first frame (degrees).
        spin: rotation speed (degrees per second).
        scale0, scale1: size multiplier at the first and last frame of the scene ("grow").
        enter: frame of the scene at which the object appears (objects appear one at a time).
    """

    shape: str
    colour: str
    size: str
    motion: str
    radius: float
    x: float
    y: float
    dx: float = 0.0
    dy: float = 0.0
    angle: float = 0.0
    spin: float = 0.0
    scale0: float = 1.0
    scale1: float = 1.0
    enter: int = 0

    @property
    def name(self) -> str:
        """Short canonical name used in answers: "red circle"."""
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class SceneSpec:
    """One scene: a background, its objects and how it ends.

    Args:
        num_frames: length in frames.
        background: the static background.
        objects: objects in order of appearance.
        transition: how the scene ends: "cut", "fade" (through black) or "end" (last scene).
        text: text written over the background (needle clips only).
        tag: "" for ordinary scenes, "needle" or "step" for special ones.
    """

    num_frames: int
    background: Background
    objects: tuple[ObjectSpec, ...] = ()
    transition: str = "cut"
    text: str = ""
    tag: str = ""


@dataclass(frozen=True)
class VideoSpec:
    """A whole video: frame geometry, frame rate and scenes in order.

    Args:
        width, height: frame size in pixels.
        fps: frames per second.
        scenes: the scenes, back to back.
        heldout: whether the objects were drawn from the held-out split.
    """

    width: int
    height: int
    fps: float
    scenes: tuple[SceneSpec, ...]
    heldout: bool = False

    @property
    def num_frames(self) -> int:
        return sum(s.num_frames for s in self.scenes)

    @property
    def scene_starts(self) -> list[int]:
        """Index of the first frame of each scene."""
        return [int(v) for v in np.cumsum([0] + [s.num_frames for s in self.scenes[:-1]])]

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists); ``VideoSpec.from_dict`` inverts it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VideoSpec:
        """Rebuild a spec from ``to_dict()`` output (for example the "spec" entry of a ground-truth JSON)."""
        scenes = tuple(
            SceneSpec(
                num_frames=s["num_frames"],
                background=_background_from_dict(s["background"]),
                objects=tuple(ObjectSpec(**o) for o in s["objects"]),
                transition=s["transition"],
                text=s["text"],
                tag=s["tag"],
            )
            for s in d["scenes"]
        )
        return cls(width=d["width"], height=d["height"], fps=d["fps"], scenes=scenes, heldout=d["heldout"])


def _background_from_dict(d: dict) -> Background:
    known = {f.name for f in fields(Background)}
    d = {k: v for k, v in d.items() if k in known}
    d["colours"] = tuple(tuple(int(c) for c in col) for col in d.get("colours", ()))
    d["crop"] = tuple(d.get("crop", (0.0, 0.0, 1.0)))
    return Background(**d)


def object_track(obj: ObjectSpec, width: int, height: int, num_frames: int, fps: float) -> dict[str, np.ndarray]:
    """Per-frame geometry of an object over its scene, vectorised over frames.

    Args:
        obj: the object.
        width, height: frame size in pixels.
        num_frames: scene length T.
        fps: frames per second (spin speed is per second).

    Returns:
        dict with "x", "y" (centre in pixels), "radius" (pixels), "angle" (degrees), each of shape (T,).
    """
    side = min(width, height)
    t = np.arange(num_frames, dtype=np.float64)  # (T,)
    progress = t / max(num_frames - 1, 1)
    scale = obj.scale0 + (obj.scale1 - obj.scale0) * progress
    margin = obj.radius * side * max(obj.scale0, obj.scale1) * EXTENT + 2.0
    x = _reflect((obj.x + obj.dx * progress) * width, margin, width - margin)
    y = _reflect((obj.y + obj.dy * progress) * height, margin, height - margin)
    return {"x": x, "y": y, "radius": obj.radius * side * scale, "angle": obj.angle + obj.spin * t / fps}


def _reflect(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold positions into [lo, hi] as if bouncing off both walls (a triangle wave); identity inside."""
    span = max(hi - lo, 1e-6)
    q = np.mod(p - lo, 2.0 * span)
    return lo + span - np.abs(q - span)
