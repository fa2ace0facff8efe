"""Serving the app: offline, local-only, with the app's limits (upload size, queue, concurrency, served paths)."""

from __future__ import annotations

import os
import socket

import gradio as gr

from .settings import AppLimits


def theme() -> gr.themes.Base:
    """The app's theme, with system fonts only: the default theme makes the browser fetch Google Fonts."""
    sans = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="sky", neutral_hue="slate", font=sans, font_mono=mono)


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, block: bool = True,
           quiet: bool = False):
    """Serve ``demo`` (from ``build_demo``) on ``host:port``.

    Gradio serves only its own upload cache and ``allowed_paths``; the latter is just the sample folder (so the
    examples can be shown), and the cache is the app's work folder when ``GRADIO_TEMP_DIR`` is not set by the user.

    Args:
        demo: the app.
        host: interface to bind (127.0.0.1 keeps it on this machine).
        port: TCP port; None or 0 picks a free one.
        block: wait until interrupted (False returns right after start, for tests).
        quiet: no start-up banner.

    Returns:
        ``(app, local_url)``.
    """
    from .text import CSS

    limits: AppLimits = getattr(demo, "videollm_limits", AppLimits())
    samples = getattr(demo, "videollm_samples", None)
    allowed = [str(samples.root)] if samples is not None and samples.root.is_dir() else []
    demo.queue(default_concurrency_limit=limits.concurrency, max_size=limits.queue_size)
    app, url, _ = demo.launch(
        server_name=host, server_port=port or free_port(host), prevent_thread_lock=not block, quiet=quiet,
        share=False, inbrowser=False, ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False,
        allowed_paths=allowed, max_file_size=f"{limits.max_upload_mb}mb", show_error=True,
        footer_links=["api", "settings"], theme=theme(), css=CSS,
    )
    return app, url


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def offline_environment(workdir: str | os.PathLike | None = None) -> None:
    """Environment for an offline, private server; call before Gradio serves anything.

    No analytics or version checks, no hub look-ups, and Gradio's upload cache inside the app's own folder (unless
    the user chose one with ``GRADIO_TEMP_DIR``).
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_SERVER_NAME", "127.0.0.1")
    if workdir is not None:
        os.environ.setdefault("GRADIO_TEMP_DIR", str(workdir))
