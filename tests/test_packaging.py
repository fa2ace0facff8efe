"""Packaging: every package folder is listed, the wheel carries the shipped data, a missing checkpoint is an error."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    renamed = {folder: name for name, folder in cfg["package-dir"].items()}
    found = set()
    for top in ("videollm", "scenetiling", "kernels", "app", "data"):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = list(init.parent.relative_to(ROOT).parts)
            parts[0] = renamed.get(parts[0], parts[0])
            found.add(".".join(parts))
    assert found == set(cfg["packages"])


def test_importing_videollm_is_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, videollm, videollm.cli, videollm.io, videollm.vision; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_shipped_checkpoint_is_an_error_not_random_weights(monkeypatch, tmp_path, capsys) -> None:
    """An install without the shipped data must say so and stop; it must never caption with untrained weights."""
    from videollm import assets
    from videollm.cli import main

    monkeypatch.setattr(assets, "data_root", lambda: tmp_path)
    video = ROOT / "data" / "samples" / "world" / "video" / "video_000001.mp4"
    assert main(["caption", str(video)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shipped embedded checkpoint is missing from this install" in err[0]
    assert "--model" in err[0]


def test_untrained_preset_is_announced(capsys) -> None:
    from argparse import Namespace

    from videollm.commands.common import model_source

    assert model_source(Namespace(model="embedded")) == "embedded"
    assert "untrained" in capsys.readouterr().err


@pytest.mark.slow
def test_the_wheel_carries_the_shipped_data(tmp_path) -> None:
    """A non-editable install finds the checkpoint, demo weights and samples because the wheel holds them."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("videollm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("videollm_data/checkpoints/embedded/config.json", "videollm_data/checkpoints/embedded/model.safetensors",
                 "videollm_data/checkpoints/embedded/ood.safetensors",
                 "videollm_data/demos/dance.safetensors", "videollm_data/demos/speech_lmu.safetensors",
                 "videollm_data/samples/world/video/video_000001.mp4", "videollm/presets/embedded.json",
                 "videollm_app/ui.py", "videollm_kernels/__init__.py"):
        assert path in names, path
    assert not any(n.startswith("videollm_data/checkpoints/embedded/experiments") for n in names)


def test_inference_never_imports_training_code() -> None:
    """Only training itself (videollm/train/ and the `videollm train` command) may import videollm.train."""
    import ast

    allowed = {ROOT / "videollm" / "commands" / "train.py"}
    offenders = []
    for top in ("videollm", "app", "scenetiling", "kernels"):
        for path in (ROOT / top).rglob("*.py"):
            if path in allowed or (ROOT / "videollm" / "train") in path.parents:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(n == "videollm.train" or n.startswith("videollm.train.") for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
