"""Triton kernels for videollm's hot paths, each beside a readable PyTorch reference (installed as
``videollm_kernels``: the name ``kernels`` belongs to a Hugging Face package that transformers probes for).

Ops (each a sub-package with ``naive.py``, ``triton_impl.py`` and a validating public wrapper):

- ``flash_attention``: unmasked attention over the first ``kv_len`` keys, forward + backward.
- ``add_layer_norm``: fused ``LayerNorm(x + residual)``, forward + backward.
- ``bridge_attention``: the bridge's post-LN attention block (attention, out-projection, add + LayerNorm).
- ``memory_retrieval``: memory queries over a preallocated, partly filled memory cache, forward + backward.
- ``scenetiling_scan``: SceneTiling similarities and depth scores.

Dispatch: Triton for CUDA tensors, the reference on CPU; ``VIDEOLLM_KERNELS=triton|reference|auto`` forces a side
(see ``videollm_kernels._dispatch``). Importing this package does not import Triton.
"""

from ._dispatch import ENV_VAR, requested_backend, use_triton
from .add_layer_norm import add_layer_norm
from .bridge_attention import bridge_attention
from .flash_attention import flash_attention
from .memory_retrieval import memory_retrieval
from .scenetiling_scan import scenetiling_scan

__all__ = [
    "ENV_VAR",
    "add_layer_norm",
    "bridge_attention",
    "flash_attention",
    "memory_retrieval",
    "requested_backend",
    "scenetiling_scan",
    "use_triton",
]
