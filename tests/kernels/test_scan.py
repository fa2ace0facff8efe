"""SceneTiling scan kernel against its reference and against the scenetiling package."""

from __future__ import annotations

import pytest
import torch
from videollm_kernels import scenetiling_scan
from videollm_kernels.scenetiling_scan.naive import (
    depth_scores_ref,
    scenetiling_scan_ref,
)


def _scene_features(t: int, d: int, gen: torch.Generator) -> torch.Tensor:
    """(T, D) features made of noisy runs of repeated frames, with one all-zero frame: ties and flat stretches."""
    runs = torch.randn(t // 7 + 1, d, generator=gen).repeat_interleave(7, 0)[:t]  # (T, D)
    feats = runs + 0.05 * torch.randn(t, d, generator=gen)
    feats[min(3, t - 1)] = 0.0
    return feats


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("t", "d"), [(1, 4), (2, 5), (3, 7), (1025, 33), (2500, 384)])
def test_scan_matches_reference(force_triton, dtype, t, d):
    gen = torch.Generator().manual_seed(t)
    feats = _scene_features(t, d, gen).to(force_triton, dtype)
    sims, depth = scenetiling_scan(feats)
    ref_sims, _ = scenetiling_scan_ref(feats)
    assert sims.shape == depth.shape == (max(t - 1, 0),)
    assert sims.dtype == depth.dtype == torch.float32
    torch.testing.assert_close(sims, ref_sims, atol=2e-6, rtol=1e-5)
    # The peak scan only compares and copies: given the kernel's own similarities it must be exact.
    assert torch.equal(depth.cpu(), depth_scores_ref(sims.cpu()))


def test_scan_handles_strided_features(force_triton):
    gen = torch.Generator().manual_seed(9)
    wide = _scene_features(300, 64, gen).to(force_triton)
    feats = wide[::2, 1::2]  # (150, 32) view, column stride 2
    sims, depth = scenetiling_scan(feats)
    ref_sims, ref_depth = scenetiling_scan_ref(feats.contiguous())
    torch.testing.assert_close(sims, ref_sims, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(depth, ref_depth, atol=1e-5, rtol=1e-5)


def test_depth_pass_is_exact_with_ties_and_nan(kernel_device):
    """Ties continue the climb, NaN stops it, carries cross several 1024-wide blocks (incl. a reset at 1023/1024)."""
    from videollm_kernels.scenetiling_scan.triton_impl import depth_scores_triton

    gen = torch.Generator().manual_seed(10)
    sims = torch.randint(0, 4, (3001,), generator=gen).float() / 4  # many exact ties
    sims[1500:2900] = torch.linspace(0.0, 1.0, 1400)  # a climb spanning a block boundary
    sims[[17, 1023, 1024, 2047]] = float("nan")
    depth = depth_scores_triton(sims.to(kernel_device)).cpu()
    expected = depth_scores_ref(sims)
    assert torch.equal(depth.isnan(), expected.isnan())
    assert torch.equal(depth.nan_to_num(), expected.nan_to_num())


def test_reference_agrees_with_scenetiling_package():
    scenetiling = pytest.importorskip("scenetiling")
    gen = torch.Generator().manual_seed(11)
    feats = _scene_features(777, 48, gen)
    sims, depth = scenetiling_scan_ref(feats)
    torch.testing.assert_close(sims, scenetiling.similarities(feats), atol=1e-6, rtol=1e-6)
    # Same similarities in, same comparisons and copies: identical depth.
    assert torch.equal(depth, scenetiling.depth_scores(sims))
