"""The web app's video and image chat with a vision-language backbone (``--model DIR``: a tiny random SmolVLM2)."""

from __future__ import annotations

import pytest

from .conftest import SAMPLES

VIDEO = SAMPLES / "video" / "video_000001.mp4"


@pytest.fixture(scope="module")
def backbone_app(tmp_path_factory):
    from gradio_client import Client
    from videollm_app import AppLimits, build_demo, launch, offline_environment

    from videollm.model import VideoLLM
    from videollm.official.tiny_vlm import build_tiny_smolvlm

    workdir = tmp_path_factory.mktemp("backbone-app")
    offline_environment(workdir)
    directory = build_tiny_smolvlm(workdir / "smolvlm")
    model = VideoLLM.from_pretrained(directory)
    frames = []
    encode = model.vision.encode

    def counting_encode(batch, *args, **kwargs):
        frames.append(len(batch))
        return encode(batch, *args, **kwargs)

    model.vision.encode = counting_encode
    demo = build_demo(model, limits=AppLimits(max_video_seconds=60, max_new_tokens=4), model_name=str(directory),
                      workdir=workdir)
    _, url = launch(demo, host="127.0.0.1", port=0, block=False, quiet=True)
    try:
        yield Client(url, verbose=False, download_files=str(workdir / "client")), frames
    finally:
        demo.close()


def test_watch_then_chat_with_a_backbone(backbone_app) -> None:
    from gradio_client import handle_file

    client, frames = backbone_app
    status, timeline, gallery, _, chat, table = client.predict(handle_file(str(VIDEO)), api_name="/watch")
    assert "Ask away" in status and len(gallery) >= 2 and len(table["data"]) == len(gallery)
    encoded = sum(frames)
    assert encoded <= 8 * len(gallery)  # the backbone reads at most 8 frames a scene, each once
    _, chat = client.predict("What happens in scene 2?", api_name="/ask_video")
    answer = chat[-1]["content"]
    answer = answer if isinstance(answer, str) else str(answer)
    assert f"answered from scene 2 of {len(gallery)}" in answer
    assert sum(frames) == encoded, "a question must not re-encode the video"


def test_image_chat_with_a_backbone(backbone_app) -> None:
    from gradio_client import handle_file

    client, frames = backbone_app
    before = len(frames)
    image = SAMPLES / "image" / "image_000000.png"
    _, chat = client.predict(handle_file(str(image)), "What is in the picture?", api_name="/ask_image")
    _, chat = client.predict(handle_file(str(image)), "And its colour?", api_name="/ask_image")
    assert [m["role"] for m in chat] == ["user", "assistant", "user", "assistant"]
    assert frames[before:] == [1], "the image is one frame, encoded once for the whole dialog"


def test_the_about_panel_names_the_backbone(tmp_path) -> None:
    from videollm_app.tab_about import model_line

    from videollm.official.tiny_vlm import build_tiny_internvl, build_tiny_llava_onevision

    directory = build_tiny_llava_onevision(tmp_path / "llava")
    assert "a LLaVA-OneVision video language model as the backbone" in model_line(str(directory))
    assert "an InternVL video language model" in model_line(str(build_tiny_internvl(tmp_path / "internvl")))
