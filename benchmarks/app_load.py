"""Load on the web app: N visitors at once, then many visitors one after another (server memory, files, threads).

    python benchmarks/app_load.py [--users 1 4 16] [--visitors 200] [--model MODEL] [--json runs/app_load.json]

A real ``videollm serve`` runs as a subprocess on 127.0.0.1 (default model unless ``--model``; one model request at
a time, queue of 16: the defaults). Visitors are ``gradio_client`` clients, each with its own session:

- **Simultaneous**: for each N, N visitors start together; each uploads a sample video (16.8 s, 4 scenes), waits
  for its captions (``/watch``) and asks two follow-up questions (``/ask_video``). Reported: requests answered,
  errors (with their messages: a full queue must say so), and p50/p95 latency per request kind, from submission to
  the last streamed output.
- **Sequential**: ``--visitors`` visitors one after another, each uploads the shorter sample (11.6 s), watches it,
  asks one question and leaves (``Client.close``). After every visitor the server's resident memory (VmRSS), its
  thread count, its open files and the number of files in its work folder are sampled. Growth is reported between
  visitor 20 (warm) and the last; the work folder is swept of files older than ``--keep-minutes`` (a short value
  here shows the sweep working within the run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_startup import Server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO / "data" / "samples" / "world" / "video" / "video_000000.mp4"
SHORT = REPO / "data" / "samples" / "world" / "video" / "video_000001.mp4"
QUESTIONS = ("What appeared first?", "What happened at the end?")


def proc_figures(pid: int) -> dict[str, float]:
    """Resident memory (MB), threads and open file descriptors of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    return {"rss_mb": fields["VmRSS"] / 1024, "threads": fields["Threads"],
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[k]


def visit(url: str, video: Path, questions: tuple[str, ...], log: list[dict]) -> None:
    """One visitor: upload and watch ``video``, then ask ``questions``; every request's outcome goes to ``log``."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False)
    try:
        for kind, args in [("watch", (handle_file(str(video)),)), *[("ask", (q,)) for q in questions]]:
            started = time.perf_counter()
            try:
                out = client.predict(*args, api_name="/watch" if kind == "watch" else "/ask_video")
                ok = bool(out) and (kind != "watch" or "Ask away" in out[0])
                log.append({"kind": kind, "ok": ok, "seconds": time.perf_counter() - started, "error": None})
            except Exception as err:  # noqa: BLE001 (every failure is recorded with its message)
                log.append({"kind": kind, "ok": False, "seconds": time.perf_counter() - started,
                            "error": f"{type(err).__name__}: {str(err).strip()[:200]}"})
                if kind == "watch":
                    break  # nothing to ask about
    finally:
        client.close()


def simultaneous(url: str, users: int) -> dict:
    log: list[dict] = []
    threads = [threading.Thread(target=visit, args=(url, VIDEO, QUESTIONS, log)) for _ in range(users)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = {"users": users, "requests": len(log), "answered": sum(r["ok"] for r in log),
              "errors": sorted({r["error"] for r in log if r["error"]}), "wall_s": time.perf_counter() - started}
    for kind in ("watch", "ask"):
        times = [r["seconds"] for r in log if r["kind"] == kind and r["ok"]]
        result[f"{kind}_p50_s"] = percentile(times, 0.5)
        result[f"{kind}_p95_s"] = percentile(times, 0.95)
    return result


def sequential(url: str, pid: int, workdir: Path, visitors: int) -> dict:
    samples = []
    errors = []
    for k in range(visitors):
        log: list[dict] = []
        visit(url, SHORT, QUESTIONS[:1], log)
        errors += [r["error"] for r in log if r["error"]]
        samples.append({"visitor": k + 1, "seconds": sum(r["seconds"] for r in log), **proc_figures(pid),
                        "files": count_files(workdir)})
        if (k + 1) % 20 == 0 or k + 1 == visitors:
            s = samples[-1]
            print(f"  visitor {k + 1}: RSS {s['rss_mb']:.0f} MB, {s['threads']} threads, {s['fds']} fds, "
                  f"{s['files']} files", flush=True)
    warm = samples[min(19, len(samples) - 1)]
    last = samples[-1]
    return {"visitors": visitors, "errors": sorted(set(errors)), "rss_warm_mb": warm["rss_mb"],
            "rss_last_mb": last["rss_mb"], "rss_max_mb": max(s["rss_mb"] for s in samples),
            "threads_warm": warm["threads"], "threads_last": last["threads"], "fds_warm": warm["fds"],
            "fds_last": last["fds"], "files_max": max(s["files"] for s in samples), "files_last": last["files"],
            "visit_p50_s": statistics.median(s["seconds"] for s in samples), "samples": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="*", default=[1, 4, 16], help="simultaneous visitors per round")
    parser.add_argument("--visitors", type=int, default=200, help="sequential visitors (0: skip)")
    parser.add_argument("--model", default=None, help="--model for videollm serve (default: the shipped model)")
    parser.add_argument("--keep-minutes", type=float, default=2.0,
                        help="--keep-minutes for the server (default 2, so that sweeps happen during the run)")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="videollm-app-load-"))
    server = Server(args.model, ["--keep-minutes", str(args.keep_minutes)], env={"TMPDIR": str(tmp)})
    try:
        if not server.wait_ready(300):
            raise SystemExit("the server did not get ready within 300 s")
        url = f"http://127.0.0.1:{server.port}/"
        print(f"server ready in {server.ready_after:.1f} s; {proc_figures(server.proc.pid)}", flush=True)
        out: dict = {"model": args.model or "default", "cpus": os.cpu_count(), "rounds": []}
        for users in args.users:
            result = simultaneous(url, users)
            out["rounds"].append(result)
            print(f"{users:>3} at once: {result['answered']}/{result['requests']} answered, "
                  f"watch p50 {result['watch_p50_s']:.1f} s p95 {result['watch_p95_s']:.1f} s, "
                  f"ask p50 {result['ask_p50_s']:.2f} s p95 {result['ask_p95_s']:.2f} s, errors {result['errors']}",
                  flush=True)
        if args.visitors:
            print(f"{args.visitors} visitors one after another:", flush=True)
            seq = sequential(url, server.proc.pid, tmp, args.visitors)
            out["sequential"] = seq
            print(f"RSS after visitor 20 {seq['rss_warm_mb']:.0f} MB, after {args.visitors} "
                  f"{seq['rss_last_mb']:.0f} MB (max {seq['rss_max_mb']:.0f}); threads {seq['threads_warm']} -> "
                  f"{seq['threads_last']}; fds {seq['fds_warm']} -> {seq['fds_last']}; files in the work folder "
                  f"max {seq['files_max']}, at the end {seq['files_last']}; errors {seq['errors']}", flush=True)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(out, indent=1))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
