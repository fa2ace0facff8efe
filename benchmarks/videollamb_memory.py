"""Memory of the published VideoLLaMB model (``videollamb-official`` preset) at 16, 320 and 3,200 frames:
videollm offline and streaming against the release's own approach of encoding every frame at once.

Parameters are counted by building every part at full size on the meta device (no weights allocated): LanguageBind's
video tower (CLIP ViT-L/14 with a temporal attention per layer, ``videollm.vision.languagebind``), the bridge and
projector of the preset, and the Llama-2-7B LM (vocabulary 32,000 + videollm's placeholder row). The image tower
that the release also stores (303 M) is counted apart: videollm does not load it. Activations, caches and kept
tokens are computed from the shapes each path allocates (bf16 weights and activations; videollm keeps pooled
tokens, CLS features and memories in float32). With no GPU these are estimates, labelled as such.

The three paths for T sampled frames:

- release: the whole clip through the tower in one call with every layer's hidden states kept (T x 257 x 1024 per
  layer, 25 of them), all T frames' pooled tokens, then 4 segments (top-3 boundaries), the LM on the last one;
- videollm offline: the same tiling; the scan encodes 16 frames at a time and keeps each frame's CLS (and the pooled
  tokens of up to 512 frames, re-read and re-encoded past that), then one bridge step per segment;
- videollm streaming: frames encoded as they arrive; only the open scene's pooled tokens are held (at most 60 s at
  2 fps), and each closed scene adds one memory (32 x 1024) to the cache (a scene every 8 frames, pessimistic).

``--cpu-frames N`` also runs the full-size tower and bridge with random weights on this machine's CPU (float32)
over N frames and prints the measured frames per second.

Run: python benchmarks/videollamb_memory.py [--cpu-frames 16]
"""

from __future__ import annotations

import argparse
import time

import torch

GiB = 1024**3
BF16, FP32 = 2, 4
PROMPT, ANSWER = 64, 256


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tower_config():
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                            image_size=224, patch_size=14, hidden_act="gelu")


def build(device: str):
    from transformers import CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    from videollm.bridge import MemoryBridge
    from videollm.config import ModelConfig
    from videollm.projector import build_projector
    from videollm.vision.languagebind import LanguageBindVideoModel

    cfg = ModelConfig.preset("videollamb-official")
    with torch.device(device):
        video = LanguageBindVideoModel(tower_config())
        bridge = MemoryBridge(cfg.bridge)
        projector = build_projector(cfg.projector)
        lm = image = None
        if device == "meta":
            image = CLIPVisionModel(tower_config())
            lm = LlamaForCausalLM(LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                              num_attention_heads=32, num_key_value_heads=32, vocab_size=32001,
                                              max_position_embeddings=4096))
    return cfg, video, image, bridge, projector, lm


def estimate() -> None:
    cfg, video, image, bridge, projector, lm = build("meta")
    b = cfg.bridge
    params = {"video tower": count(video), "bridge": count(bridge), "projector": count(projector), "LM": count(lm)}
    weights = sum(params.values()) * BF16
    print("parameters (full size, meta device):")
    for name, n in params.items():
        print(f"  {name:12s} {n / 1e6:9.1f} M")
    print(f"  {'loaded':12s} {sum(params.values()) / 1e6:9.1f} M -> bf16 weights {weights / GiB:.2f} GiB "
          f"(+ image tower {count(image) / 1e6:.1f} M stored in the release, not loaded)\n")

    seq, width, layers = 257, 1024, 24
    per_frame_hidden = seq * width * BF16
    # One tower forward over B frames: a few live (B, 257, 1024) buffers, one (B, 16, 257, 257) score map, the MLP's
    # (B, 257, 4096); the temporal attention's maps are (257 * B/8, 16, 8, 8), small.
    def tower_act(frames: int) -> float:
        return frames * (6 * per_frame_hidden + 16 * seq * seq * BF16 + seq * 4096 * BF16)

    tokens = b.pool * b.pool  # 144
    pooled = tokens * width  # elements per frame
    seg_len = b.memory_tokens + b.max_frames_per_segment * tokens  # 1184
    bridge_act = (6 * seg_len * b.width + b.heads * seg_len * seg_len + seg_len * b.ffn) * FP32
    hidden = 4096
    kv_token = 2 * 32 * hidden * BF16
    readout = b.max_frames_per_segment * tokens  # the last segment: at most 8 frames
    lm_peak = (readout + PROMPT) * (4 * hidden + 11008) * BF16 + (readout + PROMPT) * 32001 * FP32 \
        + (readout + PROMPT + ANSWER) * kv_token
    memory = b.memory_tokens * b.width * FP32

    print("estimated peak memory beyond the weights (GiB), bf16; no GPU here, from shapes:")
    largest = None
    print(f"{'frames':>7} | {'release: all frames at once':>28} | {'videollm offline':>16} | "
          f"{'videollm streaming':>18} | {'release / streaming':>19}")
    for frames in (16, 320, 3200):
        pixels = frames * 3 * 224 * 224 * BF16
        hidden_states = (layers + 1) * frames * per_frame_hidden  # output_hidden_states over the whole clip
        release = pixels + hidden_states + tower_act(frames) + frames * pooled * BF16 + bridge_act + lm_peak
        scan_batch = 16
        kept = min(frames, 512) * pooled * FP32 + frames * width * FP32  # scan: pooled tokens (<= 512) + every CLS
        offline = scan_batch * 3 * 224 * 224 * FP32 + tower_act(scan_batch) + kept + 4 * memory + bridge_act \
            + lm_peak
        open_scene = min(frames, 120) * pooled * FP32  # at most 60 s at 2 fps
        scenes = max(1, frames // 8)
        streaming = 8 * 3 * 224 * 224 * FP32 + tower_act(8) + open_scene + scenes * memory * 2 + bridge_act \
            + lm_peak
        largest = (release, streaming)
        print(f"{frames:7d} | {release / GiB:28.2f} | {offline / GiB:16.2f} | {streaming / GiB:18.2f} | "
              f"{release / streaming:18.1f}x")
    release, streaming = largest
    card = 80e9 / GiB
    print(f"\nweights add {weights / GiB:.2f} GiB to every column. At 3,200 frames the release needs "
          f"{(weights + release) / GiB:.1f} GiB in all ({'more' if weights + release > card * GiB else 'less'} than "
          f"an 80 GB card's {card:.1f} GiB), videollm streaming {(weights + streaming) / GiB:.1f} GiB.")


def measure_cpu(frames: int) -> None:
    """Full-size tower + bridge with random weights on the CPU (float32): frames per second, measured."""
    from videollm.bridge import pool_patches
    from videollm.vision.languagebind import LanguageBindVideoEncoder

    torch.manual_seed(0)
    cfg, video, _, bridge, projector, _ = build("cpu")
    encoder = LanguageBindVideoEncoder(video, layer=-2)
    bridge.eval()
    pixels = torch.randint(0, 256, (frames, 224, 224, 3), dtype=torch.uint8)
    t0 = time.perf_counter()
    out = encoder.encode(pixels, batch_size=8)
    t_tower = time.perf_counter() - t0
    tokens = pool_patches(out.patches.float(), cfg.bridge.pool)
    state = bridge.init_state(keep_scenes=False)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for lo in range(0, frames, 8):
            bridge.step(tokens[lo:lo + 8], state, start_time=float(lo), end_time=float(lo + 8), start_frame=lo,
                        end_frame=min(lo + 8, frames) - 1)
        projector(bridge.readout(state))
    t_bridge = time.perf_counter() - t0
    threads = torch.get_num_threads()
    print(f"\nmeasured on this CPU ({threads} threads, float32, random full-size weights), {frames} frames:")
    print(f"  video tower {frames / t_tower:.2f} frames/s ({t_tower:.1f} s); bridge + projector "
          f"{frames / t_bridge:.1f} frames/s ({t_bridge:.2f} s, segments of 8 frames)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-frames", type=int, default=0, help="also measure tower + bridge on the CPU")
    args = parser.parse_args()
    estimate()
    if args.cpu_frames:
        measure_cpu(args.cpu_frames)


if __name__ == "__main__":
    main()
