"""The web app in a real browser: Playwright driving Debian's Chromium (never ``playwright install``).

Screenshots go to ``$VIDEOLLM_SCREENSHOTS`` (kept as CI artifacts) or the test's tmp_path.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "world"
VIDEO = SAMPLES / "video" / "video_000000.mp4"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason="Debian chromium is not installed (apt-get install chromium); browser tests skipped"),
]


def _speech_available() -> bool:
    from videollm import speech

    return speech.available()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("VIDEOLLM_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_y4m(video: Path, out: Path) -> float:
    """Write ``video``'s frames as YUV4MPEG2 (what Chromium's fake camera plays, looping), the decoded 4:2:0 planes
    as they are; returns the video's duration in seconds."""
    import av
    import numpy as np

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        planes = [frame.to_ndarray(format="yuv420p") for frame in container.decode(stream)]  # (H * 3/2, W) each
    height, width = planes[0].shape[0] * 2 // 3, planes[0].shape[1]
    with open(out, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 C420jpeg\n".encode())
        f.writelines(b"FRAME\n" + np.ascontiguousarray(plane).tobytes() for plane in planes)
    return len(planes) / float(rate)


@pytest.fixture
def page(app_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1360, "height": 1000})
        page = context.new_page()
        page.hosts = set()
        page.on("request", lambda req: page.hosts.add(urlparse(req.url).hostname or urlparse(req.url).scheme))
        page.set_default_timeout(60_000)
        page.goto(app_server.url)
        page.get_by_role("button", name="Watch & caption").wait_for()
        try:
            yield page
        finally:
            browser.close()


def test_video_chat_in_the_browser(page, app_server, shots: Path, corrupt_video: Path) -> None:
    page.screenshot(path=str(shots / "01-home.png"), full_page=True)

    upload = page.locator("#vl-video input[type=file]")
    t0 = time.perf_counter()
    upload.set_input_files(str(VIDEO))
    page.locator("#vl-video video").wait_for()
    page.get_by_role("button", name="Watch & caption").click()
    page.locator("#vl-gallery").get_by_text("0.0–", exact=False).first.wait_for()
    first_caption = time.perf_counter() - t0
    page.get_by_text("Ask away").wait_for()
    print(f"upload to first caption in the browser (tiny model): {first_caption:.2f} s")
    page.screenshot(path=str(shots / "02-scenes.png"), full_page=True)
    assert page.locator("#vl-timeline .vl-block").count() >= 2
    assert page.locator("#vl-plot img").count() == 1

    box = page.get_by_placeholder("Ask about the video")
    box.fill("What appeared first?")
    page.locator("#vl-send").click()
    chat = page.locator("#vl-chat")
    chat.get_by_text("What appeared first?").wait_for()
    chat.locator(".bot").last.wait_for()
    page.wait_for_function("() => !document.querySelector('#vl-chat .pending')")
    assert chat.locator(".bot").last.inner_text().strip()
    chat.locator(".bot em").get_by_text("answered from scene 1 of", exact=False).wait_for()  # the recalled scene
    page.screenshot(path=str(shots / "03-chat.png"), full_page=True)
    # Find scenes: the tiny model's captions are empty, so nothing matches and the page says so
    page.get_by_text("Find scenes").click()
    page.get_by_placeholder("What to look for").fill("red circle")
    page.get_by_role("button", name="Find", exact=True).click()
    page.get_by_text("No scene's caption holds any of the words", exact=False).wait_for()

    page.reload()
    page.get_by_role("button", name="Watch & caption").wait_for()
    page.locator("#vl-video input[type=file]").set_input_files(str(corrupt_video))
    page.get_by_role("button", name="Watch & caption").click()
    page.get_by_text("corrupt.mp4: not a readable video").wait_for()
    page.screenshot(path=str(shots / "04-error.png"), full_page=True)

    page.get_by_role("tab", name="About").click()
    page.get_by_text("What the embedded model knows").wait_for()
    assert "bridge and projector are not trained" in page.locator("#vl-about").inner_text()
    page.screenshot(path=str(shots / "05-about.png"), full_page=True)
    assert page.hosts <= {"127.0.0.1", "data", "blob"}, f"requests left the machine: {page.hosts}"


@pytest.mark.skipif(not _speech_available(), reason="faster-whisper / Whisper weights not installed")
def test_the_scene_table_shows_what_is_said(page, talking_video, shots: Path) -> None:
    video, said = talking_video
    from videollm import ocr

    # Ticked by default exactly where RapidOCR is installed (as `--text`); the video shows no writing.
    assert page.get_by_role("checkbox", name="Read on-screen text").is_checked() is ocr.available()
    page.locator("#vl-video input[type=file]").set_input_files(str(video))
    page.locator("#vl-video video").wait_for()
    page.get_by_role("button", name="Watch & caption").click()
    page.get_by_text("Ask away").wait_for()
    table = page.locator("#vl-scenes")
    assert table.get_by_role("columnheader", name="Speech").count() >= 1
    # The first scene's row carries the first sentence, beside its caption.
    first_row = table.locator("[role=gridcell][data-row='0']")
    assert "quarterly report" in " ".join(first_row.all_inner_texts()).lower(), first_row.all_inner_texts()
    assert "budget" in table.inner_text().lower()
    page.screenshot(path=str(shots / "05b-speech-table.png"), full_page=True)


def test_planning_and_live_tabs_in_the_browser(page, shots: Path) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Planning").click()
    page.locator("#vl-plan-examples tbody tr").first.click()
    # Clicking an example fills the inputs asynchronously (the video is copied first): rank only once they are set.
    expect(page.get_by_role("textbox", name="Task goal")).not_to_have_value("", timeout=60_000)
    expect(page.get_by_role("textbox", name="Candidate next steps (one per line)")).not_to_have_value("")
    page.locator("#vl-plan-video video").wait_for()
    page.get_by_role("button", name="Rank next steps").click()
    page.get_by_text("Most likely next step").wait_for()
    page.screenshot(path=str(shots / "06-planning.png"), full_page=True)

    page.get_by_role("tab", name="Live captions").click()
    page.locator("#vl-live-video input[type=file]").set_input_files(str(VIDEO))
    page.locator("#vl-live-video video").wait_for()
    page.get_by_role("checkbox", name="Play at the video's own pace").uncheck()
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Stream ended").wait_for()
    page.screenshot(path=str(shots / "07-live.png"), full_page=True)
    assert page.hosts <= {"127.0.0.1", "data", "blob"}, f"requests left the machine: {page.hosts}"


def test_sequence_demos_tab_in_the_browser(page, shots: Path) -> None:
    from videollm.demos.speech.data import WORDS

    page.get_by_role("tab", name="Sequence demos").click()
    page.get_by_role("button", name="Use a generated clip").click()
    # The first word is in the table as soon as it is recognised; the status line then counts them all.
    word_cells = page.locator("#vl-speech-table [role=gridcell][data-col='1']")
    word_cells.first.wait_for()
    page.locator("#vl-speech-status").get_by_text("Done:").wait_for()
    words = [w.strip() for w in word_cells.all_inner_texts()]
    assert words and set(words) <= set(WORDS), words
    assert page.locator("#vl-speech-audio audio, #vl-speech-audio .waveform-container").count() >= 1
    page.screenshot(path=str(shots / "08-speech.png"), full_page=True)
    assert page.hosts <= {"127.0.0.1", "data", "blob"}, f"requests left the machine: {page.hosts}"


@pytest.fixture
def camera_page(app_server, tmp_path: Path):
    """A page whose camera is Chromium's fake device playing the sample video (looping); yields (page, duration)."""
    from playwright.sync_api import sync_playwright

    duration = write_y4m(VIDEO, tmp_path / "camera.y4m")
    camera = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-video-capture={tmp_path / 'camera.y4m'}"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS + camera, headless=True)
        page = browser.new_context(viewport={"width": 1360, "height": 1000}).new_page()
        page.hosts = set()
        page.first_frame = []  # the first camera frame the page sent, as a data URL
        page.on("request", lambda req: _note_request(page, req))
        page.set_default_timeout(60_000)
        page.goto(app_server.url)
        page.get_by_role("button", name="Watch & caption").wait_for()
        try:
            yield page, duration
        finally:
            browser.close()


def _note_request(page, req) -> None:
    page.hosts.add(urlparse(req.url).hostname or urlparse(req.url).scheme)
    if not page.first_frame and "/queue/join" in req.url and "data:image/jpeg" in (req.post_data or ""):
        page.first_frame.append(re.search(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", req.post_data).group(1))


def _video_time_of(jpeg_b64: str) -> float:
    """The time in the sample video of the frame a JPEG shows: the frame nearest to it in pixels."""
    import numpy as np
    from PIL import Image

    from videollm.io import open_video

    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(jpeg_b64))).convert("RGB"), dtype=np.float32)
    with open_video(VIDEO) as reader:
        frames = reader.read(np.arange(reader.meta.num_frames)).astype(np.float32)  # (N, H, W, 3)
        fps = reader.meta.fps
    return int(np.argmin(((frames - shown) ** 2).mean(axis=(1, 2, 3)))) / fps


def test_live_captions_from_the_visitors_camera(camera_page, app_server, shots: Path) -> None:
    """The sample video played by a fake camera, streamed from the browser: the same scenes as ``videollm stream``."""
    from videollm import captioning

    page, duration = camera_page
    reference = [(sc.start, sc.end, sc.caption) for sc in captioning.stream_captions(app_server.model, str(VIDEO))]
    truth = json.loads(VIDEO.with_suffix(".json").read_text())["cut_times"]

    page.get_by_role("tab", name="Live captions").click()
    page.get_by_role("tab", name="Your camera, live").click()
    page.locator("#vl-live-status").get_by_text("allow the camera", exact=False).wait_for()
    camera = page.locator("#vl-live-camera")
    camera.get_by_text("Click to Access Webcam").click()  # the fake camera starts its file here
    camera.get_by_role("button", name="capture photo").click()  # Record: frames are sent from now on
    page.locator("#vl-live-status").get_by_text("Live from your camera", exact=False).wait_for()
    assert page.first_frame, "the first camera frame was not seen"
    # Stream time 0 is the first frame the server got; which moment of the video it shows is found by its pixels.
    offset = _video_time_of(page.first_frame[0])
    assert offset < 3.0, f"the camera ran {offset:.2f} s before Record"

    # Stop before the camera's file loops back to its start (that would be a new scene): 0.5 s before its end.
    until = duration - offset - 0.5
    deadline = time.monotonic() + until + 30
    while time.monotonic() < deadline:
        streamed = re.search(r"([0-9.]+) s streamed", page.locator("#vl-live-status").inner_text() or "")
        if streamed and float(streamed.group(1)) >= until - 0.3:
            break
        time.sleep(0.1)
    page.screenshot(path=str(shots / "09-camera-live.png"), full_page=True)
    page.get_by_role("button", name="Stop the camera and caption the last scene").click()
    page.locator("#vl-live-status").get_by_text("Camera stream ended", exact=False).wait_for()
    camera.get_by_text("Click to Access Webcam").wait_for()  # the camera was released
    page.screenshot(path=str(shots / "10-camera-done.png"), full_page=True)

    table = page.locator("#vl-live-table")
    column = [table.locator(f"[role=gridcell][data-col='{c}']").all_inner_texts() for c in range(5)]
    rows = [(float(s), float(e), c.strip(), float(lat)) for s, e, c, lat in zip(*column[1:], strict=True)]
    print(f"offset {offset:.3f} s; live scenes (video time): "
          f"{[(round(s + offset, 2), round(e + offset, 2)) for s, e, _, _ in rows]}; "
          f"videollm stream: {[(round(s, 2), round(e, 2)) for s, e, _ in reference]}; cuts {truth}")
    assert [int(n) for n in column[0]] == list(range(1, len(rows) + 1))
    assert len(rows) == len(reference), (rows, reference)
    for (_, end, _, _), (_, ref_end, _), cut in zip(rows[:-1], reference[:-1], truth, strict=True):
        assert abs(end + offset - ref_end) <= 1.0 and abs(end + offset - cut) <= 1.0, (end + offset, ref_end, cut)
    assert rows[-1][1] + offset >= duration - 1.5  # the open scene was captioned when the stream stopped
    assert [c for *_, c, _ in rows] == [c for *_, c in reference]
    assert all(latency >= 0 for *_, latency in rows)
    assert page.locator("#vl-live-download").get_by_text(".safetensors", exact=False).count() >= 1
    assert page.hosts <= {"127.0.0.1", "data", "blob"}, f"requests left the machine: {page.hosts}"
