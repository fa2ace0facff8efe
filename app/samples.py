"""The shipped synthetic-world samples the app preloads as examples (data/samples/world)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from videollm.assets import samples_dir

SAMPLES_DIR = samples_dir()


@dataclass
class PlanExample:
    """One EgoPlan-style task: the progress video, the goal and the four candidate next steps (answer first)."""

    video: str
    goal: str
    candidates: list[str]
    answer: str


@dataclass
class Samples:
    """Paths of the sample media; every list is empty when the folder is missing (e.g. a wheel install)."""

    root: Path
    videos: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    plans: list[PlanExample] = field(default_factory=list)


def find_samples(root: str | Path = SAMPLES_DIR) -> Samples:
    """Collect the sample videos (training, held-out, needle), images and EgoPlan tasks under ``root``."""
    root = Path(root)
    found = Samples(root=root)
    if not root.is_dir():
        return found
    for folder in ("video", "heldout", "needle"):
        found.videos.extend(str(p) for p in sorted((root / folder).glob("*.mp4")))
    found.images = [str(p) for p in sorted((root / "image").glob("*.png"))]
    plan_file = root / "egoplan" / "egoplan.json"
    if plan_file.is_file():
        for item in json.loads(plan_file.read_text()):
            choices = [item[f"choice_{c}"] for c in "abcd"]
            video = plan_file.parent / item["video_path"]
            if video.is_file():
                found.plans.append(PlanExample(str(video), item["task_goal"], choices, item["answer"]))
    return found
