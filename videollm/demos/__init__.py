"""Two small recurrent sequence demos on audio, trained by the project on generated data.

- ``videollm.demos.dance``: dance steps from music (conv + LSTM encoder, auto-conditioned LSTM decoder).
- ``videollm.demos.speech``: streaming command-word recognition (Legendre-Memory-Unit recurrent network).

The shipped weights live in ``data/demos/`` (installed as package data; see its README for the commands that
reproduce them).
"""

from __future__ import annotations

from videollm.assets import demo_weights_dir

WEIGHTS_DIR = demo_weights_dir()
