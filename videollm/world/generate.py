"""Writing datasets of synthetic samples to disk, and the small samples shipped in data/samples/world.

Sample ``i`` of a dataset is drawn from its own generator, seeded by (seed, kind, heldout, i): a sample does not
depend on how many others are generated, so datasets can be sharded with ``start`` and regenerated exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from videollm.errors import UsageError
from videollm.world.sample import sample_video_spec
from videollm.world.spec import WorldConfig
from videollm.world.tasks import (
    egoplan_record,
    make_egoplan_sample,
    make_image_spec,
    make_needle_video,
    render_image,
    visdial_dense,
    visdial_dialog,
    visdial_json,
)
from videollm.world.truth import ground_truth
from videollm.world.writer import DEFAULT_CRF, write_json, write_video

KINDS: tuple[str, ...] = ("video", "needle", "egoplan", "image")


def sample_rng(seed: int, kind: str, heldout: bool, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of a dataset (independent of every other sample)."""
    return np.random.default_rng([int(seed), KINDS.index(kind), int(heldout), int(index)])


def generate(
    out_dir: str | os.PathLike,
    n: int,
    seed: int,
    heldout: bool = False,
    kind: str = "video",
    config: WorldConfig | None = None,
    start: int = 0,
    crf: int = DEFAULT_CRF,
    needle_depth: float | None = None,
    haystack_seconds: float = 60.0,
    needle: str = "text",
) -> list[Path]:
    """Write ``n`` samples of one kind to ``out_dir``.

    Files: kind "video" and "needle": ``<kind>_<i>.mp4`` + ``<kind>_<i>.json`` (see ``truth.ground_truth``);
    "egoplan": ``egoplan_<i>.mp4`` + ``egoplan_<i>.json`` and one EgoPlan-Bench-style list ``egoplan.json``;
    "image": ``image_<i>.png`` + ``image_<i>.json``, one VisDial v1.0 file ``visdial_1.0_<split>.json`` and its
    dense annotations ``visdial_1.0_<split>_dense_annotations.json`` (split "train" or "heldout"; image_id is i).

    Args:
        out_dir: output folder (created).
        n: number of samples.
        seed: dataset seed.
        heldout: draw objects from the held-out split only (True) or never (False).
        kind: "video", "needle", "egoplan" or "image".
        config: sampler settings (frame size, fps, scenes, scene length, objects, fades).
        start: index of the first sample (to shard a dataset).
        crf: x264 constant rate factor.
        needle_depth: needle position in [0, 1]; drawn uniformly per sample when None.
        haystack_seconds: needle videos: haystack length in seconds.
        needle: needle clip kind, "text" or "object".

    Returns:
        Paths of the media files written (mp4 or png), in sample order.
    """
    if kind not in KINDS:
        raise UsageError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if n < 0 or start < 0:
        raise UsageError(f"n and start must be non-negative, got n={n}, start={start}")
    config = WorldConfig() if config is None else config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    records: list[dict] = []
    for i in range(start, start + n):
        rng = sample_rng(seed, kind, heldout, i)
        stem = f"{kind}_{i:06d}"
        if kind == "image":
            spec = make_image_spec(rng, config, heldout)
            path = out / f"{stem}.png"
            cv2.imwrite(str(path), np.ascontiguousarray(render_image(spec)[..., ::-1]))  # OpenCV writes BGR
            write_json(ground_truth(spec, path.name), out / f"{stem}.json")
            records.append(visdial_dialog(rng, spec, i))
        else:
            if kind == "video":
                spec = sample_video_spec(rng, heldout, config=config)
            elif kind == "needle":
                depth = float(rng.uniform(0, 1)) if needle_depth is None else needle_depth
                spec = make_needle_video(rng, depth, haystack_seconds, needle, config, heldout)
            else:
                sample = make_egoplan_sample(rng, config, heldout)
                spec = sample.spec
                records.append(egoplan_record(sample, f"{kind}-{seed}-{'heldout-' * heldout}{i}", f"{stem}.mp4"))
            path = write_video(spec, out / f"{stem}.mp4", crf=crf)
            write_json(ground_truth(spec, path.name), out / f"{stem}.json")
        paths.append(path)
    if kind == "egoplan":
        write_json(records, out / "egoplan.json")
    elif kind == "image":
        write_json(visdial_json(records, "heldout" if heldout else "train"), out / visdial_name(heldout))
        write_json(visdial_dense(records), out / visdial_name(heldout, dense=True))
    return paths


def visdial_name(heldout: bool, dense: bool = False) -> str:
    """File name of the VisDial JSON that ``generate(kind="image")`` writes (``dense``: its dense annotations)."""
    return f"visdial_1.0_{'heldout' if heldout else 'train'}{'_dense_annotations' * dense}.json"


# What ``write_samples`` writes: (sub-folder, kind, heldout, n, extra generate() arguments).
SAMPLES: tuple[tuple[str, str, bool, int, dict], ...] = (
    ("video", "video", False, 2, {}),
    ("heldout", "video", True, 1, {}),
    ("needle", "needle", False, 1, {"needle_depth": 0.6, "haystack_seconds": 30.0}),
    ("egoplan", "egoplan", False, 2, {}),
    ("image", "image", False, 3, {}),
)
SAMPLES_SEED = 0


def write_samples(out_dir: str | os.PathLike) -> list[Path]:
    """Write the small sample set shipped in data/samples/world (same files every time).

    Args:
        out_dir: output folder; one sub-folder per kind.

    Returns:
        Paths of the media files written.
    """
    config = WorldConfig(scenes=(2, 4))
    paths: list[Path] = []
    for sub, kind, heldout, n, extra in SAMPLES:
        paths += generate(Path(out_dir) / sub, n, SAMPLES_SEED, heldout, kind, config, **extra)
    return paths
