"""The hostile input corpus of ``benchmarks/hostile_corpus.py`` (videos, images, names, folders, audio), generated
here and run through ``videollm scenes`` and ``videollm demo speech``: readable kinds succeed in silence, every other
gets exactly one line ``videollm: error: ...`` and exit 2 (stderr is captured at the file-descriptor level, so a log
line from FFmpeg or decord would count too)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from videollm.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import hostile_corpus  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    root = tmp_path_factory.mktemp("hostile")
    commands = {kind: ["scenes", str(path), "--json"] for kind, path in hostile_corpus.make_corpus(root / "v").items()}
    commands |= {kind: ["demo", "speech", str(path)]
                 for kind, path in hostile_corpus.make_audio_corpus(root / "a").items()}
    return commands


def test_the_corpus_has_at_least_25_kinds(corpus) -> None:
    assert len(corpus) >= 25


def test_every_kind_gets_its_expected_outcome(corpus, capfd) -> None:
    wrong = {}
    for kind, command in corpus.items():
        code = main(command)
        err = capfd.readouterr().err
        if not hostile_corpus.expected(kind, code, err):
            wrong[kind] = (code, err.strip()[:300])
    assert not wrong, wrong
