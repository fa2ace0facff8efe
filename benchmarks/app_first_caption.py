"""Upload to first scene caption in the web app, on the default (embedded) model.

Starts ``videollm serve`` on a free port, waits for its "model ready" line, then submits a shipped sample video to
the video-chat tab's ``/watch`` endpoint through ``gradio_client`` (the same call a browser upload makes) and times
each streamed update: the first update that shows a scene caption, and the last one (every scene captioned).
Each upload after the first of the same file hits the app's cache of encoded videos only if the app keeps one; the
figures of every run are printed so the difference shows.

Usage: ``python benchmarks/app_first_caption.py [--video FILE] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_startup import Server

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "samples" / "world" / "video" / "video_000000.mp4"


def has_caption(gallery) -> bool:
    """Whether a /watch gallery output (one thumbnail per captioned scene, "start–end s · caption") has a scene."""
    return bool(gallery) and any(" s · " in str(item.get("caption", "")) for item in gallery)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=str(SAMPLE), help="video to upload (default: a shipped sample)")
    parser.add_argument("--runs", type=int, default=3, help="uploads timed against one server (default 3)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the server")
    args = parser.parse_args(argv)
    from gradio_client import Client, handle_file

    server = Server()
    try:
        if not server.wait_ready(args.timeout):
            raise SystemExit("videollm serve did not become ready in time")
        client = Client(f"http://127.0.0.1:{server.port}/", verbose=False)
        for run in range(args.runs):
            started = time.perf_counter()
            job = client.submit(handle_file(args.video), api_name="/watch")
            first = None
            updates = 0
            for update in job:
                updates += 1
                if first is None and has_caption(update[2]):
                    first = time.perf_counter() - started
            job.result()
            total = time.perf_counter() - started
            shown = "never" if first is None else f"{first:.2f} s"
            print(f"run {run + 1}: first scene caption {shown}, all scenes {total:.2f} s ({updates} updates) "
                  f"for {Path(args.video).name}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
