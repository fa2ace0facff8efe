"""Start-up time of ``videollm serve``: seconds from the command to the first HTTP 200 of the page, and to "model ready".

Each run starts ``python -m videollm serve --port P`` (P a free ephemeral port) as a subprocess, polls
``http://127.0.0.1:P/`` until it answers 200, and watches the server's output for the readiness line
``videollm serve: model ready`` (printed once the model is loaded; the page may be up before that). The best of
``--runs`` runs is reported, next to a baseline measured in the same invocation (``python -c "import gradio"``) and
the load average, because the absolute figures depend on what else the machine is doing.

Usage: python benchmarks/serve_startup.py [--runs 3] [--model DIR_OR_PRESET] [--timeout 120] [--page-only]
       [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

READY_LINE = "videollm serve: model ready"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def import_gradio_seconds() -> float:
    """Wall time of ``python -c "import gradio"`` in a fresh interpreter: the baseline the start-up is compared to."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio"], check=True, env=_env(), stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


class Server:
    """``python -m videollm serve`` on a free port as a subprocess, with its output watched for the ready line.

    Attributes:
        port: the port it serves on.
        started: ``time.perf_counter()`` just before the process was started.
        ready_after: seconds from ``started`` to the "model ready" line (None until it is printed).
    """

    def __init__(self, model: str | None = None, options: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "videollm", "serve", "--port", str(self.port), *(options or [])]
        if model:
            cmd += ["--model", model]
        self.ready_after: float | None = None
        self._ready = threading.Event()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env={**_env(), **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._watch_output, daemon=True)
        self._reader.start()

    def _watch_output(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if READY_LINE in line and not self._ready.is_set():
                self.ready_after = time.perf_counter() - self.started
                self._ready.set()

    def wait_ready(self, timeout: float) -> bool:
        """Wait for the "model ready" line; False when ``timeout`` seconds pass first."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Terminate the server (kill it when it does not exit within 10 s)."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)


def one_run(model: str | None, timeout: float, page_only: bool = False) -> dict[str, float | None]:
    """Start the server once; returns seconds to the first HTTP 200 and to the "model ready" line (None: never).

    ``page_only`` stops at the first 200 (for servers that print no readiness line, e.g. older versions).
    """
    server = Server(model)
    first_200 = None
    try:
        while time.perf_counter() - server.started < timeout and server.proc.poll() is None:
            if first_200 is None and _http_ok(f"http://127.0.0.1:{server.port}/"):
                first_200 = time.perf_counter() - server.started
            if first_200 is not None and (server.ready_after is not None or page_only):
                break
            time.sleep(0.05)
        if server.proc.poll() is not None:
            raise RuntimeError(f"videollm serve exited with code {server.proc.returncode} before it was ready")
    finally:
        server.stop()
    return {"first_200_s": first_200, "model_ready_s": server.ready_after}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs; the best is reported (default 3)")
    parser.add_argument("--model", default=None, help="--model passed to videollm serve (default: its default)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one run (default 120)")
    parser.add_argument("--page-only", action="store_true",
                        help="stop each run at the first 200 (servers that print no readiness line)")
    parser.add_argument("--json", default=None, help="also write all figures to this JSON file")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    # Twice: the first may also warm the file cache for the server runs.
    baseline = min(import_gradio_seconds() for _ in range(2))
    runs = [one_run(args.model, args.timeout, args.page_only) for _ in range(args.runs)]
    load_after = os.getloadavg()

    def best(key: str) -> float | None:
        values = [r[key] for r in runs if r[key] is not None]
        return min(values) if values else None

    out = {"import_gradio_s": baseline, "first_200_s": best("first_200_s"), "model_ready_s": best("model_ready_s"),
           "runs": runs, "loadavg_1min_before": load_before[0], "loadavg_1min_after": load_after[0],
           "cpus": os.cpu_count()}

    def fmt(v: float | None) -> str:
        return "never" if v is None else f"{v:.2f} s"

    print(f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after, on {os.cpu_count()} CPUs")
    print(f"baseline: python -c 'import gradio'      {fmt(baseline)} (best of 2)")
    print(f"videollm serve: first HTTP 200 of /      {fmt(out['first_200_s'])} (best of {args.runs})")
    print(f"videollm serve: model ready              {fmt(out['model_ready_s'])} (best of {args.runs})")
    for k, r in enumerate(runs, 1):
        print(f"  run {k}: first 200 {fmt(r['first_200_s'])}, model ready {fmt(r['model_ready_s'])}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
