"""``videollm serve``: the Gradio web app on this machine."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from videollm.cli import add_command
from videollm.commands.common import add_model_args, model_source, torch_device_dtype
from videollm.errors import UsageError

if TYPE_CHECKING:
    from videollm.model import VideoLLM


def register(sub) -> None:
    p = add_command(sub, "serve", serve)
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0: the network)")
    p.add_argument("--port", type=int, default=7860, help="TCP port (default 7860; 0 picks a free one)")
    add_model_args(p, fps=False)
    p.add_argument("--max-upload-mb", type=int, default=200, help="largest accepted upload in MB (default 200)")
    p.add_argument("--max-video-seconds", type=float, default=600.0,
                   help="longest accepted video in seconds (default 600)")
    p.add_argument("--queue-size", type=int, default=16,
                   help="requests that may wait in the queue; more are refused with a 'queue full' message "
                        "(default 16)")
    p.add_argument("--concurrency", type=int, default=1,
                   help="model requests run at once (default 1: on a CPU, one at a time answers each soonest)")
    p.add_argument("--camera-streams", type=int, default=1,
                   help="visitors' cameras captioned live at once (Live captions tab); more wait in the queue "
                        "(default 1: one keeps 2 CPU cores busy with the shipped model)")
    p.add_argument("--keep-minutes", type=float, default=60.0,
                   help="a visitor's uploads and outputs are deleted this long after they were written, and an "
                        "idle visitor's memory this long after their last request (default 60)")


def serve(args: argparse.Namespace) -> int:
    """Serve the web app: video chat, live scene captions, image chat, planning.

    Everything runs on this machine: no analytics, no requests to other hosts, uploads kept in the app's own temp
    folder. The default model is the shipped embedded checkpoint (it knows only the synthetic video world); pass
    --model DIR for a full-size checkpoint. Open the printed URL in a browser; Ctrl-C stops the server. The page is
    served while the model is still loading: requests made before "model ready" is printed wait for it.
    """
    import tempfile
    import time

    started = time.perf_counter()
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {args.port}")
    workdir = tempfile.mkdtemp(prefix="videollm-app-")
    from videollm_app import (
        AppLimits,
        ModelLoader,
        build_demo,
        launch,
        offline_environment,
    )

    offline_environment(workdir)
    try:
        limits = AppLimits(max_upload_mb=args.max_upload_mb, max_video_seconds=args.max_video_seconds,
                           queue_size=args.queue_size, concurrency=args.concurrency,
                           camera_streams=args.camera_streams, keep_minutes=args.keep_minutes)
    except ValueError as err:  # "keep_minutes must be > 0, got 0.0": name the option as it was typed
        name, _, rest = str(err).partition(" ")
        raise UsageError(f"--{name.replace('_', '-')} {rest}") from None
    spec = str(model_source(args))
    # Importing torch/transformers and loading the weights takes longer than everything the page needs, so the page
    # is served first and the model loads right after (a thread loading during the Gradio import only slows both
    # down: both are mostly Python imports holding the GIL).
    loader = ModelLoader(lambda: _load_model(args, spec))
    demo = build_demo(loader, limits=limits, model_name=spec, workdir=workdir)
    launch(demo, host=args.host, port=args.port, block=False)
    try:
        loader.load()
        print(f"videollm serve: model ready ({spec}) {time.perf_counter() - started:.1f} s after start",
              flush=True)
        demo.block_thread()
    finally:
        demo.close()
    return 0


def _load_model(args: argparse.Namespace, spec: str) -> VideoLLM:
    from videollm.model import VideoLLM

    device, dtype = torch_device_dtype(args)
    return VideoLLM.from_pretrained(spec, device=device, dtype=dtype)
