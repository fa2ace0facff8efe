"""Batch captioning: many videos in, per-video outputs and a manifest out, on one machine or a Ray cluster.

- ``videollm.batch.files``: expanding inputs, naming outputs, atomic writes, resume, sharding, subtitles.
- ``videollm.batch.captioner``: captioning one video into its outputs (``caption_item``), the manifest, and
  ``Captioner``, the callable class a Ray Data pipeline maps over video paths.
- ``videollm.batch.ray_engine``: ``videollm caption --engine ray``, the Ray Data driver.
"""

from videollm.batch.captioner import (
    MANIFEST,
    MANIFEST_FIELDS,
    Captioner,
    CaptionOptions,
    caption_item,
)
from videollm.batch.files import (
    EMPTY_CUE,
    FORMATS,
    MEMORY_KEY,
    MEMORY_SUFFIX,
    NOT_RECOGNISED_CUE,
    VIDEO_EXTENSIONS,
    BatchItem,
    BatchReport,
    end_launched,
    check_writable,
    expand_inputs,
    is_complete,
    launched_shard,
    output_paths,
    parse_formats,
    parse_shard,
    remove_stale_temps,
    render_report,
    shard,
    subtitles,
    temp_path,
    timestamp,
    write_atomic,
    write_outputs,
    write_text_atomic,
)

__all__ = ["MANIFEST", "MANIFEST_FIELDS", "CaptionOptions", "Captioner", "caption_item", "EMPTY_CUE", "FORMATS", "MEMORY_KEY", "MEMORY_SUFFIX", "NOT_RECOGNISED_CUE", "VIDEO_EXTENSIONS", "BatchItem", "BatchReport",
           "check_writable", "end_launched", "expand_inputs", "is_complete", "launched_shard", "output_paths", "parse_formats",
           "parse_shard", "remove_stale_temps", "render_report", "shard", "subtitles", "temp_path", "timestamp",
           "write_atomic", "write_outputs", "write_text_atomic"]
