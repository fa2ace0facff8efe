"""Every endpoint of the web app through ``gradio_client`` against a real server on 127.0.0.1 (tiny model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

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

    status, timeline, gallery, plot, chat = client.predict(handle_file(str(VIDEO)), api_name="/watch")
    assert "scenes in" in status and "Ask away" in status
    assert len(gallery) >= 2 and timeline.count("vl-block") == len(gallery)
    assert all(Path(item["image"]).is_file() and " s · " in item["caption"] for item in gallery)
    assert gallery[0]["caption"].startswith("0.0–")
    assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert chat == []

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
    status, timeline, _, _, chat = other.predict(handle_file(memory_file), api_name="/load_memory")
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
    for number, start, end, caption in rows:
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
