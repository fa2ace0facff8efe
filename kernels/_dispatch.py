"""Backend choice shared by every op: Triton kernel or pure-PyTorch reference.

``VIDEOLLM_KERNELS`` (read at every call, so tests and users can flip it at run time):

- ``auto`` (default): the Triton kernel when the inputs are CUDA tensors, Triton imports and the caller does not know
  the PyTorch path to be faster at this size (``faster=False``), else the reference / PyTorch path.
- ``triton``: always the kernel. On CPU tensors this needs Triton's interpreter (``TRITON_INTERPRET=1`` set before
  the first kernel module is imported), which is how the tests run the kernels without a GPU.
- ``reference``: always the PyTorch reference.

Kernel modules are imported lazily (only when a kernel is about to run): importing ``videollm_kernels`` never
imports Triton, and the interpreter flag is honoured as long as it is set before the first kernel call.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from videollm.errors import UsageError

ENV_VAR = "VIDEOLLM_KERNELS"
BACKENDS = ("auto", "triton", "reference")


def requested_backend() -> str:
    """The value of ``VIDEOLLM_KERNELS`` (``auto`` when unset), validated."""
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise UsageError(f"{ENV_VAR}={value!r} is not one of {', '.join(BACKENDS)}")
    return value


def interpreting() -> bool:
    """True when Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_available() -> bool:
    """True when the ``triton`` package is installed (it is an optional extra)."""
    return importlib.util.find_spec("triton") is not None


def use_triton(*tensors: torch.Tensor, faster: bool = True) -> bool:
    """Whether an op called on ``tensors`` should run its Triton kernel (see the module docstring).

    ``faster``: whether the kernel measured faster than the PyTorch path at this call's size; ``auto`` then keeps
    PyTorch (``triton`` still forces the kernel).

    Raises:
        UsageError: ``VIDEOLLM_KERNELS=triton`` but Triton is missing, or the tensors are on CPU and the
            interpreter is off (a kernel launch would otherwise fail with an obscure driver error).
    """
    backend = requested_backend()
    on_cuda = all(t.is_cuda for t in tensors)
    if backend == "reference":
        return False
    if backend == "auto":
        return faster and on_cuda and triton_available()
    if not triton_available():
        raise UsageError(f"{ENV_VAR}=triton but the triton package is not installed (pip install 'videollm[kernels]')")
    if not on_cuda and not interpreting():
        raise UsageError(f"{ENV_VAR}=triton on CPU tensors needs TRITON_INTERPRET=1 set before the kernels are imported")
    return True
