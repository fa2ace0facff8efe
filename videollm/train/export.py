"""Shipping a trained checkpoint: the final model's weights in half precision plus the run's log and loss curve."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from videollm.errors import ModelError

EXPORT_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def export_checkpoint(run_dir: str | os.PathLike, target: str | os.PathLike, dtype: str = "float16") -> Path:
    """Copy ``<run_dir>/final`` to ``target`` with weights stored as ``dtype``.

    ``VideoLLM.load_trained`` copies stored tensors into float32 parameters, so a float16 file (half the size) loads
    into the same model; evaluate the exported directory, not the run's, so figures describe what ships.

    Args:
        run_dir: a training output folder (holds ``final/``, ``train_log.json``, ``loss.png``).
        target: destination folder (created; its config.json and model.safetensors are replaced).
        dtype: "float16", "bfloat16" or "float32".

    Returns:
        The target folder.
    """
    from videollm.model import WEIGHTS_NAME

    if dtype not in EXPORT_DTYPES:
        raise ModelError(f"export dtype must be one of {', '.join(EXPORT_DTYPES)}, got {dtype!r}")
    run = Path(run_dir)
    final = run / "final"
    if not (final / WEIGHTS_NAME).is_file():
        raise ModelError(f"{final}: no trained model to export (train first)")
    if (final / "lm").is_dir():
        raise ModelError(f"{final}: has a fine-tuned LM; export copies bridge + projector checkpoints only")
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.to(EXPORT_DTYPES[dtype]).contiguous() for k, v in load_file(str(final / WEIGHTS_NAME)).items()}
    tmp = out / (WEIGHTS_NAME + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "videollm", "config": "config.json", "dtype": dtype})
    os.replace(tmp, out / WEIGHTS_NAME)
    shutil.copyfile(final / "config.json", out / "config.json")
    for extra in ("train_log.json", "loss.png"):
        if (run / extra).is_file():
            shutil.copyfile(run / extra, out / extra)
    return out
