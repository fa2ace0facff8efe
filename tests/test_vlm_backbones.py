"""Small open video LMs as backbones (``--model DIR``, ``videollm.official.vlm``), on tiny random instances.

Each supported family (SmolVLM2, LLaVA-OneVision, InternVL) is built here as a tiny random model with the real classes,
processor and tokenizer layout (``videollm.official.tiny_vlm``), saved with ``save_pretrained`` and loaded through
the product's path. What is checked: a scene read through videollm gives the same next-token logits as the
family's own transformers forward on the same frames and prompt; each frame is encoded once and questions encode
nothing; ``caption``, ``stream``, ``ask``, ``chat`` and ``search`` run end to end offline, from a saved memory too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from videollm.official.tiny_vlm import TINY_BUILDERS

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO / "data" / "samples" / "world" / "video" / "video_000001.mp4"
LABELS = {"smolvlm": "SmolVLM2", "llava_onevision": "LLaVA-OneVision", "internvl": "InternVL"}


@pytest.fixture(scope="module", params=sorted(TINY_BUILDERS))
def backbone(request, tmp_path_factory):
    """(family, directory, model) for each supported family."""
    from videollm.model import VideoLLM

    directory = TINY_BUILDERS[request.param](tmp_path_factory.mktemp(request.param) / "model")
    return request.param, directory, VideoLLM.from_pretrained(directory)


@pytest.fixture
def model(backbone):
    return backbone[2]


def test_the_directory_becomes_a_bridge_free_model(backbone) -> None:
    family, directory, model = backbone
    config = model.config
    assert config.name == f"{LABELS[family]}:model"
    assert (config.vision.backend, config.bridge.layers, config.projector.kind) == ("vlm", 0, "identity")
    assert config.bridge.pool == 4 and config.lm.frame_tokens == 16  # the tiny towers give 4x4 tokens a frame
    assert config.projector.end_token == (family == "llava_onevision")
    assert not model.trained_state_dict().keys() - {"bridge.initial_memory", "projector.0.end"}
    # The LM is the loaded model's own text model, not a copy.
    from videollm.official.vlm import language_model, load_vlm

    vlm = load_vlm(directory, torch.float32)
    assert model.lm.model is language_model(vlm) and model.lm.lm_head is vlm.lm_head


def test_a_scene_reads_as_the_familys_own_forward(backbone) -> None:
    """Our scene tokens, prompt layout and LM split give the logits the family's transformers class gives for the
    same frames, with its own image/video tokens where our placeholders are (and its own pixel preprocessing)."""
    from transformers import AutoProcessor

    from videollm.lm import embed_with_visual
    from videollm.official.vlm import load_vlm

    family, directory, model = backbone
    side = model.vision.image_size
    frames = np.random.default_rng(0).integers(0, 256, (3, side, side, 3), dtype=np.uint8)
    processor = AutoProcessor.from_pretrained(directory, local_files_only=True)
    if family == "smolvlm":
        native_pixels = processor.image_processor(images=[[f] for f in frames], do_image_splitting=False,
                                                  return_tensors="pt")["pixel_values"][:, 0]
    elif family == "internvl":  # its processor gives a video's frames as images
        native_pixels = processor(text="<video>", videos=[frames], return_tensors="pt")["pixel_values"]
    else:
        native_pixels = processor.video_processor(videos=[frames], return_tensors="pt")["pixel_values_videos"][0]
    torch.testing.assert_close(model.vision.preprocess(frames), native_pixels, atol=1e-6, rtol=0)

    state = model.bridge.step(model.frame_tokens(frames))
    visual = model.project_state(state)
    assert visual.shape[0] == 3 * 16 + (family == "llava_onevision")  # LLaVA-OneVision's end-of-video vector
    ids = model.processor.encode_prompt([{"role": "user", "content": "<video>\nWhat happens?"}],
                                        visual.shape[0])["input_ids"][None]
    with torch.no_grad():
        ours = model.lm(inputs_embeds=embed_with_visual(model.lm, ids, visual, model.processor.placeholder_id))
        vlm = load_vlm(directory, torch.float32)
        native_ids = ids.clone()
        at = native_ids == model.processor.placeholder_id
        if family == "smolvlm":
            native_ids[at] = vlm.config.image_token_id
            native = vlm(input_ids=native_ids, pixel_values=native_pixels[None])
        elif family == "internvl":
            native_ids[at] = vlm.config.image_token_id
            native = vlm(input_ids=native_ids, pixel_values=native_pixels)
        else:
            native_ids[at] = vlm.config.video_token_index
            native = vlm(input_ids=native_ids, pixel_values_videos=native_pixels[None])
    assert ours.logits.abs().max() > 0.1
    torch.testing.assert_close(ours.logits[0], native.logits[0], atol=1e-5, rtol=1e-4)
    text = model.tokenizer.decode(ids[0])
    if family == "smolvlm":  # every frame between the family's own image markers
        assert text.count("<fake_token_around_image><global-img>") == 3
    if family == "internvl":  # the frames as its processor writes a video, with our placeholder for its token
        native_text = processor(text="<video>", videos=[frames], return_tensors="pt")["input_ids"][0]
        expected = model.tokenizer.decode(native_text).replace(processor.image_token, model.processor.placeholder_token)
        assert expected in text and "Frame3: <img>" in text


def test_each_frame_is_encoded_once_and_questions_encode_nothing(model, monkeypatch) -> None:
    from videollm.captioning import ask, caption_video

    encoded = []
    encode = model.vision.encode

    def counting(frames, *args, **kwargs):
        encoded.append(len(frames))
        return encode(frames, *args, **kwargs)

    monkeypatch.setattr(model.vision, "encode", counting)
    session = caption_video(model, VIDEO, max_new_tokens=3)
    scenes = session.run()
    frames_read = sum(min(8, s.end_frame - s.start_frame + 1) for s in session.state.segments)
    assert len(scenes) >= 2 and sum(encoded) <= frames_read
    seen = sum(encoded)
    for question in ("What happens in the video?", "What happens in scene 2?", "What appeared first?"):
        assert isinstance("".join(ask(model, session.state, question, max_new_tokens=3)), str)
    assert sum(encoded) == seen


def _videollm(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "videollm", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_caption_and_ask_from_the_command_line(backbone, tmp_path) -> None:
    """The README's commands for a backbone directory, as a user runs them."""
    _, directory, _ = backbone
    out = tmp_path / "out"
    run = _videollm("caption", str(VIDEO), "--model", str(directory), "--out", str(out), "--save-memory",
                    "--max-new-tokens", "4")
    assert run.returncode == 0, run.stderr
    scenes = json.loads((out / f"{VIDEO.stem}.json").read_text())["scenes"]
    assert len(scenes) >= 2 and (out / f"{VIDEO.stem}.srt").is_file()
    memory = out / f"{VIDEO.stem}.memory.safetensors"
    run = _videollm("ask", str(memory), "What happens in scene 2?", "--model", str(directory),
                    "--max-new-tokens", "4")
    assert run.returncode == 0, run.stderr
    assert f"scene 2 of {len(scenes)}" in run.stderr


def test_stream_chat_and_search_in_process(backbone, model, cached_model, capsys, tmp_path) -> None:
    from videollm.cli import main

    _, directory, _ = backbone
    memory = tmp_path / "v.memory.safetensors"
    capsys.readouterr()
    assert main(["stream", str(VIDEO), "--model", str(directory), "--save-memory", str(memory),
                 "--max-new-tokens", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) >= 2 and lines[0]["start"] == 0.0 and memory.is_file()

    # Random weights caption in noise; a real backbone's captions are stood in for, to check that search and
    # recall find a scene of a backbone's memory by its caption's words and read that scene's tokens.
    from videollm.memory import load_memory, save_memory

    state = load_memory(memory)
    captions = ["a man opens a red door", "a dog runs along the beach", "two children paint a fence"]
    state.extra["captions"] = [{"start": round(seg.start_time, 3), "end": round(seg.end_time, 3), "caption": text}
                               for seg, text in zip(state.segments, captions)]
    save_memory(state, memory)
    assert main(["search", str(memory), "dog on the beach", "--model", str(directory)]) == 0
    found = capsys.readouterr().out.splitlines()
    assert found and "a dog runs along the beach" in found[0]
    assert main(["ask", str(memory), "What does the dog do?", "--model", str(directory), "--max-new-tokens", "3"]) == 0
    assert f"scene 2 of {len(lines)}" in capsys.readouterr().err

    stdin = sys.stdin
    try:
        import io

        sys.stdin = io.StringIO("What happens?\nAnd then?\n")
        assert main(["chat", str(memory), "--model", str(directory), "--max-new-tokens", "3"]) == 0
    finally:
        sys.stdin = stdin


def test_a_directory_without_weights_or_of_another_family_is_refused(tmp_path, capsys) -> None:
    from videollm.cli import main
    from videollm.official import reader_for

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "smolvlm"}))
    assert reader_for(tmp_path) is not None
    capsys.readouterr()
    assert main(["caption", str(VIDEO), "--model", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert "no *.safetensors weights" in err and len(err.splitlines()) == 1, err
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    assert reader_for(tmp_path) is None  # read as a videollm checkpoint, which it is not
    assert main(["caption", str(VIDEO), "--model", str(tmp_path)]) != 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_hub_id_says_how_to_download_it() -> None:
    from videollm.config import resolve_model
    from videollm.errors import UsageError

    with pytest.raises(UsageError, match="huggingface-cli download HuggingFaceTB/SmolVLM2-256M-Video-Instruct "
                                         "--local-dir models/SmolVLM2-256M-Video-Instruct"):
        resolve_model("HuggingFaceTB/SmolVLM2-256M-Video-Instruct")
