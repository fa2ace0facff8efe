"""How much motion a one-layer bridge can read from cached DINOv2 tokens, with and without frame differences.

The embedded checkpoint named the motion of held-out objects right 8 % of the time while naming shapes 90 %. This
probe isolates the input side: a bridge-shaped network (input Linear, learned frame + spatial embeddings, one
post-LN transformer layer of the embedded width/heads/FFN, a motion head pooled over tokens by log-sum-exp like the
alignment loss) is trained to name the set of motions in each scene of the training pool, then scored on held-out
scenes (shape x colour x motion triples training never saw). Metric: top-k accuracy, k = number of distinct
motions in the scene (the alignment probe's rule). Variants:

* ``plain``: the frame tokens alone (what the bridge saw before ``temporal_diff``);
* ``diff``: each frame's tokens concatenated with their change since the previous frame (zero for the first frame),
  what ``BridgeConfig.temporal_diff`` feeds the bridge (as a separate Linear added to the input projection, the same
  function class as one Linear on the concatenation).

Needs the scene-pool feature cache written by ``videollm train embedded`` (``--cache``, default
``runs/embedded/features``; 2,000 training + 150 held-out scenes, 4 frames x 16 tokens x 384). Seeded; about 4
minutes per variant on 2 cores. Run: ``python benchmarks/motion_probe.py``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor, nn

from videollm.train import TrainConfig
from videollm.train.data import scene_key
from videollm.feature_cache import FeatureCache
from videollm.train.loop import build_model_config, world_namespace
from videollm.world import VideoSpec
from videollm.world.vocab import MOTIONS


def load(cache: FeatureCache, heldout: bool, n: int) -> tuple[Tensor, Tensor]:
    """(n, L, T, D) cached tokens of pool scenes 0..n-1 and their (n, motions) multi-hot motion labels."""
    xs, ys = [], []
    for i in range(n):
        item = cache.get(scene_key(0, heldout, i))
        spec = VideoSpec.from_dict(item.meta["spec"])
        y = torch.zeros(len(MOTIONS))
        for obj in spec.scenes[0].objects:
            y[MOTIONS.index(obj.motion)] = 1.0
        xs.append(item.tokens.float())
        ys.append(y)
    return torch.stack(xs), torch.stack(ys)


class Probe(nn.Module):
    """Bridge-shaped motion reader over one scene's (L, T, D) tokens."""

    def __init__(self, diff: bool, frames: int, tokens: int, dim: int, width: int = 384, heads: int = 6,
                 ffn: int = 1536) -> None:
        super().__init__()
        self.diff = diff
        self.inp = nn.Linear(dim * (2 if diff else 1), width)
        self.frame = nn.Parameter(torch.randn(frames, 1, width) * 0.02)
        self.spatial = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.layer = nn.TransformerEncoderLayer(width, heads, ffn, 0.1, batch_first=True)
        self.head = nn.Linear(width, len(MOTIONS))

    def forward(self, x: Tensor) -> Tensor:  # (B, L, T, D) -> (B, motions)
        if self.diff:
            change = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)
            x = torch.cat([x, change], dim=-1)
        h = self.inp(x) + self.frame + self.spatial
        return self.head(self.layer(h.flatten(1, 2))).logsumexp(dim=1)


def topk_accuracy(scores: Tensor, labels: Tensor) -> float:
    hits = total = 0
    for s, y in zip(scores, labels, strict=True):
        k = int(y.sum())
        hits += int(y[s.topk(k).indices].sum())
        total += k
    return hits / total


def run(diff: bool, train: tuple[Tensor, Tensor], held: tuple[Tensor, Tensor], steps: int, seed: int) -> dict:
    torch.manual_seed(seed)
    x, y = train
    net = Probe(diff, x.shape[1], x.shape[2], x.shape[3])
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,))
        loss = nn.functional.binary_cross_entropy_with_logits(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        return {"train": topk_accuracy(net(x[:300]), y[:300]), "heldout": topk_accuracy(net(held[0]), held[1]),
                "seconds": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", default="runs/embedded/features", help="feature cache root of the embedded recipe")
    p.add_argument("--train-scenes", type=int, default=2000)
    p.add_argument("--heldout-scenes", type=int, default=150)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    # The stage-1 recipe's model config names the cache folder (its frames-per-scene override included).
    cache = FeatureCache(args.cache, world_namespace(build_model_config(TrainConfig.load("embedded"))))
    train = load(cache, False, args.train_scenes)
    held = load(cache, True, args.heldout_scenes)
    chance = topk_accuracy(torch.rand(len(held[1]), len(MOTIONS), generator=torch.Generator().manual_seed(0)),
                           held[1])
    print(f"{len(train[0])} training scenes, {len(held[0])} held-out scenes, tokens {tuple(train[0].shape[1:])}; "
          f"random scores on held-out: {chance:.3f}")
    results = {}
    for name, diff in (("plain", False), ("diff", True)):
        r = run(diff, train, held, args.steps, args.seed)
        results[name] = r
        print(f"{name:6s} motion top-k accuracy: train {r['train']:.3f}  held-out {r['heldout']:.3f}  "
              f"({r['seconds']:.0f} s)", flush=True)
    print(f"held-out: diff / plain = {results['diff']['heldout'] / results['plain']['heldout']:.2f}x")


if __name__ == "__main__":
    main()
