"""The VideoLLaMB release read in its own layout (``--model DIR``), proven on a tiny random release built here.

The tiny release has the real one's tensor names and config keys (written out by name below, from reading the
reference code, not taken from videollm), with small sizes: vision width 64, 2 tower layers, a 2-layer Llama of
width 64. ``release_bridge_forward`` is an independent re-implementation of the release's video forward
(SceneTiling top-3 boundaries, integer linspace subsampling, the post-LN bridge layer, retrieval over every memory
so far, GELU(proj) of the last segment) on the release's raw tensors; videollm's product path must give the same
visual tokens.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO / "data" / "samples" / "world" / "video" / "video_000000.mp4"

WIDTH, LM_WIDTH, TOWER_LAYERS, PATCH, IMAGE = 64, 64, 2, 14, 224
MEMORY, HEADS, FFN = 32, 8, 128
SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
          "detailed, and polite answers to the human's questions.")


# ------------------------------------------------------------------------------------------ the tiny release


def _bridge_tensors(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Every tensor under model.mm_projector.* of an rmt_r_transformer1x release (50), random."""
    def t(*shape):
        return torch.randn(*shape, generator=gen) * 0.2

    out = {}

    def attention(prefix):
        for p in ("q_proj", "k_proj", "v_proj", "residual.dense"):
            out[f"{prefix}.{p}.weight"], out[f"{prefix}.{p}.bias"] = t(WIDTH, WIDTH), t(WIDTH)
        out[f"{prefix}.residual.layernorm.weight"] = 1 + t(WIDTH)
        out[f"{prefix}.residual.layernorm.bias"] = t(WIDTH)

    p = "model.mm_projector.projector."
    out[p + "memory_tokens"] = t(MEMORY, WIDTH)
    out[p + "read_memory_emb"] = t(MEMORY, WIDTH)
    attention(p + "layers.0.selfattention")
    attention(p + "layers.0.crossattention")
    out[p + "layers.0.mlp.0.weight"], out[p + "layers.0.mlp.0.bias"] = t(FFN, WIDTH), t(FFN)
    out[p + "layers.0.residual.dense.weight"], out[p + "layers.0.residual.dense.bias"] = t(WIDTH, FFN), t(WIDTH)
    out[p + "layers.0.residual.layernorm.weight"], out[p + "layers.0.residual.layernorm.bias"] = 1 + t(WIDTH), t(WIDTH)
    out[p + "proj.0.weight"], out[p + "proj.0.bias"] = t(LM_WIDTH, WIDTH), t(LM_WIDTH)
    attention("model.mm_projector.retrieval.layers.0.selfattention")
    attention("model.mm_projector.retrieval.layers.0.crossattention")
    return out


def _tower_tensors(gen: torch.Generator, temporal: bool) -> dict[str, torch.Tensor]:
    """A CLIP ViT's vision tensors under their checkpoint names; the video tower adds three temporal entries a
    layer (temporal_embedding [1, 8, D], temporal_attn.{q,k,v,out}_proj, temporal_layer_norm1)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=WIDTH, intermediate_size=2 * WIDTH,
                                            num_hidden_layers=TOWER_LAYERS, num_attention_heads=1,
                                            image_size=IMAGE, patch_size=PATCH, hidden_act="gelu"))
    out = {k.removeprefix("vision_model."): v.clone() for k, v in clip.state_dict().items()
           if not k.endswith("position_ids")}
    if temporal:
        for i in range(TOWER_LAYERS):
            layer = f"encoder.layers.{i}."
            out[layer + "temporal_embedding"] = torch.randn(1, 8, WIDTH, generator=gen) * 0.1
            for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
                out[f"{layer}temporal_attn.{p}.weight"] = torch.randn(WIDTH, WIDTH, generator=gen) * 0.05
                out[f"{layer}temporal_attn.{p}.bias"] = torch.zeros(WIDTH)
            out[layer + "temporal_layer_norm1.weight"] = torch.ones(WIDTH)
            out[layer + "temporal_layer_norm1.bias"] = torch.zeros(WIDTH)
    return out


def _tokenizer(directory: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([SYSTEM, "USER: ASSISTANT: describe the video. what happens? a red star moves"] * 3,
                            trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                        pad_token="<unk>")
    tokenizer.save_pretrained(directory)
    return tokenizer


def make_release(directory: Path, seed: int = 0) -> Path:
    """Write a tiny random VideoLLaMB release (config.json, tokenizer, 2 safetensors shards + index)."""
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    tokenizer = _tokenizer(directory)
    llama = LlamaConfig(vocab_size=len(tokenizer), hidden_size=LM_WIDTH, intermediate_size=2 * LM_WIDTH,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                        max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                        tie_word_embeddings=False)
    torch.manual_seed(seed)
    lm = {k: v.clone() for k, v in LlamaForCausalLM(llama).state_dict().items()}
    config = {k: v for k, v in llama.to_dict().items() if k not in ("transformers_version", "dtype")}
    config.update({
        "architectures": ["LlavaLlamaForCausalLMRMT"], "model_type": "llava_llama",
        "mm_projector_type": "rmt_r_transformer1x", "mm_hidden_size": WIDTH, "mm_num_attention_heads": HEADS,
        "mm_intermediate_size": FFN, "mm_layer_norm_eps": 1e-12, "mm_hidden_act": "gelu", "num_frames": 16,
        "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch", "mm_patch_merge_type": "flat",
        "mm_video_tower": "./checkpoints/LanguageBind_Video_merge", "mm_image_tower": "./checkpoints/LanguageBind_Image",
        "X": ["VIDEO", "IMAGE"], "image_aspect_ratio": "pad", "mm_use_x_start_end": False,
        "mm_use_x_patch_token": False, "tokenizer_padding_side": "right", "tokenizer_model_max_length": 2048,
        "use_mm_proj": True, "torch_dtype": "float16",
    })
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    tensors = {**lm, **_bridge_tensors(gen)}
    tensors.update({f"model.video_tower.video_tower.{k}": v for k, v in _tower_tensors(gen, True).items()})
    tensors.update({f"model.image_tower.image_tower.{k}": v for k, v in _tower_tensors(gen, False).items()})
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: tensors[k].contiguous() for k in keys}, str(directory / shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in keys})
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return directory


def release_tensors(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for shard in sorted(directory.glob("*.safetensors")):
        out.update(load_file(str(shard)))
    return out


# ------------------------------------------------------------------------------------------ reference forward


def _depths(sims: list[float]) -> list[float]:
    """The release's SceneTiling depth: climb left / right while the similarity does not drop."""
    depths = []
    for i, s in enumerate(sims):
        left = s
        for j in range(i - 1, -1, -1):
            if sims[j] >= left:
                left = sims[j]
            else:
                break
        right = s
        for j in range(i + 1, len(sims)):
            if sims[j] >= right:
                right = sims[j]
            else:
                break
        depths.append(left + right - 2 * s)
    return depths


def _int_linspace(a: int, b: int, n: int) -> list[int]:
    """torch's integer linspace: the first half counted up from a, the second half down from b."""
    if n == 1:
        return [a]
    step = (b - a) / (n - 1)
    half = n // 2
    return [int(a + step * j) if j < half else int(b - step * (n - 1 - j)) for j in range(n)]


def _attend(x: torch.Tensor, kv: torch.Tensor, w: dict[str, torch.Tensor], prefix: str, eps: float) -> torch.Tensor:
    """LN(dense(MHA(x -> kv)) + x) with the release's weights (8 heads, scaled dot product)."""
    def lin(name, v):
        return v @ w[f"{prefix}.{name}.weight"].T + w[f"{prefix}.{name}.bias"]

    q, k, v = lin("q_proj", x), lin("k_proj", kv), lin("v_proj", kv)
    d = q.shape[-1] // HEADS
    heads = []
    for h in range(HEADS):
        sl = slice(h * d, (h + 1) * d)
        scores = q[:, sl] @ k[:, sl].T / math.sqrt(d)
        heads.append(torch.softmax(scores, dim=-1) @ v[:, sl])
    out = lin("residual.dense", torch.cat(heads, dim=-1)) + x
    return F.layer_norm(out, (out.shape[-1],), w[f"{prefix}.residual.layernorm.weight"],
                        w[f"{prefix}.residual.layernorm.bias"], eps)


def release_bridge_forward(features: torch.Tensor, w: dict[str, torch.Tensor], eps: float = 1e-12
                           ) -> tuple[list[int], torch.Tensor]:
    """The release's video path from layer -2 features (T, 1 + 16*16, D) (CLS first), in float64.

    Returns the segment ends and the LM's visual tokens (the last segment's GELU(proj) output, (n*144, LM width)).
    """
    w = {k: v.double() for k, v in w.items()}
    x = features.double()
    t = x.shape[0]
    cls = x[:, 0]
    sims = [float(F.cosine_similarity(cls[i], cls[i + 1], dim=0)) for i in range(t - 1)]
    depth = _depths(sims)
    top = sorted(sorted(range(len(depth)), key=lambda i: -depth[i])[:3])
    ends = [*top, t - 1]
    side = round(math.sqrt(x.shape[1] - 1))
    grid = x[:, 1:].reshape(t, side, side, -1).permute(0, 3, 1, 2)
    pooled = F.adaptive_avg_pool2d(grid, (12, 12)).flatten(2).transpose(1, 2)  # (T, 144, D)
    p = "model.mm_projector.projector."
    memory, cache, start, out = w[p + "read_memory_emb"], [], 0, None
    for end in ends:
        steps = _int_linspace(start, end, min(8, end - start + 1))
        seg = pooled[steps].reshape(-1, pooled.shape[-1])
        h = torch.cat([memory, seg])
        a = _attend(h, h, w, p + "layers.0.selfattention", eps)
        hidden = F.gelu(a @ w[p + "layers.0.mlp.0.weight"].T + w[p + "layers.0.mlp.0.bias"])
        h = F.layer_norm(hidden @ w[p + "layers.0.residual.dense.weight"].T + w[p + "layers.0.residual.dense.bias"]
                         + a, (a.shape[-1],), w[p + "layers.0.residual.layernorm.weight"],
                         w[p + "layers.0.residual.layernorm.bias"], eps)
        new_memory, tokens = h[:MEMORY], h[MEMORY:]
        out = F.gelu(tokens @ w[p + "proj.0.weight"].T + w[p + "proj.0.bias"])
        cache.append(new_memory)
        memory = _attend(new_memory, torch.cat(cache), w, "model.mm_projector.retrieval.layers.0.crossattention", eps)
        start = end + 1
    return ends, out


# ------------------------------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return make_release(tmp_path_factory.mktemp("videollamb") / "videollamb-llava-1.5-7b")


@pytest.fixture(scope="module")
def release_model(release):
    from videollm.model import VideoLLM

    return VideoLLM.from_pretrained(release)


def test_every_release_tensor_has_a_place_both_ways(release) -> None:
    from videollm.model import VideoLLM  # noqa: F401  (imports torch-side modules the layout refers to)
    from videollm.official import videollamb as layout

    tensors = release_tensors(release)
    parts = layout.check_layout(release)
    assert sorted(sum(parts.values(), [])) == sorted(tensors)
    assert len(parts["bridge"]) + len(parts["unused"]) == 50
    assert len(parts["unused"]) == 1 + 10 + 10  # memory_tokens + layer cross-attention + retriever self-attention
    # Bridge names both ways: release -> videollm -> release is the identity, and videollm's names are exactly the
    # trainable bridge + projector parameters of the model the release config makes.
    names = layout.bridge_names(1)
    assert set(names) == set(parts["bridge"])
    mapped = {names[k]: tensors[k] for k in parts["bridge"]}
    assert set(layout.to_release(mapped, 1)) == set(parts["bridge"])
    from videollm.bridge import MemoryBridge
    from videollm.projector import build_projector

    config = layout.model_config(release)
    own = {f"bridge.{k}" for k in MemoryBridge(config.bridge).state_dict()}
    own |= {f"projector.{k}" for k in build_projector(config.projector).state_dict()}
    assert set(mapped) == own
    # The towers' names are transformers' CLIP names (+ the video tower's temporal entries).
    from videollm.vision.languagebind import LanguageBindVideoModel, tower_config

    video = {k.removeprefix(layout.VIDEO_TOWER): tensors[k] for k in parts["video_tower"]}
    tower = LanguageBindVideoModel(tower_config(video))
    assert set(tower.checkpoint_names()) == set(video)
    image = layout.image_tower(release)
    assert len(image.state_dict()) == len(parts["image_tower"])


@pytest.mark.parametrize("old,new", [
    ("model.mm_projector.projector.read_memory_emb", "model.mm_projector.projector.read_memory"),
    ("model.mm_projector.retrieval.layers.0.crossattention.q_proj.weight",
     "model.mm_projector.retrieval.layers.0.cross_attention.q_proj.weight"),
    ("model.video_tower.video_tower.encoder.layers.1.temporal_attn.k_proj.bias",
     "model.video_tower.video_tower.encoder.layers.1.temporal_attention.k_proj.bias"),
    ("model.layers.1.mlp.up_proj.weight", "model.layers.1.mlp.upproj.weight"),
])
def test_a_renamed_release_tensor_is_refused(tmp_path, old, new) -> None:
    from safetensors.torch import load_file, save_file

    from videollm.errors import ModelError
    from videollm.model import VideoLLM

    release = make_release(tmp_path / "release")
    index = json.loads((release / "model.safetensors.index.json").read_text())
    shard = release / index["weight_map"].pop(old)
    tensors = load_file(str(shard))
    tensors[new] = tensors.pop(old)
    save_file(tensors, str(shard))
    index["weight_map"][new] = shard.name
    (release / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError) as err:
        VideoLLM.from_pretrained(release)
    assert new in str(err.value) or old in str(err.value)


def test_bridge_equals_the_reference_forward(release, release_model) -> None:
    """videollm's watch path on 16 frames' tower features gives the release's visual tokens to 1e-5."""
    from videollm.memory import EncodedVideo, watch

    model = release_model
    assert model.config.segmentation.top_k == 3 and model.config.recall is False
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(4, 1, 257, WIDTH, generator=gen)
    features = (base.expand(4, 4, 257, WIDTH).reshape(16, 257, WIDTH)
                + 0.3 * torch.randn(16, 257, WIDTH, generator=gen))  # 4 scenes of 4 similar frames
    ends, expected = release_bridge_forward(features, release_tensors(release))
    assert ends == [3, 7, 11, 15]
    from videollm.bridge import pool_patches

    tokens = pool_patches(features[:, 1:].reshape(16, 16, 16, WIDTH), 12)
    times = torch.arange(16).double().numpy() / 2
    video = EncodedVideo(features[:, 0].clone(), tokens, torch.arange(16).numpy(), times, 8.0)
    state = None
    for event in watch(model, video):
        state = event.state
    assert [s.end_frame for s in state.segments] == ends
    visual = model.project_state(state).double()
    assert visual.shape == expected.shape == (4 * 144, LM_WIDTH)
    assert torch.allclose(visual, expected, atol=1e-5, rtol=0), float((visual - expected).abs().max())


def test_release_segmentation_on_uneven_scenes(release, release_model) -> None:
    """Scenes of 9, 3, 1 and 11 frames (subsampled to 8) and top-3 depths that are not the neighbours' order."""
    from videollm.bridge import pool_patches
    from videollm.memory import EncodedVideo, watch

    gen = torch.Generator().manual_seed(2)
    lengths = [9, 3, 1, 11]
    base = torch.randn(len(lengths), 257, WIDTH, generator=gen)
    features = torch.cat([base[i].expand(n, 257, WIDTH) for i, n in enumerate(lengths)])
    features = features + 0.2 * torch.randn(features.shape, generator=gen)
    t = features.shape[0]
    ends, expected = release_bridge_forward(features, release_tensors(release))
    tokens = pool_patches(features[:, 1:].reshape(t, 16, 16, WIDTH), 12)
    video = EncodedVideo(features[:, 0].clone(), tokens, torch.arange(t).numpy(), torch.arange(t).double().numpy(),
                         float(t))
    state = None
    for event in watch(release_model, video):
        state = event.state
    assert [s.end_frame for s in state.segments] == ends
    visual = release_model.project_state(state).double()
    assert torch.allclose(visual, expected, atol=1e-5, rtol=0), float((visual - expected).abs().max())


def test_video_tower_mixes_frames_in_blocks_of_eight(release_model) -> None:
    """Changing frame 9 changes frames 8-15's features (same temporal block) and leaves frames 0-7's unchanged."""
    gen = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (16, 224, 224, 3), generator=gen, dtype=torch.uint8)
    out = release_model.vision.encode(frames)
    frames2 = frames.clone()
    frames2[9] = 255 - frames2[9]
    out2 = release_model.vision.encode(frames2)
    assert torch.equal(out.patches[:8], out2.patches[:8])
    assert not torch.allclose(out.patches[8], out2.patches[8])
    assert out.patches.shape == (16, 16, 16, WIDTH)


def test_prompt_is_llava_v1(release_model) -> None:
    processor = release_model.processor
    text = processor.render([{"role": "user", "content": "<video>\nWhat happens?"}], add_generation_prompt=True)
    assert text == f"<s>{SYSTEM} USER: <video>\nWhat happens? ASSISTANT:"


def test_offline_watch_samples_sixteen_frames(release_model) -> None:
    """The release's inference samples 16 frames, linspace(0, frames - 1, 16) truncated, whatever the length."""
    import numpy as np

    from videollm.io import open_video
    from videollm.memory import build_memory

    with open_video(VIDEO) as reader:
        frames = reader.meta.num_frames
    sampled = set(np.linspace(0, frames - 1, 16).astype(int).tolist())
    state = build_memory(release_model, VIDEO)
    assert len(state.segments) == 4  # top-3 boundaries
    assert all(s.start_frame in sampled and s.end_frame in sampled for s in state.segments)
    assert state.segments[0].start_frame == 0 and state.segments[-1].end_frame == frames - 1


def _videollm(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "videollm", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_caption_and_ask_from_the_command_line(release, tmp_path) -> None:
    out = tmp_path / "out"
    run = _videollm("caption", str(VIDEO), "--model", str(release), "--out", str(out))
    assert run.returncode == 0, run.stderr
    scenes = json.loads((out / f"{VIDEO.stem}.json").read_text())["scenes"]
    assert len(scenes) == 4 and all(s["caption"] for s in scenes)
    run = _videollm("ask", str(VIDEO), "What happens in the video?", "--model", str(release), "--max-new-tokens", "4")
    assert run.returncode == 0, run.stderr
    assert "scene 4 of 4" in run.stderr  # the release answers from the last segment
