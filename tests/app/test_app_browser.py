"""The web app in a real browser: Playwright driving Debian's Chromium (never ``playwright install``).

Screenshots go to ``$VIDEOLLM_SCREENSHOTS`` (kept as CI artifacts) or the test's tmp_path.
"""

from __future__ import annotations

import os
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


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("VIDEOLLM_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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
