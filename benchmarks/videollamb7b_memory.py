"""Memory the ``videollamb-7b`` preset needs for bf16 inference at 16, 320 and 3,200 frames (one 80 GB card).

Parameters are counted by instantiating every part on the meta device (no weights allocated): the vision tower
(CLIP ViT-L/14 at 224 px, the LanguageBind video tower's architecture), the bridge and projector from the preset, and
a Llama-2-7B-shaped LM (llava-v1.5-7b). Activations, the memory cache and the LM KV cache are computed from the
shapes the code allocates; this machine has no GPU, so these are estimates, not measurements.

Run: python benchmarks/videollamb7b_memory.py
"""

from __future__ import annotations

import torch

from videollm.bridge import MemoryBridge
from videollm.config import ModelConfig
from videollm.projector import build_projector

GiB = 1024**3
BF16 = 2


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    cfg = ModelConfig.preset("videollamb-7b")
    b = cfg.bridge
    with torch.device("meta"):
        vision = CLIPVisionModel(CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                                  num_attention_heads=16, image_size=224, patch_size=14))
        lm_cfg = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                             num_key_value_heads=32, vocab_size=32001, max_position_embeddings=4096)
        lm = LlamaForCausalLM(lm_cfg)
        bridge = MemoryBridge(b)
        projector = build_projector(cfg.projector)
    params = {"vision": count(vision), "bridge": count(bridge), "projector": count(projector), "lm": count(lm)}
    weights = sum(params.values()) * BF16
    print("parameters (meta device):")
    for name, n in params.items():
        print(f"  {name:10s} {n / 1e6:10.1f} M")
    print(f"  {'total':10s} {sum(params.values()) / 1e6:10.1f} M  -> bf16 weights {weights / GiB:.2f} GiB\n")

    tokens_per_frame = b.pool * b.pool  # 144
    vision_batch = 16
    seq_v = 1 + (224 // 14) ** 2  # 257 tokens per frame
    # Vision activations at inference: a few (B, 257, 1024) buffers and one (B, 16, 257, 257) attention map at a time.
    vision_act = vision_batch * (6 * seq_v * 1024 + 16 * seq_v * seq_v) * BF16
    seg_len = b.memory_tokens + b.max_frames_per_segment * tokens_per_frame  # 32 + 8*144 = 1184
    bridge_act = (6 * seg_len * b.width + b.heads * seg_len * seg_len + seg_len * b.ffn) * BF16
    layers, hidden = lm_cfg.num_hidden_layers, lm_cfg.hidden_size
    kv_per_token = 2 * layers * hidden * BF16
    prompt_text, answer = 64, 256

    print(f"{'frames':>7} {'segments':>8} {'readout':>8} {'streamed tokens':>15} {'cache':>9} {'LM KV':>9} "
          f"{'offline tokens':>14} {'peak (streaming)':>16} {'peak (offline)':>14}")
    for frames in (16, 320, 3200):
        # Published rule: at most max_cuts + 1 segments; without a cap a scene every ~8 frames is a pessimistic bound.
        segments = max(1, frames // b.max_frames_per_segment)
        capped = min(segments, (cfg.segmentation.max_cuts or segments) + 1)
        readout = {"last_segment": b.max_frames_per_segment * tokens_per_frame,
                   "all_memories": capped * b.memory_tokens}[b.readout]
        cache = 4 * segments * b.memory_tokens * b.width * BF16  # cache + retrieval keys/values + carried memories
        kv = (readout + prompt_text + answer) * kv_per_token
        current_scene = 64 * tokens_per_frame * b.width * BF16  # streaming holds one scene's pooled tokens (<= 64 fr.)
        all_tokens = frames * tokens_per_frame * b.width * BF16  # offline path keeps every frame's pooled tokens
        logits = (readout + prompt_text) * lm_cfg.vocab_size * 4  # fp32 logits of the prefill (last position only
        # is needed; transformers computes all unless logits_to_keep is set, so count it)
        lm_act = (readout + prompt_text) * (4 * hidden + lm_cfg.intermediate_size) * BF16 + logits
        stream_peak = weights + max(vision_act, bridge_act, lm_act) + cache + kv + current_scene
        offline_peak = weights + max(vision_act, bridge_act, lm_act) + cache + kv + all_tokens
        print(f"{frames:7d} {segments:8d} {readout:8d} {current_scene / GiB:14.3f}G {cache / GiB:8.3f}G "
              f"{kv / GiB:8.3f}G {all_tokens / GiB:13.3f}G {stream_peak / GiB:15.2f}G {offline_peak / GiB:13.2f}G")
    print("\nAll three fit one 80 GB card with a wide margin; the weights dominate. No GPU here: estimates from shapes.")


if __name__ == "__main__":
    main()
