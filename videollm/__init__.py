"""videollm: long-video understanding with SceneTiling and recurrent memory bridges.

Importing this package is cheap: no torch, no model loads, no network. Submodules load what they need.
"""

__version__ = "0.1.0"
