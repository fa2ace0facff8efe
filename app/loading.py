"""The app's model as something that may still be loading, so that the page is served before the model is ready.

Importing torch and transformers and loading the checkpoint takes longer than serving the page; ``videollm serve``
serves the page first and loads the model right after. Handlers ask the ``ModelLoader`` for the model: they get it at
once when it is loaded, and otherwise show a "loading the model" status and wait for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from videollm.errors import ModelError

_log = logging.getLogger(__name__)


class ModelLoader:
    """A model that is loaded once, in whichever thread asks first; every other thread waits for that load.

    Args:
        load: builds the model (e.g. ``lambda: VideoLLM.from_pretrained(spec)``); called at most once.
    """

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._model: Any = None
        self._error: BaseException | None = None

    @classmethod
    def loaded(cls, model: Any) -> ModelLoader:
        """A loader holding an already loaded model (``ready`` is True at once)."""
        loader = cls(lambda: model)
        loader.load()
        return loader

    @property
    def ready(self) -> bool:
        """True once the model is loaded (False while loading and after a failed load)."""
        return self._done.is_set() and self._error is None

    @property
    def failed(self) -> bool:
        """True once a load has failed (``get`` raises a ``ModelError`` naming why)."""
        return self._done.is_set() and self._error is not None

    def load(self) -> Any:
        """Load the model in the calling thread; a second call returns the same model (or waits for a running load).

        Returns:
            The model; raises whatever the load function raised (the first caller gets the original exception,
            later ones a ``ModelError`` naming it).
        """
        with self._lock:
            if not self._done.is_set():
                try:
                    self._model = self._load()
                except BaseException as err:
                    self._error = err
                    raise
                finally:
                    self._done.set()
                return self._model
        return self.get()

    def start(self) -> ModelLoader:
        """Load in a background daemon thread and return at once; ``get`` waits for it."""
        threading.Thread(target=self._load_in_background, name="videollm-model-load", daemon=True).start()
        return self

    def get(self, timeout: float | None = None) -> Any:
        """The model, waiting for a running load.

        Args:
            timeout: seconds to wait; None waits as long as the load takes.

        Raises:
            ModelError: the load failed, or ``timeout`` passed first.
        """
        if not self._done.wait(timeout):
            raise ModelError("the model is still loading; try again in a moment")
        if self._error is not None:
            raise ModelError(f"the model failed to load: {self._error}")
        return self._model

    def _load_in_background(self) -> None:
        try:
            self.load()
        except Exception as err:  # noqa: BLE001 (kept in self._error: every request that needs the model reports it)
            _log.error("videollm: the model failed to load: %s", err)
