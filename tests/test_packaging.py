"""The explicit package list in pyproject.toml must name every package folder (setuptools cannot rename folders)."""

from __future__ import annotations

import tomllib
from pathlib import Path

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
