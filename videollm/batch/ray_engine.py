"""``videollm caption --engine ray``: the batch on a Ray cluster (Ray Data), one model per worker.

The driver turns the videos still to do into a Ray dataset (one block per video, so one slow video never holds
others back) and maps ``videollm.batch.Captioner`` over it with a fixed pool of actors; each actor loads the model
once and writes each video's outputs atomically into the shared output folder, exactly as the single-process
command does. The driver collects one manifest row per video as it finishes.

Failures: a bad video gives a "failed" row and the job goes on. A worker that dies (killed, out of memory, a node
lost) is restarted by Ray and its video retried; the ``Captioner`` counts tries per video and records the video as
failed after ``max_attempts``. A driver that dies loses nothing written: the rerun skips finished videos.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from videollm.batch.captioner import ATTEMPTS_DIR, Captioner, CaptionOptions
from videollm.batch.files import BatchItem
from videollm.errors import UsageError, VideollmError


class RayJobError(VideollmError):
    """The Ray job itself failed (the cluster could not be reached, no worker could start); finished videos
    stay written, so a rerun resumes."""


def import_ray():
    """The ``ray`` module, or a usage error saying how to install it."""
    # Keep the terminal for the command's own progress and errors: no Ray Data bars, INFO lines or C++ warnings.
    for name, value in (("RAY_DATA_DISABLE_PROGRESS_BARS", "1"), ("RAY_DATA_LOG_LEVEL", "ERROR"),
                        ("RAY_BACKEND_LOG_LEVEL", "fatal")):
        os.environ.setdefault(name, value)
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("--engine ray needs Ray Data: pip install 'videollm[ray]' (or pip install 'ray[data]')") \
            from None
    return ray


def run(items: Sequence[BatchItem], options: CaptionOptions, *, model: str, device: str = "cpu",
        dtype: str = "float32", fps: float | None = None, address: str | None = None, workers: int = 1,
        cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, max_attempts: int = 3,
        on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Caption ``items`` on Ray workers into ``options.out``; returns one manifest row per item.

    Args:
        items: the videos to caption (paths every worker can read).
        options: what to write (``options.out`` must be a folder every worker can write).
        model, device, dtype, fps: the model each worker loads (a checkpoint folder must be readable by workers).
        address: the Ray cluster ("auto", "ray://host:10001", "host:6379"); None starts a local one (or joins the
            one ``RAY_ADDRESS`` names).
        workers: actors in the pool (each holds one model).
        cpus_per_worker: CPUs Ray reserves per actor (also its torch threads).
        gpus_per_worker: GPUs per actor (0: CPU workers).
        max_attempts: tries per video when workers die on it.
        on_row: called in the driver with each row as it arrives.

    Raises:
        UsageError: Ray is not installed, or an option is out of range.
        RayJobError: the job could not run (nothing is lost: rerun to resume).
    """
    ray = import_ray()
    if workers < 1 or cpus_per_worker <= 0 or gpus_per_worker < 0 or max_attempts < 1:
        raise UsageError("--workers and --max-attempts must be >= 1, --cpus-per-worker > 0, --gpus-per-worker >= 0")
    if not items:
        return []
    shutil.rmtree(Path(options.out) / ATTEMPTS_DIR, ignore_errors=True)  # each run gives each video max_attempts
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                     configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise RayJobError(f"cannot start or reach the Ray cluster {address or '(local)'}: {err}") from None
    ray.data.DataContext.get_current().print_on_execution_start = False
    rows: list[dict[str, Any]] = []
    try:
        dataset = ray.data.from_items([{"path": str(item.path), "name": item.name} for item in items],
                                      override_num_blocks=len(items))
        constructor = {"out": options.out, "model": model, "device": device, "dtype": dtype, "fps": fps,
                       "threads": max(1, int(cpus_per_worker)), "max_attempts": max_attempts,
                       "formats": list(options.formats), "prompt": options.prompt,
                       "max_new_tokens": options.max_new_tokens, "summary": options.summary,
                       "save_memory": options.save_memory, "speech": options.speech, "text": options.text,
                       "subtitles": options.subtitles}
        captioned = dataset.map_batches(Captioner, fn_constructor_kwargs=constructor, batch_size=1,
                                        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
                                        num_gpus=gpus_per_worker or None)
        for row in captioned.iter_rows():
            row = dict(row)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    except (ray.exceptions.RayError, ray.data.exceptions.SystemException) as err:
        first = str(err).strip().splitlines()
        raise RayJobError(f"the Ray job failed after {len(rows)} of {len(items)} videos "
                          f"({type(err).__name__}: {first[0] if first else ''}); finished videos are kept, "
                          "rerun to resume") from None
    finally:
        if started_here:
            ray.shutdown()
        # The counters matter only within a run (the next one starts afresh); a worker killed while writing one
        # leaves a temporary file behind, so the folder goes too.
        shutil.rmtree(Path(options.out) / ATTEMPTS_DIR, ignore_errors=True)
    return rows

