"""Errors that reach the user as one line (``videollm: error: <message>``) and a non-zero exit code."""

from __future__ import annotations

import os


class VideollmError(Exception):
    """Base class of every error the CLI turns into a one-line message.

    ``exit_code`` is what the process returns when this error ends a command.
    """

    exit_code = 2


class UsageError(VideollmError):
    """The command line itself is wrong (bad option value, missing model directory, ...)."""


class VideoError(VideollmError):
    """A video (file, device or URL) cannot be opened or decoded.

    Args:
        path: what the user passed (file path, webcam index or URL).
        reason: a short human reason, no traceback text.
    """

    def __init__(self, path: str | os.PathLike | int, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelError(VideollmError):
    """A model or checkpoint cannot be loaded or does not fit the request."""


class OutputError(VideollmError):
    """An output cannot be written (disk full, read-only folder, no permission): a batch stops here, since every
    later output would fail the same way.

    Args:
        path: the output file or folder.
        err: the operating system's error (or its text).
    """

    def __init__(self, path: str | os.PathLike, err: OSError | str):
        self.path = str(path)
        self.text = err if isinstance(err, str) else err.strerror or str(err)
        self.reason = f"cannot write: {self.text}"
        super().__init__(f"{self.path}: {self.reason}")
