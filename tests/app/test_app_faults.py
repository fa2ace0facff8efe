"""The web app under faults and hostile uploads: a deleted model folder, oversized and mistyped uploads, upload names
that try to leave the upload folder, visitors who leave, and old files swept away."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "world"
VIDEO = SAMPLES / "video" / "video_000001.mp4"

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def fragile_app(tmp_path_factory: pytest.TempPathFactory):
    """An app whose model was loaded from a folder that is deleted once loaded; uploads limited to 1 MB, a queue of
    one waiting request."""
    import torch
    from videollm_app import AppLimits, ModelLoader, build_demo, launch, offline_environment

    from videollm.model import VideoLLM

    root = tmp_path_factory.mktemp("fragile")
    torch.manual_seed(0)
    model_dir = VideoLLM.from_pretrained("tiny").save_pretrained(root / "model")
    workdir = root / "work"
    offline_environment(workdir)
    loader = ModelLoader(lambda: VideoLLM.from_pretrained(model_dir)).start()
    demo = build_demo(loader, limits=AppLimits(max_upload_mb=1, max_new_tokens=4, queue_size=1), model_name=str(model_dir),
                      workdir=workdir)
    _, url = launch(demo, host="127.0.0.1", port=0, block=False, quiet=True)
    loader.get(timeout=120)
    shutil.rmtree(model_dir)  # the model is in memory; the server must not need its folder again
    try:
        yield url.rstrip("/"), workdir, demo
    finally:
        demo.close()


@pytest.fixture
def client(fragile_app):
    from gradio_client import Client

    url, workdir, _ = fragile_app
    c = Client(url, verbose=False, download_files=False)
    yield c
    c.close()


def test_the_app_keeps_serving_after_its_model_folder_is_deleted(client) -> None:
    from gradio_client import handle_file

    status, *_ = client.predict(handle_file(str(VIDEO)), api_name="/watch")
    assert "Ask away" in status
    _, chat = client.predict("What appeared first?", api_name="/ask_video")
    assert chat[-1]["role"] == "assistant"


def test_oversized_and_mistyped_uploads_get_a_message(client, tmp_path: Path) -> None:
    from gradio_client import handle_file

    big = tmp_path / "big.mp4"
    big.write_bytes(VIDEO.read_bytes() + os.urandom(2 * 2**20))  # 2 MB over a 1 MB limit
    with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):
        client.predict(handle_file(str(big)), api_name="/watch")  # gradio_client checks before sending
    import httpx

    response = httpx.post(f"{client.src.rstrip('/')}/gradio_api/upload", timeout=30,
                          files=[("files", ("big.mp4", big.read_bytes(), "video/mp4"))])  # the server checks too
    assert response.status_code == 413 and "maximum allowed size of 1048576 bytes" in response.text
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n")
    with pytest.raises(Exception, match=r"^notes.mp4: not a readable video"):
        client.predict(handle_file(str(text)), api_name="/watch")
    status, *_ = client.predict(handle_file(str(VIDEO)), api_name="/watch")  # and it keeps serving
    assert "Ask away" in status


def test_a_full_queue_refuses_with_a_message_and_serves_the_rest(fragile_app) -> None:
    import threading

    from gradio_client import Client, handle_file

    url, _, _ = fragile_app
    visitors = [Client(url, verbose=False, download_files=False) for _ in range(6)]
    upload = handle_file(str(VIDEO))
    outcomes: list[str] = []
    start = threading.Barrier(len(visitors))

    def visit(client) -> None:
        start.wait()
        try:
            status, *_ = client.predict(upload, api_name="/watch")
            outcomes.append("answered" if "Ask away" in status else status)
        except Exception as err:  # noqa: BLE001 (the message is what is checked)
            outcomes.append(str(err))

    threads = [threading.Thread(target=visit, args=(c,)) for c in visitors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in visitors:
        c.close()
    assert set(outcomes) == {"answered", "Queue is full! Please try again."}, outcomes


def test_upload_names_cannot_leave_the_upload_folder(fragile_app, tmp_path: Path) -> None:
    import httpx
    from gradio.utils import get_upload_folder

    url, _, _ = fragile_app
    uploads = Path(get_upload_folder()).resolve()  # GRADIO_TEMP_DIR: the first app served in this process set it
    payload = VIDEO.read_bytes()
    names = ["../../escaped.mp4", "..\\..\\escaped2.mp4", "/etc/escaped3.mp4", "a/../../escaped4.mp4"]
    files = [("files", (name, payload, "video/mp4")) for name in names]
    response = httpx.post(f"{url}/gradio_api/upload", files=files, timeout=30)
    assert response.status_code == 200, response.text
    stored = [Path(p).resolve() for p in response.json()]
    assert len(stored) == len(names)
    for path in stored:
        assert path.is_relative_to(uploads) and path.is_file(), path
        assert path.read_bytes() == payload
    for name in ("escaped.mp4", "escaped2.mp4", "escaped4.mp4"):
        assert not list(uploads.parent.glob(name)) and not list(uploads.parent.parent.glob(name))
    assert not Path("/etc/escaped3.mp4").exists()


def test_a_visitor_who_leaves_has_their_memory_freed(fragile_app) -> None:
    from gradio_client import Client, handle_file
    from videollm_app.ui import forget_visitor

    url, _, demo = fragile_app
    assert any(getattr(fn.fn, "__name__", "") == "forget_visitor" and any(t[1] == "unload" for t in fn.targets)
               for fn in demo.fns.values()), "forget_visitor must run when a visitor leaves"
    visitor = Client(url, verbose=False, download_files=False)
    visitor.predict(handle_file(str(VIDEO)), api_name="/watch")
    holder = demo.server_app.state_holder
    session = holder.session_data[visitor.session_hash]
    assert any(type(v).__name__ == "ChatSession" for v in session.state_data.values())

    class Request:  # what Gradio hands an unload handler: the session and the HTTP request of its app
        session_hash = visitor.session_hash
        request = type("HTTPRequest", (), {"app": demo.server_app})()

    forget_visitor(Request())
    assert not any(type(v).__name__ == "ChatSession" for v in session.state_data.values())
    visitor.close()


def test_old_files_are_swept(tmp_path: Path) -> None:
    from videollm_app.media import sweep

    old = tmp_path / "abc123" / "old.mp4"
    old.parent.mkdir()
    old.write_bytes(b"x")
    fresh = tmp_path / "scene-1.jpg"
    fresh.write_bytes(b"y")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert sweep(tmp_path, 3600) == 1
    assert not old.exists() and not old.parent.exists() and fresh.exists() and tmp_path.is_dir()


def test_serve_limits_are_checked_by_their_option_names(capsys) -> None:
    from videollm.cli import main

    assert main(["serve", "--keep-minutes", "0", "--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == "videollm: error: --keep-minutes must be > 0, got 0.0"
    assert main(["serve", "--concurrency", "0", "--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == "videollm: error: --concurrency must be >= 1, got 0"
