"""Kernel tests run the Triton kernels in Triton's CPU interpreter when there is no GPU.

``TRITON_INTERPRET`` must be set before any kernel is decorated, i.e. before ``videollm_kernels.*.triton_impl`` is
imported; the package imports those lazily, and this conftest runs before the test modules, so setting it here is
early enough.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _interpreter_works() -> str | None:
    """None when a trivial kernel launches on CPU, else the reason it does not."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    import triton
    import triton.language as tl

    @triton.jit
    def _copy(src, dst, n, BLOCK: tl.constexpr):
        offs = tl.arange(0, BLOCK)
        tl.store(dst + offs, tl.load(src + offs, mask=offs < n), mask=offs < n)

    src = torch.arange(5, dtype=torch.float32)
    dst = torch.zeros(5)
    try:
        _copy[(1,)](src, dst, 5, BLOCK=8)
    except Exception as exc:  # noqa: BLE001 - any launch failure means "no interpreter here": skip, with the reason
        return f"Triton cannot launch on CPU here: {type(exc).__name__}: {exc}"
    return None if torch.equal(src, dst) else "Triton's interpreter gave a wrong result for a copy kernel"


@pytest.fixture(scope="session")
def kernel_device() -> torch.device:
    """Where the Triton kernels run in these tests: CUDA when present, else the CPU interpreter (or skip)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    reason = _interpreter_works()
    if reason is not None:
        pytest.skip(reason)
    return torch.device("cpu")


@pytest.fixture
def force_triton(monkeypatch: pytest.MonkeyPatch, kernel_device: torch.device) -> torch.device:
    """Force the Triton path (``VIDEOLLM_KERNELS=triton``) and return the device to put inputs on."""
    monkeypatch.setenv("VIDEOLLM_KERNELS", "triton")
    return kernel_device


@pytest.fixture(autouse=True)
def _one_thread():
    """The interpreter runs many tiny numpy ops; extra threads only add contention on shared 2-core machines."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
