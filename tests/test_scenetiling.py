"""SceneTiling: the vectorised rule equals the published nested loops bit for bit; streaming, metrics, plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scenetiling
import scenetiling.numpy_rule
from scenetiling import synthetic
from scenetiling.reference import (
    boundaries_reference,
    depth_scores_reference,
    segment_ends_reference,
    similarities_reference,
)

torch.set_num_threads(1)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def scene_features(seed: int, t: int, d: int, noise: float, lo: int = 10, hi: int = 120) -> tuple[torch.Tensor, list[int]]:
    """Piecewise-constant scene means (sharing a common component) plus Gaussian noise; returns features, true cuts."""
    return synthetic.scene_features(seed, t, d, noise, lo, hi)


# Exact-valued similarities (multiples of 1/8) so that plateaus and equal depths really are equal.
eighths = st.integers(-8, 8).map(lambda v: v / 8)
exact_sims = st.lists(eighths, min_size=0, max_size=60).map(lambda v: torch.tensor(v, dtype=torch.float32))
float_sims = st.lists(
    st.floats(-1, 1, allow_nan=False, width=32), min_size=0, max_size=60
).map(lambda v: torch.tensor(v, dtype=torch.float32))


# ---------------------------------------------------------------- similarities
@SETTINGS
@given(
    t=st.integers(0, 40),
    d=st.integers(1, 70),
    seed=st.integers(0, 2**31),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]),
)
def test_similarities_bitwise_equal_published(t: int, d: int, seed: int, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(seed)
    feats = (torch.randn(t, d, generator=g) * torch.rand(t, 1, generator=g) * 10).to(dtype)
    assert_same(scenetiling.similarities(feats), similarities_reference(feats))


def test_similarities_chunk_seams_and_numpy() -> None:
    feats = torch.randn(5000, 7, dtype=torch.float64)
    assert_same(scenetiling.similarities(feats), similarities_reference(feats))
    assert_same(scenetiling.similarities(feats.numpy()), similarities_reference(feats))


def test_zero_frames_have_zero_similarity() -> None:
    feats = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    assert scenetiling.similarities(feats).tolist() == [0.0, 0.0]


# ---------------------------------------------------------------- depth scores
@SETTINGS
@given(sims=st.one_of(exact_sims, float_sims))
def test_depth_equals_nested_loops(sims: torch.Tensor) -> None:
    assert_same(scenetiling.depth_scores(sims), depth_scores_reference(sims))


@pytest.mark.parametrize(
    "values",
    [
        [],
        [0.5],
        [0.5, 0.5],
        [0.25, 0.25, 0.25, 0.25],  # constant
        [i / 8 for i in range(9)],  # increasing
        [1 - i / 8 for i in range(9)],  # decreasing
        [1.0, 0.5, 0.5, 0.5, 1.0, 0.25, 0.25, 1.0],  # valley plateaus
        [0.5, 1.0, 1.0, 0.5, 1.0, 1.0, 0.5],  # peak plateaus
        [0.0, float("nan"), 0.5, 1.0, float("nan"), 0.25],  # NaN stops a climb, as in the loop
    ],
)
def test_depth_adversarial(values: list[float]) -> None:
    sims = torch.tensor(values, dtype=torch.float32)
    assert_same(scenetiling.depth_scores(sims), depth_scores_reference(sims))


def test_depth_known_values() -> None:
    # Valley at index 2: left climb 0.5 -> 1.0 stops at 0.25 (decrease); right climb reaches the array end.
    sims = torch.tensor([0.25, 1.0, 0.5, 0.75, 0.875])
    assert scenetiling.depth_scores(sims).tolist() == [0.75, 0.0, 0.875, 0.125, 0.0]


# ---------------------------------------------------------------- cut selection
@SETTINGS
@given(
    sims=st.one_of(exact_sims, float_sims),
    alpha=st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]),
    max_cuts=st.one_of(st.none(), st.integers(0, 6)),
)
def test_threshold_and_trim_equal_published(sims: torch.Tensor, alpha: float, max_cuts: int | None) -> None:
    # Exact-valued sims give many equal depths, so trimming to max_cuts really has ties to break.
    depth = depth_scores_reference(sims)
    got = scenetiling.boundaries_from_depth(scenetiling.depth_scores(sims), alpha, max_cuts)
    assert got == boundaries_reference(depth, alpha, max_cuts)
    assert got == sorted(set(got))
    if max_cuts is not None:
        assert len(got) <= max_cuts


@SETTINGS
@given(sims=st.one_of(exact_sims, float_sims), k=st.integers(0, 70))
def test_top_k_equals_published(sims: torch.Tensor, k: int) -> None:
    depth = depth_scores_reference(sims)
    got = scenetiling.boundaries_from_depth(depth, top_k=k)
    assert got == boundaries_reference(depth, top_k=k)
    assert len(got) == min(k, depth.shape[0])


def test_trim_with_many_ties_matches_topk() -> None:
    # 40 equal deep valleys, only 15 may stay: the choice must be torch.topk's, as in the published code.
    sims = torch.tensor([1.0, 0.0] * 40 + [1.0])
    depth = scenetiling.depth_scores(sims)
    got = scenetiling.boundaries_from_depth(depth)
    assert len(got) == 15
    assert got == torch.topk(depth, 15).indices.sort().values.tolist()
    assert got == boundaries_reference(depth_scores_reference(sims))


def test_threshold_is_strict_and_unbiased() -> None:
    depth = torch.tensor([0.0, 0.0, 0.0, 1.0])
    std, mean = torch.std_mean(depth)  # unbiased: std = 0.5
    assert scenetiling.threshold(depth, 0.5).item() == pytest.approx(0.25 + 0.25)
    assert scenetiling.threshold(depth, 0.5).item() == (mean + 0.5 * std).item()
    # alpha = 1.5 puts the threshold exactly on the deepest value: strict ">" means no cut.
    assert scenetiling.boundaries_from_depth(depth, alpha=1.5) == []
    assert scenetiling.boundaries_from_depth(depth, alpha=1.4) == [3]


# ---------------------------------------------------------------- segment_ends end to end
@SETTINGS
@given(
    t=st.integers(0, 50),
    d=st.integers(1, 6),
    seed=st.integers(0, 2**31),
    palette=st.integers(1, 4),
    max_cuts=st.sampled_from([15, 3, None]),
)
def test_segment_ends_equal_published(t: int, d: int, seed: int, palette: int, max_cuts: int | None) -> None:
    # Frames drawn from a small palette of vectors: repeated frames give exactly equal similarities and depths.
    g = torch.Generator().manual_seed(seed)
    colours = torch.randint(-2, 3, (palette, d), generator=g).float()
    feats = colours[torch.randint(0, palette, (t,), generator=g)]
    got = scenetiling.segment_ends(feats, max_cuts=max_cuts)
    assert got == segment_ends_reference(feats, max_cuts=max_cuts)
    if t:
        assert got[-1] == t - 1 and got == sorted(set(got))


@pytest.mark.parametrize("t", [0, 1, 2, 3])
def test_tiny_inputs(t: int) -> None:
    feats = torch.randn(t, 4)
    got = scenetiling.segment_ends(feats)
    assert got == segment_ends_reference(feats)
    assert got[-1:] == ([t - 1] if t else [])
    if t < 3:  # fewer than two depth scores: no std, so no cut
        assert got == ([t - 1] if t else [])


def test_edge_shapes_and_inputs() -> None:
    same = torch.ones(30, 5)
    assert scenetiling.segment_ends(same) == [29] == segment_ends_reference(same)
    d1 = torch.randn(200, 1)  # D = 1: every similarity is +-1, long plateaus
    assert scenetiling.segment_ends(d1) == segment_ends_reference(d1)
    big = torch.randn(4000, 3, dtype=torch.float64)  # huge T, small D
    assert scenetiling.segment_ends(big, max_cuts=None) == segment_ends_reference(big, max_cuts=None)
    ints = np.random.default_rng(0).integers(0, 3, size=(40, 3))
    assert scenetiling.segment_ends(ints) == segment_ends_reference(torch.from_numpy(ints).float())
    with pytest.raises(ValueError):
        scenetiling.segment_ends(torch.zeros(3))


def test_scene_structured_ends_match_published_and_truth() -> None:
    feats, cuts = scene_features(3, t=700, d=64, noise=0.3)
    got = scenetiling.segment_ends(feats, max_cuts=None)
    assert got == segment_ends_reference(feats, max_cuts=None)
    assert got[:-1] == cuts
    assert scenetiling.segment_ends(feats, top_k=len(cuts))[:-1] == cuts


# ---------------------------------------------------------------- min_len
@SETTINGS
@given(sims=st.one_of(exact_sims, float_sims), min_len=st.integers(1, 8), max_cuts=st.sampled_from([15, 2, None]))
def test_min_len_segments_long_enough(sims: torch.Tensor, min_len: int, max_cuts: int | None) -> None:
    depth = scenetiling.depth_scores(sims)
    n = depth.shape[0]
    got = scenetiling.boundaries_from_depth(depth, max_cuts=max_cuts, min_len=min_len)
    lengths = np.diff([-1, *got, n])
    assert (lengths >= min_len).all() if got else True
    candidates = set(scenetiling.boundaries_from_depth(depth, max_cuts=None))
    assert set(got) <= candidates
    if max_cuts is not None:
        assert len(got) <= max_cuts
    if min_len == 1:
        assert got == boundaries_reference(depth_scores_reference(sims), max_cuts=max_cuts)


def test_min_len_prefers_deeper_cut() -> None:
    # Cuts after frames 4 and 5 are both deep; 5 is deeper, so with min_len=3 only 5 survives.
    sims = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.5, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    depth = scenetiling.depth_scores(sims)
    assert scenetiling.boundaries_from_depth(depth, alpha=0.0) == [4, 5]
    assert scenetiling.boundaries_from_depth(depth, alpha=0.0, min_len=3) == [5]
    # Top-k with min_len: 5, then 4 is too close, then the zero-depth positions lowest index first: 2 fits.
    assert scenetiling.boundaries_from_depth(depth, top_k=2, min_len=3) == [2, 5]
    assert scenetiling.segment_ends(torch.randn(2, 3), min_len=5) == [1]


# ---------------------------------------------------------------- streaming
def stream(features: torch.Tensor, **kwargs: float) -> list[int]:
    tiler = scenetiling.StreamingSceneTiler(**kwargs)
    ends: list[int] = []
    for row in features:
        new = tiler.push(row)
        assert all(e < tiler.frames for e in new)
        ends += new
    ends += tiler.flush()
    return ends


@pytest.mark.parametrize(("d", "noise"), [(64, 0.3), (384, 0.5)])
def test_streaming_f1_against_offline(d: int, noise: float) -> None:
    f1s = []
    for seed in range(4):
        feats, _ = scene_features(seed, t=2000, d=d, noise=noise)
        offline = scenetiling.segment_ends(feats, max_cuts=None)[:-1]
        online = stream(feats)
        assert online == sorted(set(online)) and online[-1] == 1999
        f1s.append(scenetiling.boundary_f1(online[:-1], offline, tol=1))
    assert np.mean(f1s) >= 0.95, f1s


@pytest.mark.parametrize("lag", [4, 32])
def test_streaming_short_scenes_many_cuts(lag: int) -> None:
    # 4-12-frame scenes (the synthetic world at 2 fps): the many deep cuts must not stop the first one from being
    # confirmed (the earlier gate, on the running mean depth, missed every cut of some of these sequences), and
    # cuts come out promptly.
    tiler = scenetiling.StreamingSceneTiler(lag=lag)
    for seed in range(4):
        for d, noise in ((64, 0.3), (384, 0.5)):
            feats, cuts = scene_features(seed, t=600, d=d, noise=noise, lo=4, hi=12)
            offline = scenetiling.segment_ends(feats, max_cuts=None)[:-1]
            online = []
            for i, row in enumerate(feats):
                for end in tiler.push(row):
                    # Confirmed soon after the later of (cut + lag) and the end of the warmup: the extra frames are
                    # the right-hand climb after the cut, which must end before the depth is known (4 at most here).
                    assert i <= max(end + lag, tiler.warmup) + 6, (i, end)
                    online.append(end)
            online += tiler.flush()[:-1]
            assert len(cuts) >= 60
            assert scenetiling.boundary_f1(online, offline, tol=1) >= 0.95, (seed, d, lag)


def test_streaming_min_len() -> None:
    # Scenes of 6-7 frames with a one-frame flash inside every third scene: without a minimum a flash can be a scene
    # of its own (cut into it and out of it); with min_len=2 no segment but the final one is shorter than 2 frames,
    # and the cuts still agree with the offline rule's min_len=2 cuts within a frame (which of the two cuts around a
    # flash survives may differ: offline keeps the deeper, online the earlier).
    feats, cuts = scene_features(7, t=240, d=64, noise=0.05, lo=6, hi=7)
    flash = torch.randn(64, generator=torch.Generator().manual_seed(1)) * 10
    for c in cuts[::3]:
        feats[c - 2] = flash
    lengths = {}
    for min_len in (1, 2):
        tiler = scenetiling.StreamingSceneTiler(lag=4, min_len=min_len)
        ends = [e for row in feats for e in tiler.push(row)] + tiler.flush()
        lengths[min_len] = np.diff([-1, *ends])[:-1]
        offline = scenetiling.segment_ends(feats, max_cuts=None, min_len=min_len)
        assert scenetiling.boundary_f1(ends[:-1], offline[:-1], tol=1) >= 0.95
    assert (lengths[1] == 1).sum() >= 5
    assert (lengths[2] >= 2).all()
    with pytest.raises(ValueError, match="min_len"):
        scenetiling.StreamingSceneTiler(min_len=0)


def test_streaming_short_clean_stream_equals_offline() -> None:
    feats, cuts = scene_features(11, t=300, d=32, noise=0.05, lo=30, hi=60)
    assert stream(feats) == scenetiling.segment_ends(feats, max_cuts=None) == [*cuts, 299]


def test_streaming_edges() -> None:
    tiler = scenetiling.StreamingSceneTiler()
    assert tiler.flush() == []
    assert tiler.push(np.ones(3)) == []
    assert tiler.flush() == [0]
    assert stream(torch.ones(5, 3)) == [4]
    with pytest.raises(ValueError):
        tiler.push(torch.ones(2, 3))


def test_streaming_state_stays_bounded() -> None:
    tiler = scenetiling.StreamingSceneTiler()
    feats, _ = scene_features(5, t=10_000, d=8, noise=0.3, lo=5, hi=50)
    sizes = []
    for i, row in enumerate(feats):
        tiler.push(row)
        if i in (999, 9_999):
            sizes.append(tiler.state_size())
    assert sizes[1] <= tiler._max_pending + 8 + 4 + 12
    # A strictly rising stretch keeps one climbing group open: still bounded.
    rising = scenetiling.StreamingSceneTiler()
    for i in range(3000):
        rising.push(torch.tensor([1.0, i / 3000]))
    assert rising.state_size() <= rising._max_pending + 2 + 4 + 12


# ---------------------------------------------------------------- metrics and plot
def test_boundary_f1() -> None:
    assert scenetiling.boundary_f1([], []) == 1.0
    assert scenetiling.boundary_f1([5], []) == 0.0
    assert scenetiling.boundary_f1([10, 20], [11, 19], tol=1) == 1.0
    assert scenetiling.boundary_f1([10, 20], [12, 20], tol=1) == 0.5
    # One prediction cannot match two references.
    assert scenetiling.boundary_f1([10], [9, 11], tol=1) == pytest.approx(2 / 3)
    # Greedy-by-distance would pair 10-11 and strand 12; the sweep pairs 10-9 and 12-11.
    assert scenetiling.boundary_f1([10, 12], [9, 11], tol=1) == 1.0


def test_plot_writes_png(tmp_path) -> None:
    feats, _ = scene_features(2, t=200, d=16, noise=0.3)
    ends = scenetiling.segment_ends(feats)
    out = scenetiling.plot(feats, ends, tmp_path / "tiling.png", times=np.arange(200) / 2.0)
    data = (tmp_path / "tiling.png").read_bytes()
    assert out.endswith("tiling.png") and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    sims_path = scenetiling.plot(scenetiling.similarities(feats), ends, tmp_path / "sims.png")
    assert Path(sims_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- the NumPy rule (no torch)
@SETTINGS
@given(sims=exact_sims, alpha=st.sampled_from([0.0, 0.5, 1.0]), min_len=st.integers(1, 4),
       max_cuts=st.sampled_from([None, 0, 2, 15]), top_k=st.sampled_from([None, None, 0, 3]))
def test_numpy_rule_selects_the_same_cuts_from_the_same_depths(sims, alpha, min_len, max_cuts, top_k) -> None:
    # Exact-valued similarities: depths, plateaus and ties are exactly equal in both, so every selection must agree,
    # except the one documented difference (min_len 1, more passing cuts than the cap: torch.topk breaks ties).
    from scenetiling import numpy_rule

    depth = scenetiling.depth_scores(sims)
    np_depth = numpy_rule.depth_scores(sims.numpy())
    np.testing.assert_array_equal(np_depth, depth.numpy())
    got = numpy_rule.boundaries_from_depth(np_depth, alpha, max_cuts, top_k, min_len)
    want = scenetiling.boundaries_from_depth(depth, alpha, max_cuts, top_k, min_len)
    if min_len == 1 and sorted(depth.tolist()) != sorted(set(depth.tolist())):
        assert len(got) == len(want)  # equal depths: which of them stay may differ
    else:
        assert got == want


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("d, noise", [(64, 0.3), (384, 0.5), (256, 0.05)])
def test_numpy_rule_cuts_random_scenes_like_core(seed: int, d: int, noise: float) -> None:
    feats, _ = scene_features(seed, 2000, d, noise)
    np.testing.assert_allclose(scenetiling.numpy_rule.similarities(feats.numpy()),
                               scenetiling.similarities(feats).numpy(), rtol=0, atol=1e-6)
    for kwargs in ({}, {"max_cuts": None, "min_len": 2}, {"top_k": 7}):
        assert scenetiling.numpy_rule.segment_ends(feats.numpy(), **kwargs) == scenetiling.segment_ends(feats, **kwargs)


def test_numpy_rule_cuts_real_histograms_like_core() -> None:
    # Colour histograms of the shipped sample videos in a row (at 8 fps for more frames): what `videollm scenes` cuts.
    from scenetiling.histogram import hsv_histogram_array
    from videollm.assets import samples_dir
    from videollm.io import open_video

    parts = []
    for video in sorted((samples_dir() / "video").glob("*.mp4")):
        with open_video(video) as reader:
            parts += [hsv_histogram_array(batch.frames) for batch in reader.iter_fps(8.0, batch_size=16)]
    feats = np.concatenate(parts)
    assert len(feats) > 100
    torch_hist = scenetiling.hsv_histograms(np.zeros((1, 4, 4, 3), np.uint8))
    assert isinstance(torch_hist, torch.Tensor) and torch_hist.dtype == torch.float32
    for kwargs in ({"max_cuts": None, "min_len": 2}, {"max_cuts": 15}):
        want = scenetiling.segment_ends(torch.from_numpy(feats), **kwargs)
        assert scenetiling.numpy_rule.segment_ends(feats, **kwargs) == want
        assert len(want) > 5


def test_numpy_rule_and_histograms_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, numpy as np, scenetiling.numpy_rule as r, scenetiling.histogram as h\n"
            "f = h.hsv_histogram_array(np.random.default_rng(0).integers(0, 256, (9, 20, 30, 3), dtype=np.uint8))\n"
            "r.segment_ends(f)\nassert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
