"""The VIDEOLLM_KERNELS switch: auto / triton / reference, and its errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import videollm_kernels
from videollm_kernels import _dispatch

from videollm.errors import UsageError


def test_auto_uses_reference_on_cpu(monkeypatch):
    monkeypatch.delenv("VIDEOLLM_KERNELS", raising=False)
    assert _dispatch.requested_backend() == "auto"
    assert not _dispatch.use_triton(torch.zeros(1))


def test_reference_is_forced(monkeypatch):
    monkeypatch.setenv("VIDEOLLM_KERNELS", "reference")
    assert not _dispatch.use_triton(torch.zeros(1))


def test_auto_on_cuda_keeps_pytorch_where_it_is_faster(monkeypatch):
    """On CUDA tensors ``auto`` runs the kernel only where the caller says it measured faster; ``triton`` forces it."""
    monkeypatch.setattr(_dispatch, "triton_available", lambda: True)
    cuda_like = SimpleNamespace(is_cuda=True)  # use_triton reads only .is_cuda
    monkeypatch.delenv("VIDEOLLM_KERNELS", raising=False)
    assert _dispatch.use_triton(cuda_like)
    assert not _dispatch.use_triton(cuda_like, faster=False)
    monkeypatch.setenv("VIDEOLLM_KERNELS", "triton")
    assert _dispatch.use_triton(cuda_like, faster=False)


def test_bridge_asks_for_the_kernel_only_for_few_queries_over_long_caches(monkeypatch):
    from videollm.bridge import layers

    asked = []
    monkeypatch.setattr(layers, "use_triton", lambda *t, faster=True: asked.append(faster) or False)
    block = layers.AttentionBlock(16, 2, 0.0, 1e-12).eval()
    with torch.no_grad():
        block(torch.randn(1, 300, 16))  # self-attention over 300 tokens: SDPA measured faster
        block(torch.randn(1, 32, 16), torch.randn(1, layers.KERNEL_FROM_KEYS, 16))  # retrieval over a long cache
    assert asked == [False, True]


def test_forced_triton_runs_the_kernel(force_triton, monkeypatch):
    """The kernel path is really taken: its result is not bitwise the reference's, and the kernel was called."""
    from videollm_kernels.scenetiling_scan import triton_impl

    calls = []
    original = triton_impl.scenetiling_scan_triton
    monkeypatch.setattr(triton_impl, "scenetiling_scan_triton", lambda f: calls.append(f) or original(f))
    feats = torch.randn(40, 8, device=force_triton)
    videollm_kernels.scenetiling_scan(feats)
    assert len(calls) == 1
    monkeypatch.setenv("VIDEOLLM_KERNELS", "reference")
    videollm_kernels.scenetiling_scan(feats)
    assert len(calls) == 1


def test_invalid_value_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("VIDEOLLM_KERNELS", "cuda")
    with pytest.raises(UsageError, match="VIDEOLLM_KERNELS"):
        videollm_kernels.scenetiling_scan(torch.randn(4, 3))


def test_forced_triton_on_cpu_without_interpreter_is_a_usage_error(monkeypatch):
    if not _dispatch.triton_available():
        pytest.skip("triton is not installed")
    monkeypatch.setenv("VIDEOLLM_KERNELS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(UsageError, match="TRITON_INTERPRET"):
        _dispatch.use_triton(torch.zeros(1))


def test_import_does_not_import_triton():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(videollm_kernels.__file__).resolve().parent
    # Load the package by path under its installed name, in case this environment's editable install lacks it.
    code = ("import sys, importlib.util as u;"
            f"s = u.spec_from_file_location('videollm_kernels', {str(root / '__init__.py')!r},"
            f" submodule_search_locations=[{str(root)!r}]);"
            "m = u.module_from_spec(s); sys.modules['videollm_kernels'] = m; s.loader.exec_module(m);"
            "print('triton' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
