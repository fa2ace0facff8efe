"""Fast start-up of the web app: the page needs no model, and requests made while it loads wait with a status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from videollm.errors import ModelError

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "world"
PLAN = json.loads((SAMPLES / "egoplan" / "egoplan.json").read_text())[0]

pytestmark = pytest.mark.timeout(120)


def test_loader_waits_for_a_background_load_and_loads_once() -> None:
    from videollm_app import ModelLoader

    gate, calls = threading.Event(), []

    def load() -> str:
        calls.append(1)
        gate.wait(10)
        return "the model"

    loader = ModelLoader(load).start()
    assert not loader.ready
    with pytest.raises(ModelError, match="still loading"):
        loader.get(timeout=0.05)
    gate.set()
    assert loader.get(timeout=10) == "the model" and loader.ready
    assert loader.load() == "the model" and calls == [1]
    assert ModelLoader.loaded("m").ready


def test_a_failed_load_is_raised_to_the_loader_and_reported_to_requests() -> None:
    from videollm_app import ModelLoader

    def load() -> None:
        raise OSError("no weights here")

    loader = ModelLoader(load)
    with pytest.raises(OSError, match="no weights here"):
        loader.load()
    assert not loader.ready
    with pytest.raises(ModelError, match="the model failed to load: no weights here"):
        loader.get()


def test_sample_videos_are_known_playable_without_ffprobe(tmp_path: Path, corrupt_video: Path) -> None:
    from videollm_app.media import browser_playable

    assert browser_playable(SAMPLES / "video" / "video_000000.mp4")
    assert not browser_playable(corrupt_video)
    assert not browser_playable(tmp_path / "missing.mp4")


def test_a_request_before_the_model_is_ready_shows_loading_then_runs(app_server) -> None:
    from videollm_app import AppLimits, ModelLoader, build_demo

    gate = threading.Event()
    loader = ModelLoader(lambda: gate.wait(30) and app_server.model).start()
    demo = build_demo(loader, limits=AppLimits(max_new_tokens=8), model_name="tiny", workdir=app_server.workdir)
    rank = next(f.fn for f in demo.fns.values() if f.api_name == "plan_rank")
    choices = [PLAN[f"choice_{c}"] for c in "abcd"]
    steps = rank(str(SAMPLES / "egoplan" / PLAN["video_path"]), PLAN["task_goal"], "\n".join(choices), None)
    status, *_ = next(steps)
    assert "Loading the model" in status
    gate.set()
    status, _, table, session = list(steps)[-1]
    assert status.startswith("**Done:** Most likely next step") and session is not None
    assert sorted(row[1] for row in table) == sorted(choices)


def test_building_the_app_imports_no_model_code() -> None:
    code = (
        "import sys\n"
        "from videollm_app import ModelLoader, build_demo\n"
        "build_demo(ModelLoader(lambda: None))\n"
        "print(sorted(m for m in ('torch', 'transformers', 'matplotlib', 'cv2') if m in sys.modules))\n"
    )
    # sys.path carries the conftest's videollm_app shim where the package is not installed.
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100, env=env,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", "the page must be served before torch is imported"
