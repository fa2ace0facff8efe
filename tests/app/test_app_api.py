"""Every endpoint of the web app through ``gradio_client`` against a real server on 127.0.0.1 (tiny model)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from videollm import ocr, speech
from videollm.errors import UsageError, VideoError

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "world"
VIDEO = SAMPLES / "video" / "video_000000.mp4"
IMAGE = SAMPLES / "image" / "image_000000.png"
PLAN = json.loads((SAMPLES / "egoplan" / "egoplan.json").read_text())[0]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(app_server):
    from gradio_client import Client

    return Client(app_server.url, verbose=False, download_files=str(app_server.workdir / "client"))


def _texts(chat: list[dict]) -> list[tuple[str, str]]:
    return [(m["role"], " ".join(part["text"] for part in m["content"] if part.get("type") == "text"))
            for m in chat]


def test_every_endpoint_is_published(client) -> None:
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert names == {"/watch", "/load_memory", "/ask_video", "/summarize", "/live", "/live_stop", "/ask_image",
                     "/clear_image", "/plan_rank", "/plan_suggest", "/dance", "/speech", "/find_scenes"}


def test_watch_then_chat_reuses_the_memory(client, app_server) -> None:
    from gradio_client import handle_file

    status, timeline, gallery, plot, chat, table = client.predict(handle_file(str(VIDEO)), api_name="/watch")
    assert "scenes in" in status and "Ask away" in status and "spoken" not in status  # a silent video
    assert len(gallery) >= 2 and timeline.count("vl-block") == len(gallery)
    assert all(Path(item["image"]).is_file() and " s · " in item["caption"] for item in gallery)
    assert gallery[0]["caption"].startswith("0.0–")
    assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert chat == []
    # The scene table: a silent video with nothing written in it has no speech or text column.
    assert table["headers"] == ["Scene", "Start (s)", "End (s)", "Caption"]
    assert [r[0] for r in table["data"]] == list(range(1, len(gallery) + 1)) and table["data"][0][1] == 0

    encoded = app_server.vision_calls[0]
    _, chat = client.predict("What appeared first?", api_name="/ask_video")
    _, chat = client.predict("And then?", api_name="/ask_video")
    turns = _texts(chat)
    assert [r for r, _ in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[0][1] == "What appeared first?" and turns[2][1] == "And then?"
    assert all(text for _, text in turns)
    # each answer says which scene it was recalled from; "first" names the first scene
    scenes = len(gallery)
    assert f"\n\n*answered from scene 1 of {scenes} (0.0–" in turns[1][1] and turns[1][1].endswith(" s)*")
    assert f"of {scenes} (" in turns[3][1]
    chat = client.predict(api_name="/summarize")
    assert len(chat) == 6 and _texts(chat)[4] == ("user", "Summarize the video.")
    _, chat = client.predict("How many scenes are there?", api_name="/ask_video")  # counted, not read
    assert _texts(chat)[-1][1] == f"{scenes}\n\n*answered by counting the {scenes} scenes SceneTiling found*"
    assert app_server.vision_calls[0] == encoded, "follow-up questions must not re-encode the video"


def test_bad_uploads_get_a_clear_error_and_the_server_stays_up(client, corrupt_video) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"^corrupt.mp4: not a readable video"):
        client.predict(handle_file(str(corrupt_video)), api_name="/watch")
    with pytest.raises(AppError, match="image"):
        client.predict(handle_file(str(IMAGE)), api_name="/watch")
    with pytest.raises(AppError, match="watch a video"):
        client.predict("hello?", api_name="/ask_video")
    # Gradio's image component refuses it before the handler runs; the message still names the problem.
    with pytest.raises(AppError, match="cannot identify image file"):
        client.predict(handle_file(str(corrupt_video)), "what is it?", api_name="/ask_image")
    status, *_ = client.predict(handle_file(str(VIDEO)), api_name="/watch")
    assert "Ask away" in status


def test_scenes_the_model_does_not_recognise_show_so_everywhere(client, app_server) -> None:
    """With a calibration that recognises nothing (``videollm.ood``), the timeline, the gallery, the scene table,
    the live table and the chat say "not recognised" instead of a shape caption; keyframes and spans stay."""
    import torch
    from gradio_client import handle_file

    from videollm import ood

    width = app_server.model.config.bridge.vision_dim
    ood.attach(app_server.model, ood.SceneNovelty(torch.eye(width), torch.zeros(1, width), threshold=-1.0))
    try:
        _, timeline, gallery, _, _, table = client.predict(handle_file(str(VIDEO)), api_name="/watch")
        assert gallery and all(Path(g["image"]).is_file() and g["caption"].endswith(ood.NOT_RECOGNISED)
                               for g in gallery)
        assert timeline.count(ood.NOT_RECOGNISED) == len(gallery)
        assert [row[3] for row in table["data"]] == [ood.NOT_RECOGNISED] * len(gallery)
        _, chat = client.predict("What colour is the star?", api_name="/ask_video")
        assert _texts(chat)[-1][1].startswith(ood.NOT_RECOGNISED_ANSWER)
        _, table, _ = client.predict(handle_file(str(VIDEO)), None, False, api_name="/live")
        assert table["data"] and [row[3] for row in table["data"]] == [ood.NOT_RECOGNISED] * len(table["data"])
    finally:
        ood.attach(app_server.model, None)


def test_live_captions_and_the_memory_round_trip(client, app_server) -> None:
    from gradio_client import handle_file

    status, table, memory_file = client.predict(handle_file(str(VIDEO)), None, False, api_name="/live")
    assert status.startswith("**Done:** Stream ended")
    rows = table["data"]
    assert len(rows) >= 2 and [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert all(r[4] >= 0 and r[2] > r[1] for r in rows)
    assert rows[0][1] == 0 and rows[-1][2] == pytest.approx(16.75, abs=0.6)
    assert Path(memory_file).is_file()

    other = type(client)(app_server.url, verbose=False)
    encoded = app_server.vision_calls[0]
    status, timeline, _, _, chat, _ = other.predict(handle_file(memory_file), api_name="/load_memory")
    assert f"{len(rows)} scenes" in status and timeline.count("vl-block") == len(rows)
    _, chat = other.predict("What happened?", api_name="/ask_video")
    assert [r for r, _ in _texts(chat)] == ["user", "assistant"]
    assert app_server.vision_calls[0] == encoded, "a loaded memory needs no vision compute"


def test_find_scenes_ranks_the_scenes_whose_captions_hold_the_words(client, app_server, tmp_path) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    from videollm import captioning
    from videollm.memory import save_memory

    with pytest.raises(AppError, match="watch a video"):
        client.predict("red circle", api_name="/find_scenes")
    state = captioning.open_memory(app_server.model, VIDEO)
    written = ["a small red circle moves left", "a red star grows; a blue circle spins", "a large red circle bounces",
               "a green cross"][: state.num_segments]
    state.extra["captions"] = [{"start": round(s.start_time, 3), "end": round(s.end_time, 3), "caption": c}
                               for s, c in zip(state.segments, written, strict=False)]
    save_memory(state, tmp_path / "captioned.memory.safetensors")
    client.predict(handle_file(str(tmp_path / "captioned.memory.safetensors")), api_name="/load_memory")
    rows = client.predict("red circle", api_name="/find_scenes")["data"]
    # scenes 1 and 3 hold both words in one clause, scene 2 holds them in two: one word
    assert {r[0] for r in rows[:2]} == {1, 3} and rows[2][0] == 2 and len(rows) == 3
    assert [r[4] for r in rows] == ["caption (2 words)", "caption (2 words)", "caption (1 word)"]
    for number, start, end, caption, _ in rows:
        segment = state.segments[number - 1]
        assert (start, end) == (round(segment.start_time, 1), round(segment.end_time, 1))
        assert caption == written[number - 1]
    assert client.predict("yellow hexagon", api_name="/find_scenes")["data"] == []
    with pytest.raises(AppError, match="type what to look for"):
        client.predict("  ", api_name="/find_scenes")


def test_live_stop_and_missing_source(client) -> None:
    from gradio_client.exceptions import AppError

    assert "Stopped" in client.predict(api_name="/live_stop")
    with pytest.raises(AppError, match="no video yet"):
        client.predict(None, None, True, api_name="/live")


def test_image_dialog_is_multi_turn_and_clears(client, app_server) -> None:
    from gradio_client import handle_file

    before = app_server.vision_calls[0]
    _, chat = client.predict(handle_file(str(IMAGE)), "What colour is the ring?", api_name="/ask_image")
    _, chat = client.predict(handle_file(str(IMAGE)), "Is it large?", api_name="/ask_image")
    assert [t for _, t in _texts(chat)][::2] == ["What colour is the ring?", "Is it large?"]
    assert app_server.vision_calls[0] == before + 1, "the image is encoded once for the whole dialog"
    assert client.predict(api_name="/clear_image") == []
    _, chat = client.predict(handle_file(str(IMAGE)), "How many objects?", api_name="/ask_image")
    assert len(chat) == 2


def test_planning_ranks_candidates(client) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    video = handle_file(str(SAMPLES / "egoplan" / PLAN["video_path"]))
    choices = [PLAN[f"choice_{c}"] for c in "abcd"]
    status, label, table = client.predict(video, PLAN["task_goal"], "\n".join(choices), api_name="/plan_rank")
    ranked = [row[1] for row in table["data"]]
    assert sorted(ranked) == sorted(choices) and status.startswith("**Done:** Most likely next step")
    scores = [row[2] for row in table["data"]]
    assert label["label"] == ranked[0] and f"**{ranked[0]}**" in status
    if "which the last scene shows done" in status:  # progress put the step after the last one shown first
        assert scores[1:] == sorted(scores[1:], reverse=True) and not label.get("confidences")
    else:  # log-likelihood order, with the shares
        assert scores == sorted(scores, reverse=True)
        assert sum(c["confidence"] for c in label["confidences"]) == pytest.approx(1.0, abs=1e-3)
    status, candidates = client.predict(video, PLAN["task_goal"], choices[0], api_name="/plan_suggest")
    assert candidates.splitlines()[0] == choices[0]
    with pytest.raises(AppError, match="at least two"):
        client.predict(video, PLAN["task_goal"], choices[0], api_name="/plan_rank")


def test_upload_checks(tmp_path: Path, corrupt_video: Path, video_factory) -> None:
    from videollm_app import AppLimits
    from videollm_app.media import check_image, check_video

    long_clip = video_factory(tmp_path / "long.mp4", n_frames=40, fps=4)  # 10 s
    assert check_video(long_clip, AppLimits(max_video_seconds=20)).duration == pytest.approx(10, abs=0.3)
    with pytest.raises(UsageError, match="up to 5 s"):
        check_video(long_clip, AppLimits(max_video_seconds=5))
    with pytest.raises(UsageError, match="up to 1 MB"):
        big = tmp_path / "big.mp4"
        big.write_bytes(b"\0" * (2 * 2**20))
        check_video(big, AppLimits(max_upload_mb=1))
    with pytest.raises(VideoError):
        check_video(corrupt_video, AppLimits())
    with pytest.raises(UsageError, match="up to 100 px"):
        check_image(IMAGE, AppLimits(max_image_side=100))


def test_dance_from_a_generated_song_is_an_mp4_with_the_music(client, tmp_path: Path) -> None:
    import av
    import numpy as np
    from gradio_client import handle_file
    from videollm_app.tab_sequence_demos import generated_clip

    song = generated_clip("dance", tmp_path)
    status, video = client.predict(handle_file(str(song)), api_name="/dance")
    assert status.startswith("**Done:** 250 frames (10.0 s at 25 fps)")
    with av.open(video) as mp4:
        assert mp4.streams.video[0].codec_context.name == "h264" and mp4.streams.video[0].width == 320
        assert mp4.streams.audio[0].codec_context.name == "aac"
        assert mp4.duration / av.time_base == pytest.approx(10.0, abs=0.2)
        frames = np.stack([f.to_ndarray(format="rgb24") for _, f in zip(range(30), mp4.decode(video=0))])
    # The figure moves: successive frames differ (a frozen or blank render would not).
    assert np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3)).max() > 0.1


@pytest.mark.skipif(shutil.which("espeak-ng") is None,
                    reason="espeak-ng is not installed (Debian: apt-get install espeak-ng); the speech clip is synthesised")
def test_speech_words_from_a_generated_clip(client, tmp_path: Path) -> None:
    from gradio_client import handle_file
    from videollm_app.tab_sequence_demos import generated_clip

    from videollm.demos.speech.data import WORDS

    clip = generated_clip("speech", tmp_path)
    truth = json.loads(clip.with_suffix(".json").read_text())["words"]
    status, table = client.predict(handle_file(str(clip)), False, api_name="/speech")
    rows = table["data"]
    assert status.startswith(f"**Done:** {len(rows)} word")
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)) and {r[1] for r in rows} <= set(WORDS)
    times = [r[2] for r in rows]
    assert times == sorted(times) and times[-1] <= truth[-1]["end"] + 1.0
    # A word is reported while it is spoken or shortly after it ends, never before it starts.
    matched = [w for w in truth if any(r[1] == w["word"] and w["start"] < r[2] <= w["end"] + 0.6 for r in rows)]
    assert len(matched) >= len(truth) // 2, (rows, truth)


def test_bad_audio_gets_a_clear_error(client, tmp_path: Path) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    garbage = tmp_path / "corrupt.wav"
    garbage.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    with pytest.raises(AppError, match=r"^corrupt.wav: not a readable audio file"):
        client.predict(handle_file(str(garbage)), api_name="/dance")
    with pytest.raises(AppError, match=r"^corrupt.wav: not a readable audio file"):
        client.predict(handle_file(str(garbage)), False, api_name="/speech")
    silent = tmp_path / "empty.wav"
    silent.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00"
                       b"\x00\x7d\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00")
    with pytest.raises(AppError, match=r"^empty.wav: the audio is empty"):
        client.predict(handle_file(str(silent)), False, api_name="/speech")
    with pytest.raises(AppError, match="no audio yet"):
        client.predict(None, api_name="/dance")
    with pytest.raises(AppError, match=r"^image_000000.png: no sound in this file"):
        client.predict(handle_file(str(IMAGE)), False, api_name="/speech")
    from videollm_app.tab_sequence_demos import generated_clip

    # Music, not speech: made without espeak-ng, and the recogniser must still answer once bad uploads are behind it.
    status, _ = client.predict(handle_file(str(generated_clip("dance", tmp_path))), False, api_name="/speech")
    assert status.startswith("**Done:**"), "the server must keep working after bad uploads"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _row_at(rows: list[list], second: float) -> list:
    """The scene table's row whose span holds ``second``."""
    return next(r for r in rows if r[1] <= second < r[2])


@pytest.mark.skipif(not speech.available(), reason="faster-whisper / Whisper weights not installed")
def test_spoken_words_show_in_their_scene_answer_chat_and_find_scenes(client, talking_video) -> None:
    from gradio_client import handle_file

    talking_video, SAID = talking_video  # noqa: N806 (the constant of the fixture)
    status, timeline, gallery, _, _, table = client.predict(handle_file(str(talking_video)), api_name="/watch")
    assert "spoken words heard" in status and "Ask away" in status
    assert table["headers"] == ["Scene", "Start (s)", "End (s)", "Caption", "Speech"]  # nothing written in it
    rows = table["data"]
    assert len(rows) == len(gallery) >= 3
    first, budget = _row_at(rows, SAID[0][0] + 0.5), _row_at(rows, SAID[1][0] + 0.3)
    # Whisper's exact wording may vary with the CPU: the sentence's key words, each in its own scene's row.
    assert first[0] == 1 and {"bring", "quarterly", "report"} <= set(_words(first[4])), first
    assert budget[0] > 1 and "budget" in _words(budget[4]) and "quarterly" not in _words(budget[4]), budget
    assert all(r[4] == "" for r in rows if r[1] >= SAID[0][0] + 3 and r[2] <= SAID[1][0]), rows  # silent between
    assert "said: “" in timeline and "quarterly" in timeline  # the timeline's tooltips carry them too

    # Chat answers "what is said ..." with the recalled scene's words (recall.read_answer, as `videollm ask`).
    _, chat = client.predict("What is said in the first scene?", api_name="/ask_video")
    answer = _texts(chat)[-1][1]
    assert answer.split("\n\n")[0] == first[4], answer  # the words the table shows for that scene
    assert answer.endswith(f"*answered from the words said in scene 1 of {len(rows)} (0.0–{first[2]:.1f} s)*")
    ordinal = ["first", "second", "third", "fourth", "fifth"][budget[0] - 1]
    _, chat = client.predict(f"What is said in the {ordinal} scene?", api_name="/ask_video")
    assert _texts(chat)[-1][1].split("\n\n")[0] == budget[4]

    # Find scenes lists where the words are said, with their time, before any caption match.
    found = client.predict("quarterly report", api_name="/find_scenes")["data"]
    number, start, end, _, how = found[0]
    assert number == 1 and how == "said “quarterly report”"
    # "quarterly" is the 4th word of the sentence said from 1.0 s (about 2.3 s long): inside it, past its start.
    assert SAID[0][0] + 0.3 <= start <= SAID[0][0] + 2.0 and start < end <= SAID[0][0] + 3.0, found[0]
    number, start, _, _, how = client.predict("Budget", api_name="/find_scenes")["data"][0]
    assert (number, how) == (budget[0], "said “budget”") and SAID[1][0] <= start <= SAID[1][0] + 1.5


@pytest.mark.skipif(not ocr.available(), reason="RapidOCR is not installed (see videollm.ocr.INSTALL)")
def test_on_screen_text_shows_when_reading_is_on(client, text_video) -> None:
    from gradio_client import handle_file

    video, needle = text_video
    word = needle["answer"]
    *_, table = client.predict(handle_file(str(video)), False, api_name="/watch")  # "Read on-screen text" unticked
    assert table["headers"] == ["Scene", "Start (s)", "End (s)", "Caption"]
    # Ticked by default where RapidOCR is installed, as `--text`'s default.
    status, _, _, _, _, table = client.predict(handle_file(str(video)), api_name="/watch")
    assert "Ask away" in status
    assert table["headers"] == ["Scene", "Start (s)", "End (s)", "Caption", "On-screen text"]  # a silent video
    rows = table["data"]
    written = [r for r in rows if r[4]]
    assert [r[4] for r in written] == [word], rows  # the needle's word, in its scene only
    assert written[0][1] < needle["end_time"] and written[0][2] > needle["start_time"]

    _, chat = client.predict(needle["question"], api_name="/ask_video")  # "what word was written on the screen?"
    answer = _texts(chat)[-1][1]
    assert answer.startswith(f"{word}\n\n*answered from the text read on screen in scene {written[0][0]} of "), answer
    found = client.predict(word, api_name="/find_scenes")["data"]
    assert found[0][0] == written[0][0] and found[0][4] == f"written “{word}”"
    assert found[0][1:3] == written[0][1:3]


def test_a_saved_memorys_speech_and_text_show_when_it_is_loaded(client, app_server, tmp_path) -> None:
    from gradio_client import handle_file

    from videollm import captioning
    from videollm.memory import save_memory

    state = captioning.open_memory(app_server.model, VIDEO)
    last = state.segments[-1]
    speech.attach(state, [speech.Word(0.5, 0.9, "hello"), speech.Word(1.0, 1.4, "there"),
                          speech.Word(last.start_time + 0.1, last.start_time + 0.5, "goodbye")])
    ocr.attach(state, ["EXIT"] + [""] * (state.num_segments - 1))
    save_memory(state, tmp_path / "signals.memory.safetensors")
    status, timeline, _, _, _, table = client.predict(handle_file(str(tmp_path / "signals.memory.safetensors")),
                                                      api_name="/load_memory")
    assert table["headers"] == ["Scene", "Start (s)", "End (s)", "Caption", "Speech", "On-screen text"]
    rows = table["data"]
    assert len(rows) == state.num_segments >= 2
    assert rows[0][4:] == ["hello there", "EXIT"] and rows[-1][4:] == ["goodbye", ""]
    assert all(r[4:] == ["", ""] for r in rows[1:-1])
    _, chat = client.predict("What is written in the last scene?", api_name="/ask_video")  # the nearest with text
    assert _texts(chat)[-1][1].startswith("EXIT\n\n*answered from the text read on screen in scene 1 of")
    found = client.predict("goodbye", api_name="/find_scenes")["data"]
    assert found[0][0] == len(rows) and found[0][4] == "said “goodbye”"
