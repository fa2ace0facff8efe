"""Hostile memory files and checkpoints: each kind, generated here, gives one line that names the file and says
what is wrong (``VideollmError``: the CLI prints it as ``videollm: error: ...``, exit 2), never a traceback, and
nothing in them is unpickled or trusted before it is checked."""

from __future__ import annotations

import json
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from videollm.errors import ModelError, VideollmError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "samples" / "world" / "video" / "video_000001.mp4"


@pytest.fixture(scope="module")
def memory(model, tmp_path_factory) -> Path:
    """A real memory file of the tiny model (3 scenes of the shipped sample)."""
    from videollm.memory import build_memory, save_memory

    path = tmp_path_factory.mktemp("memory") / "good.memory.safetensors"
    save_memory(build_memory(model, SAMPLE), path)
    return path


def _parts(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def _rewrite(good: Path, out: Path, tensors=None, metadata=None) -> Path:
    t, m = _parts(good)
    t.update(tensors or {})
    m.update(metadata or {})
    save_file({k: v for k, v in t.items() if v is not None}, str(out), metadata=m)
    return out


def _hostile_memory(kind: str, good: Path, d: Path) -> tuple[Path, str]:
    """A damaged or made-up memory file of the given kind, and a phrase its error must contain."""
    p = d / f"{kind}.memory.safetensors"
    t, _ = _parts(good)
    if kind == "truncated_header":
        p.write_bytes(good.read_bytes()[:6])
        return p, "not a readable video"  # not recognisable as a memory: read as a video, which it is not
    if kind == "huge_header_length":
        p.write_bytes(struct.pack("<Q", 2**62) + b'{"__metadata__": {"format": "videollm.bridge_state"}}')
        return p, "not a readable video"
    if kind == "pickle_renamed":
        p.write_bytes(pickle.dumps({"memory": [1.0, 2.0]}))  # bytes only: nothing here or in videollm unpickles it
        return p, "not a readable video"
    if kind == "truncated_data":
        data = good.read_bytes()
        p.write_bytes(data[: len(data) - 4000])
        return p, "not a safetensors file"
    if kind == "missing_tensor":
        return _rewrite(good, p, {"cache": None}), "damaged memory file"
    if kind == "extra_tensor":
        return _rewrite(good, p, {"payload": torch.zeros(2)}), "damaged memory file"
    if kind == "integer_dtype":
        return _rewrite(good, p, {"memory": t["memory"].to(torch.int32)}), "not floating point"
    if kind == "shapes_lie":
        c = t["cache"]
        return _rewrite(good, p, {"cache": torch.zeros(c.shape[0], c.shape[1], c.shape[2] + 1)}), "cache rows are"
    if kind == "wrong_rank":
        return _rewrite(good, p, {"memory": t["memory"][None]}), "3 dimensions, not 2"
    if kind == "nan_values":
        return _rewrite(good, p, {"memory": torch.full_like(t["memory"], float("nan"))}), "NaN"
    if kind == "segment_table_not_json":
        return _rewrite(good, p, metadata={"segments": "[{oops"}), "segment table"
    if kind == "segment_table_wrong_fields":
        return _rewrite(good, p, metadata={"segments": json.dumps([{"start": "x"}] * 3)}), "segment table"
    if kind == "segment_count_lies":
        segs = json.loads(_parts(good)[1]["segments"])
        return _rewrite(good, p, metadata={"segments": json.dumps(segs[:1])}), "1 segments but 3 cached"
    if kind == "captions_not_a_list":
        return _rewrite(good, p, metadata={"extra": json.dumps({"captions": "all of them"})}), "facts"
    if kind == "other_version":
        return _rewrite(good, p, metadata={"version": "99"}), "version '99' is not supported"
    if kind == "another_models_memory":
        return _rewrite(good, p, metadata={"fingerprint": "0123456789abcdef"}), "different model configuration"
    raise AssertionError(kind)


MEMORY_KINDS = ["truncated_header", "huge_header_length", "pickle_renamed", "truncated_data", "missing_tensor",
                "extra_tensor", "integer_dtype", "shapes_lie", "wrong_rank", "nan_values", "segment_table_not_json",
                "segment_table_wrong_fields", "segment_count_lies", "captions_not_a_list", "other_version",
                "another_models_memory"]


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_hostile_memory_file_is_one_line_error(kind: str, model, memory: Path, tmp_path: Path) -> None:
    from videollm.captioning import open_memory

    path, phrase = _hostile_memory(kind, memory, tmp_path)
    with pytest.raises(VideollmError) as info:
        open_memory(model, path)  # what ask, chat and search do with VIDEO_OR_MEMORY
    message = str(info.value)
    assert str(path) in message and phrase in message and "\n" not in message


def test_the_good_memory_loads(model, memory: Path) -> None:
    from videollm.memory import load_memory

    assert load_memory(memory, model).num_segments == 3


def test_damaged_memory_on_the_command_line(memory: Path, tmp_path: Path) -> None:
    """The CLI prints the one line and exits 2 (the model loads first; tiny preset)."""
    path, _ = _hostile_memory("shapes_lie", memory, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "videollm", "ask", str(path), "what is it?", "--model", "tiny"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("videollm: error:")]
    assert len(lines) == 1 and "damaged memory file" in lines[0] and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory) -> Path:
    return model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "good")


def _hostile_checkpoint(kind: str, good: Path, d: Path) -> tuple[Path, str]:
    out = d / kind
    shutil.copytree(good, out)
    weights = out / "model.safetensors"
    with safe_open(str(weights), "pt") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
    name = next(k for k in t if k.startswith("projector.") and k.endswith("weight"))
    if kind == "pickle_renamed":
        weights.write_bytes(pickle.dumps(t))
        return out, "cannot read weights"
    if kind == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
        return out, "cannot read weights"
    if kind == "missing_tensor":
        del t[name]
    elif kind == "extra_tensor":
        t["projector.backdoor.weight"] = torch.zeros(2, 2)
    elif kind == "stray_tensor":
        t["optimizer.state"] = torch.zeros(2)
    elif kind == "wrong_shape":
        t[name] = torch.zeros(t[name].shape[0] + 1, t[name].shape[1])
    elif kind == "integer_weights":
        t[name] = t[name].to(torch.int64)
    else:
        raise AssertionError(kind)
    save_file(t, str(weights))
    return out, {"missing_tensor": "do not match the config (missing 1", "extra_tensor": "unexpected 1",
                 "stray_tensor": "unexpected optimizer.state", "wrong_shape": "has shape",
                 "integer_weights": "is not floating point"}[kind]


@pytest.mark.parametrize("kind", ["pickle_renamed", "truncated", "missing_tensor", "extra_tensor", "stray_tensor",
                                  "wrong_shape", "integer_weights"])
def test_hostile_checkpoint_is_one_line_error(kind: str, checkpoint: Path, tmp_path: Path) -> None:
    from videollm.model import VideoLLM

    path, phrase = _hostile_checkpoint(kind, checkpoint, tmp_path)
    with pytest.raises(ModelError) as info:
        VideoLLM.from_pretrained(path, load_vision=False)
    message = str(info.value)
    assert phrase in message and "\n" not in message and "model.safetensors" in message


def test_the_good_checkpoint_loads(checkpoint: Path) -> None:
    from videollm.model import VideoLLM

    assert VideoLLM.from_pretrained(checkpoint, load_vision=False) is not None
