"""The seeded sampler: draws ``VideoSpec``s (pure data) from a ``numpy.random.Generator``.

Attributes are drawn independently and uniformly on one side of the fixed held-out split (``vocab.is_heldout``);
objects never overlap; consecutive scenes get clearly different backgrounds so every cut is a strong visual change.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from videollm.errors import UsageError
from videollm.world.render import render_background
from videollm.world.spec import (
    EXTENT,
    GROW_SCALE,
    RGB,
    Background,
    ObjectSpec,
    SceneSpec,
    VideoSpec,
    WorldConfig,
    object_track,
)
from videollm.world.vocab import (
    COLOUR_NAMES,
    MOTIONS,
    PHOTOS,
    ROTATION_INVARIANT,
    SHAPES,
    SIZE_NAMES,
    SIZES,
    is_heldout,
    is_valid_combo,
)


def _r4(x: float) -> float:
    return round(float(x), 4)


def muted_colour(rng: np.random.Generator, value: tuple[float, float] = (0.18, 0.55)) -> RGB:
    """A low-saturation, mid-dark colour: backgrounds never compete with the saturated object palette."""
    h, s, v = rng.uniform(0, 1), rng.uniform(0.05, 0.35), rng.uniform(*value)
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def sample_background(rng: np.random.Generator, config: WorldConfig) -> Background:
    """Draw a flat, gradient, noise or photo background with the config's weights."""
    w = np.asarray(config.background_weights, dtype=np.float64)
    kind = ("flat", "gradient", "noise", "photo")[int(rng.choice(4, p=w / w.sum()))]
    if kind == "flat":
        return Background(kind, colours=(muted_colour(rng),))
    if kind == "gradient":
        return Background(kind, colours=(muted_colour(rng), muted_colour(rng)), angle=_r4(rng.uniform(0, 360)))
    if kind == "noise":
        return Background(kind, colours=(muted_colour(rng, (0.1, 0.3)), muted_colour(rng, (0.4, 0.6))),
                          seed=int(rng.integers(0, 2**31 - 1)))
    name = PHOTOS[int(rng.integers(len(PHOTOS)))]
    crop = (_r4(rng.uniform(0, 1)), _r4(rng.uniform(0, 1)), _r4(rng.uniform(1.0, 1.6)))
    return Background(kind, name=name, crop=crop)


def sample_attributes(rng: np.random.Generator, heldout: bool, motion: str | None = None) -> tuple[str, str, str]:
    """Draw (shape, colour, motion) independently and uniformly, restricted to one side of the held-out split.

    Training draws reject held-out triples; held-out draws pick shape and colour uniformly and take the one motion
    that completes a held-out triple (see ``vocab.is_heldout``). Invisible combos (spinning circles) are redrawn.

    Args:
        rng: the random generator.
        heldout: which side of the split to draw from.
        motion: fix the motion (shape and colour are then drawn until the triple is on the requested side).

    Returns:
        (shape, colour, motion) names.
    """
    while True:
        s = int(rng.integers(len(SHAPES)))
        c = int(rng.integers(len(COLOUR_NAMES)))
        if motion is not None:
            m = MOTIONS.index(motion)
        elif heldout:
            # 7 is its own inverse mod 8: solve 3s + 5c + 7m = 0 (mod 8) for m.
            m = (7 * (-(3 * s + 5 * c))) % 8
        else:
            m = int(rng.integers(len(MOTIONS)))
        shape, colour, mname = SHAPES[s], COLOUR_NAMES[c], MOTIONS[m]
        if is_valid_combo(shape, mname) and is_heldout(shape, colour, mname) == heldout:
            return shape, colour, mname


def _place(
    rng: np.random.Generator, motion: str, radius_px: float, width: int, height: int, duration: float
) -> tuple[float, float, float, float]:
    """Start centre and displacement (pixels) that keep the whole object inside the frame for the whole scene."""
    grow = GROW_SCALE[1] if motion == "grow" else 1.0
    m = radius_px * grow * EXTENT + 2.0
    free_x, free_y = width - 2 * m, height - 2 * m
    x, y = rng.uniform(m, width - m), rng.uniform(m, height - m)
    dx = dy = 0.0
    if motion in ("left", "right"):
        travel = rng.uniform(0.35, 0.7) * free_x
        x = rng.uniform(m, width - m - travel)
        if motion == "left":
            x, dx = x + travel, -travel
        else:
            dx = travel
    elif motion in ("up", "down"):
        travel = rng.uniform(0.35, 0.7) * free_y
        y = rng.uniform(m, height - m - travel)
        if motion == "up":
            y, dy = y + travel, -travel
        else:
            dy = travel
    elif motion == "bounce":
        # Diagonal, never near an axis (that would look like left/right/up/down), fast enough to hit a wall.
        heading = math.radians(rng.uniform(25, 65) + 90 * int(rng.integers(4)))
        dist = rng.uniform(0.3, 0.5) * min(width, height) * duration
        dx, dy = dist * math.cos(heading), dist * math.sin(heading)
    return x, y, dx, dy


def _tracks_overlap(objs: list[ObjectSpec], width: int, height: int, num_frames: int, fps: float) -> bool:
    if len(objs) < 2:
        return False
    tracks = [object_track(o, width, height, num_frames, fps) for o in objs]
    frames = np.arange(num_frames)
    for i in range(len(objs)):
        for j in range(i + 1, len(objs)):
            a, b = tracks[i], tracks[j]
            both = frames >= max(objs[i].enter, objs[j].enter)
            dist = np.hypot(a["x"] - b["x"], a["y"] - b["y"])
            need = (a["radius"] + b["radius"]) * EXTENT + 4.0
            if np.any((dist < need) & both):
                return True
    return False


def sample_objects(
    rng: np.random.Generator,
    n: int,
    num_frames: int,
    config: WorldConfig,
    heldout: bool = False,
    used: set[tuple[str, str]] | None = None,
    motion: str | None = None,
    stagger: bool = True,
) -> tuple[ObjectSpec, ...]:
    """Draw ``n`` non-overlapping objects for a scene (fewer if no overlap-free layout is found).

    Shapes are distinct within a scene ("the star" names one object); (colour, shape) pairs are kept distinct
    across the video while that is possible (``used`` is updated in place), so temporal questions are unambiguous.

    Args:
        rng: the random generator.
        n: number of objects wanted.
        num_frames: scene length in frames.
        config: frame geometry and fps.
        heldout: draw held-out triples only (True) or training triples only (False).
        used: (colour, shape) pairs already in the video.
        motion: give every object this motion (for example "static" for still images).
        stagger: objects enter one at a time (True) or all on the first frame (False).

    Returns:
        Objects sorted by their ``enter`` frame.
    """
    used = set() if used is None else used
    w, h, side = config.width, config.height, min(config.width, config.height)
    attrs: list[tuple[str, str, str, str]] = []
    for _ in range(n):
        for attempt in range(64):
            shape, colour, mname = sample_attributes(rng, heldout, motion)
            clash = shape in {a[0] for a in attrs} or (attempt < 32 and (colour, shape) in used)
            if not clash:
                break
        if clash:
            continue
        attrs.append((shape, colour, mname, SIZE_NAMES[int(rng.integers(len(SIZE_NAMES)))]))
    # Objects appear one by one: the first with the scene, the others within its first half.
    if stagger:
        lo = max(1, round(0.15 * num_frames))
        slots = np.arange(lo, min(max(lo + len(attrs), round(0.5 * num_frames)), num_frames))
        attrs = attrs[: len(slots) + 1]  # very short scenes have room for fewer entrances
        later = np.sort(rng.choice(slots, size=len(attrs) - 1, replace=False))
        enters = [0] + [int(v) for v in later]
    else:
        enters = [0] * len(attrs)
    duration = num_frames / config.fps
    while attrs:
        for _ in range(50):
            objs = []
            for (shape, colour, mname, size), enter in zip(attrs, enters[: len(attrs)], strict=True):
                radius = SIZES[size]
                x, y, dx, dy = _place(rng, mname, radius * side, w, h, duration)
                spin, angle = 0.0, 0.0
                if mname == "spin":
                    spin = rng.uniform(90, 150) * (1 if rng.uniform() < 0.5 else -1)
                    angle = rng.uniform(0, 360)
                elif shape not in ROTATION_INVARIANT:
                    angle = rng.uniform(-12, 12)
                s0, s1 = GROW_SCALE if mname == "grow" else (1.0, 1.0)
                objs.append(ObjectSpec(
                    shape=shape, colour=colour, size=size, motion=mname, radius=radius,
                    x=_r4(x / w), y=_r4(y / h), dx=_r4(dx / w), dy=_r4(dy / h),
                    angle=_r4(angle), spin=_r4(spin), scale0=s0, scale1=s1, enter=enter,
                ))
            if not _tracks_overlap(objs, w, h, num_frames, config.fps):
                used.update((o.colour, o.shape) for o in objs)
                return tuple(objs)
        attrs.pop()
    raise AssertionError("a single object always fits")  # pragma: no cover


def scene_frames(rng: np.random.Generator, config: WorldConfig) -> int:
    """Draw a scene length in frames from ``config.scene_seconds``."""
    return max(2, round(rng.uniform(*config.scene_seconds) * config.fps))


def sample_scene(
    rng: np.random.Generator,
    config: WorldConfig,
    heldout: bool = False,
    used: set[tuple[str, str]] | None = None,
    num_frames: int | None = None,
    previous: SceneSpec | None = None,
) -> SceneSpec:
    """Draw one ordinary scene (background, 1-3 objects, transition "cut" or "fade").

    Args:
        rng: the random generator.
        config: sampler settings.
        heldout: which side of the held-out split objects come from.
        used: (colour, shape) pairs already in the video (updated).
        num_frames: scene length; drawn from ``config.scene_seconds`` when None.
        previous: the scene before, whose background this one must differ from.

    Returns:
        The scene.
    """
    num_frames = scene_frames(rng, config) if num_frames is None else num_frames
    background = sample_distinct_background(rng, config, None if previous is None else previous.background)
    n = int(rng.integers(config.objects[0], config.objects[1] + 1))
    objects = sample_objects(rng, n, num_frames, config, heldout, used)
    transition = "fade" if rng.uniform() < config.fade_prob else "cut"
    return SceneSpec(num_frames=num_frames, background=background, objects=objects, transition=transition)


def finish_scenes(scenes: list[SceneSpec]) -> tuple[SceneSpec, ...]:
    """Mark the last scene's transition as "end" (nothing follows it)."""
    if scenes:
        last = scenes[-1]
        scenes[-1] = SceneSpec(last.num_frames, last.background, last.objects, "end", last.text, last.tag)
    return tuple(scenes)


# Consecutive scenes' backgrounds differ by at least this mean absolute difference (0..255) on a 16x16 thumbnail.
MIN_BACKGROUND_CHANGE = 35.0


def _thumbnail(bg: Background) -> np.ndarray:
    return render_background(bg, 16, 16).astype(np.float32)


def sample_distinct_background(rng: np.random.Generator, config: WorldConfig, previous: Background | None
                               ) -> Background:
    """A background that differs clearly from ``previous`` (redrawn up to 20 times), so a cut is never subtle."""
    bg = sample_background(rng, config)
    if previous is None:
        return bg
    prev = _thumbnail(previous)
    for _ in range(20):
        if np.abs(_thumbnail(bg) - prev).mean() >= MIN_BACKGROUND_CHANGE:
            break
        bg = sample_background(rng, config)
    return bg


def sample_video_spec(
    rng: np.random.Generator,
    heldout: bool = False,
    n_scenes: int | None = None,
    config: WorldConfig | None = None,
) -> VideoSpec:
    """Draw a multi-scene video.

    Args:
        rng: e.g. ``np.random.default_rng(seed)``; the spec is a pure function of its state.
        heldout: every object is a held-out shape x colour x motion triple (True) or none is (False).
        n_scenes: number of scenes; drawn from ``config.scenes`` when None.
        config: sampler settings; ``WorldConfig()`` when None.

    Returns:
        The spec (pure data; nothing is rendered).
    """
    config = WorldConfig() if config is None else config
    if n_scenes is None:
        n_scenes = int(rng.integers(config.scenes[0], config.scenes[1] + 1))
    if n_scenes < 1:
        raise UsageError(f"a video needs at least one scene, got {n_scenes}")
    used: set[tuple[str, str]] = set()
    scenes: list[SceneSpec] = []
    for _ in range(n_scenes):
        scenes.append(sample_scene(rng, config, heldout, used, previous=scenes[-1] if scenes else None))
    return VideoSpec(config.width, config.height, float(config.fps), finish_scenes(scenes), heldout)
