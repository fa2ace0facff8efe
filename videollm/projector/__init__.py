"""Projector: maps bridge readout tokens (..., width) into the LLM's embedding space (..., llm_hidden)."""

from videollm.projector.projector import PROJECTOR_KINDS, ProjectorConfig, build_projector

__all__ = ["PROJECTOR_KINDS", "ProjectorConfig", "build_projector"]
