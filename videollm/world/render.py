"""Rendering a ``VideoSpec`` to RGB frames with numpy.

Shapes are signed distance fields evaluated on a small pixel grid around each object (vectorised masks, 1-pixel
antialiasing, a dark outline so objects stay separable on any background). Object centres are snapped to whole
pixels, so a shape at a given size and angle is one cached patch reused across frames: static, sliding and
bouncing objects cost one blend per frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache

import cv2
import numpy as np

from videollm.world.spec import EXTENT, Background, SceneSpec, VideoSpec, object_track
from videollm.world.vocab import COLOURS

OUTLINE_RGB = np.array([15, 15, 15], dtype=np.float32)
# A fade lasts this long on each side of the boundary (through black, never fully black).
FADE_SECONDS = 0.25


# ---------------------------------------------------------------------------------------------------------------
# Shapes: signed distance in units of the radius (negative inside), u to the right and v downwards.
# ---------------------------------------------------------------------------------------------------------------


def _regular_polygon(u: np.ndarray, v: np.ndarray, sides: int, circumradius: float) -> np.ndarray:
    # A vertex points up; fold the angle onto the nearest edge normal: the distance to that edge's line.
    sector = 2.0 * math.pi / sides
    phi = np.mod(np.arctan2(u, -v), sector) - sector / 2
    return np.hypot(u, v) * np.cos(phi) - circumradius * math.cos(sector / 2)


def _star(u: np.ndarray, v: np.ndarray, outer: float = 1.16, inner: float = 0.5) -> np.ndarray:
    # Fold onto the half-arm [0, 36°] from a tip; the boundary there is the segment tip → inner vertex.
    half = math.pi / 5
    phi = np.abs(np.mod(np.arctan2(u, -v) + half, 2 * half) - half)
    rho = np.hypot(u, v)
    px, py = rho * np.sin(phi), rho * np.cos(phi)
    tip = np.array([0.0, outer])
    notch = np.array([inner * math.sin(half), inner * math.cos(half)])
    edge = notch - tip
    normal = np.array([edge[1], -edge[0]]) / np.hypot(*edge)
    if normal @ tip < 0:
        normal = -normal
    return (px - tip[0]) * normal[0] + (py - tip[1]) * normal[1]


def _box(u: np.ndarray, v: np.ndarray, half_w: float, half_h: float) -> np.ndarray:
    return np.maximum(np.abs(u) - half_w, np.abs(v) - half_h)


def shape_sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance to a unit-radius shape (negative inside).

    Args:
        shape: a name from SHAPES.
        u, v: coordinates in radius units, u to the right and v downwards; any matching shapes.

    Returns:
        Distances in radius units, same shape as ``u``.
    """
    if shape == "circle":
        return np.hypot(u, v) - 1.0
    if shape == "square":
        return _box(u, v, 0.8, 0.8)
    if shape == "triangle":
        # Centred on its centroid, point up; a circumradius above 1 gives it an area closer to the others.
        return _regular_polygon(u, v, 3, 1.16)
    if shape == "hexagon":
        return _regular_polygon(u, v, 6, 1.05)
    if shape == "star":
        return _star(u, v)
    if shape == "diamond":
        # An elongated rhombus: a rotated square never looks like it.
        a, b = 0.62, 1.12
        return (np.abs(u) * b + np.abs(v) * a - a * b) / math.hypot(a, b)
    if shape == "cross":
        return np.minimum(_box(u, v, 1.0, 0.32), _box(u, v, 0.32, 1.0))
    if shape == "ring":
        return np.abs(np.hypot(u, v) - 0.76) - 0.26
    raise ValueError(f"unknown shape {shape!r}")


def _coverage(shape: str, radius: float, angle: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Fill and outline coverage of a shape centred on a pixel: two (P, P, 1) float32 arrays and the half size."""
    outline = max(1.0, 0.07 * radius)
    half = math.ceil(radius * EXTENT + outline + 1.0)
    off = np.arange(-half, half + 1, dtype=np.float32)
    xs, ys = off[None, :], off[:, None]  # (1, P), (P, 1)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    u = (c * xs + s * ys) / radius  # (P, P)
    v = (-s * xs + c * ys) / radius
    dist = shape_sdf(shape, u, v) * radius  # (P, P), pixels
    fill = np.clip(0.5 - dist, 0.0, 1.0).astype(np.float32)[..., None]
    edge = np.clip(0.5 - (dist - outline), 0.0, 1.0).astype(np.float32)[..., None]
    return fill, edge, half


# Static, sliding and bouncing objects reuse one sprite per scene; spinning and growing ones need a new sprite
# every frame, so the cache stays small (a large sprite is ~0.25 MB).
@lru_cache(maxsize=128)
def _sprite(shape: str, colour: str, radius: float, angle: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Premultiplied sprite: frame = frame * keep + add. keep (P, P, 1), add (P, P, 3) float32; read-only."""
    fill, edge, half = _coverage(shape, radius, angle)
    rgb = np.asarray(COLOURS[colour], dtype=np.float32)
    keep = 1.0 - edge
    # The outline is the ring between the fill and the outer edge; + 0.5 makes the uint8 cast round.
    add = rgb * fill + OUTLINE_RGB * (edge - fill) + 0.5
    keep.flags.writeable = False
    add.flags.writeable = False
    return keep, add, half


def draw_object(frame: np.ndarray, shape: str, colour: str, cx: float, cy: float, radius: float,
                angle: float = 0.0) -> None:
    """Draw one outlined, antialiased shape into ``frame`` in place.

    Args:
        frame: (H, W, 3) uint8 RGB, modified in place.
        shape: a name from SHAPES; colour: a name from COLOURS.
        cx, cy: centre in pixels (snapped to the nearest pixel).
        radius: radius in pixels.
        angle: rotation in degrees (clockwise on screen).
    """
    # Rounding radius and angle makes the sprite cache hit for static and translating objects.
    keep, add, half = _sprite(shape, colour, round(float(radius), 1), round(float(angle) % 360.0, 1))
    h, w = frame.shape[:2]
    x0, y0 = round(cx) - half, round(cy) - half
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + keep.shape[1], w), min(y0 + keep.shape[0], h)
    if fx0 >= fx1 or fy0 >= fy1:
        return
    sy, sx = slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0)
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)  # (h', w', 3)
    region *= keep[sy, sx]
    region += add[sy, sx]
    frame[fy0:fy1, fx0:fx1] = region.astype(np.uint8)  # values stay in [0, 255.5): a convex blend


# ---------------------------------------------------------------------------------------------------------------
# Backgrounds
# ---------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def load_photo(name: str) -> np.ndarray:
    """A scikit-image bundled picture as (H, W, 3) uint8 RGB (read-only; grey pictures are replicated)."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype != np.uint8:
        img = (img.astype(np.float64) * (255.0 / max(float(img.max()), 1e-9))).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3])
    img.flags.writeable = False
    return img


def render_background(bg: Background, width: int, height: int) -> np.ndarray:
    """Render a background.

    Args:
        bg: the background spec.
        width, height: frame size in pixels.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    if bg.kind == "flat":
        return np.broadcast_to(np.asarray(bg.colours[0], dtype=np.uint8), (height, width, 3)).copy()
    if bg.kind in ("gradient", "noise", "checker"):
        c0, c1 = (np.asarray(c, dtype=np.float32) for c in bg.colours[:2])
        if bg.kind == "gradient":
            a = math.radians(bg.angle)
            xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
            ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
            t = (xs * math.cos(a) + ys * math.sin(a)) / (abs(math.cos(a)) + abs(math.sin(a))) + 0.5  # (H, W)
        elif bg.kind == "noise":
            rng = np.random.default_rng(bg.seed)
            coarse = rng.uniform(0, 1, (7, 7)).astype(np.float32)
            t = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
            t = t + rng.normal(0, 0.06, (height, width)).astype(np.float32)  # fine grain
        else:
            cell = max(8, min(width, height) // 8)
            t = ((np.arange(height)[:, None] // cell + np.arange(width)[None, :] // cell) % 2).astype(np.float32)
        t = np.clip(t, 0.0, 1.0)[..., None]  # (H, W, 1)
        return (c0 * (1.0 - t) + c1 * t + 0.5).astype(np.uint8)
    if bg.kind == "photo":
        img = load_photo(bg.name)
        ih, iw = img.shape[:2]
        left, top, zoom = bg.crop
        # Largest crop with the frame's aspect ratio, shrunk by the zoom, placed inside the free margin.
        ch = min(ih, iw * height / width) / zoom
        cw = ch * width / height
        x0, y0 = int(left * (iw - cw)), int(top * (ih - ch))
        crop = img[y0:y0 + int(ch), x0:x0 + int(cw)]
        out = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
        # Dimmed so that saturated objects and their outlines stand out.
        return (out.astype(np.float32) * 0.8 + 0.5).astype(np.uint8)
    raise ValueError(f"unknown background kind {bg.kind!r}")


def _draw_text(frame: np.ndarray, text: str) -> None:
    h, w = frame.shape[:2]
    font, thick = cv2.FONT_HERSHEY_DUPLEX, max(2, min(h, w) // 80)
    (tw, th), base = cv2.getTextSize(text, font, 1.0, thick)
    scale = 0.8 * w / max(tw, 1)
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    x, y = (w - tw) // 2, (h + th) // 2
    pad = max(4, th // 3)
    cv2.rectangle(frame, (x - pad, y - th - pad), (x + tw + pad, y + base + pad), (250, 250, 250), -1)
    cv2.putText(frame, text, (x, y), font, scale, (10, 10, 10), thick, cv2.LINE_AA)


def scene_background(scene: SceneSpec, width: int, height: int) -> np.ndarray:
    """The scene's static layer: background plus its text, (H, W, 3) uint8."""
    frame = render_background(scene.background, width, height)
    if scene.text:
        _draw_text(frame, scene.text)
    return frame


def fade_frames(fps: float, num_frames: int) -> int:
    """Frames faded on one side of a fade boundary (at most a third of the scene)."""
    return max(1, min(round(FADE_SECONDS * fps), num_frames // 3))


def scene_brightness(spec: VideoSpec, index: int) -> np.ndarray:
    """Per-frame brightness multiplier of scene ``index`` (fades through black), shape (T,) float32."""
    scene = spec.scenes[index]
    t = np.arange(scene.num_frames)
    gain = np.ones(scene.num_frames, dtype=np.float32)
    if scene.transition == "fade":
        f = fade_frames(spec.fps, scene.num_frames)
        gain = np.minimum(gain, np.clip((scene.num_frames - t) / (f + 1), 0, 1))
    if index > 0 and spec.scenes[index - 1].transition == "fade":
        f = fade_frames(spec.fps, spec.scenes[index - 1].num_frames)
        gain = np.minimum(gain, np.clip((t + 1) / (f + 1), 0, 1))
    return gain.astype(np.float32)


def render_scene(spec: VideoSpec, index: int) -> Iterator[np.ndarray]:
    """Frames of one scene.

    Args:
        spec: the video.
        index: scene index.

    Yields:
        (H, W, 3) uint8 RGB frames, ``spec.scenes[index].num_frames`` of them.
    """
    scene = spec.scenes[index]
    w, h = spec.width, spec.height
    base = scene_background(scene, w, h)
    tracks = [object_track(o, w, h, scene.num_frames, spec.fps) for o in scene.objects]
    gain = scene_brightness(spec, index)
    for i in range(scene.num_frames):
        frame = base.copy()
        for obj, tr in zip(scene.objects, tracks, strict=True):
            if i >= obj.enter:
                draw_object(frame, obj.shape, obj.colour, tr["x"][i], tr["y"][i], tr["radius"][i], tr["angle"][i])
        if gain[i] < 1.0:
            frame = (frame.astype(np.float32) * gain[i] + 0.5).astype(np.uint8)
        yield frame


def render_frames(spec: VideoSpec) -> Iterator[np.ndarray]:
    """All frames of a video, one at a time (the whole video is never held in memory).

    Args:
        spec: the video.

    Yields:
        (H, W, 3) uint8 RGB frames, ``spec.num_frames`` of them.
    """
    for index in range(len(spec.scenes)):
        yield from render_scene(spec, index)
