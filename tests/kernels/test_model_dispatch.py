"""The bridge uses the dispatching attention op: forcing the Triton kernel (interpreted on CPU) gives the same
readout as the default PyTorch path (on the GPU when there is one)."""

from __future__ import annotations

import pytest
import torch

from videollm.bridge import BridgeConfig, MemoryBridge


def test_bridge_with_forced_triton_kernel_matches_pytorch_path(monkeypatch: pytest.MonkeyPatch,
                                                                kernel_device: torch.device) -> None:
    torch.manual_seed(0)
    cfg = BridgeConfig.from_preset("tiny", memory_init="normal")
    bridge = MemoryBridge(cfg).eval().to(kernel_device)
    segments = [torch.randn(3, cfg.tokens_per_frame, cfg.vision_dim, device=kernel_device),
                torch.randn(2, cfg.tokens_per_frame, cfg.vision_dim, device=kernel_device)]
    monkeypatch.setenv("VIDEOLLM_KERNELS", "reference")
    with torch.no_grad():
        expected = bridge(segments).readout
    monkeypatch.setenv("VIDEOLLM_KERNELS", "triton")
    with torch.no_grad():
        got = bridge(segments).readout
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=2e-5)
