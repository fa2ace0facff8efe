"""The videollm web app (Gradio): video chat, live scene captions, image chat, planning and About.

The ``app/`` folder installs as ``videollm_app`` (the name ``app`` is taken on PyPI)::

    from videollm.model import VideoLLM
    from videollm_app import build_demo, launch

    demo = build_demo(VideoLLM.from_pretrained("tiny"))
    launch(demo, host="127.0.0.1", port=7860)

``videollm serve`` does the same with the default model, but serves the page first and loads the model right after:
``build_demo`` also takes a ``ModelLoader``, and requests that need the model wait for it with a visible status.
"""

import os

# Gradio reads this when it is imported and at launch; the app must never phone home.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from .chat import ChatSession
from .loading import ModelLoader
from .samples import Samples, find_samples
from .server import launch, offline_environment
from .settings import AppLimits
from .ui import build_demo

__all__ = ["AppLimits", "ChatSession", "ModelLoader", "Samples", "build_demo", "find_samples", "launch",
           "offline_environment"]
