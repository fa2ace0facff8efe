"""The project's shipped data, installed as package data of ``videollm_data``: the trained embedded checkpoint
(``checkpoints/embedded``), the sequence demos' weights (``demos``) and the synthetic-world samples
(``samples/world``). Code finds them through ``videollm.assets``, never by a path relative to a source file."""
