"""Put visual embeddings into the placeholder positions of the LM's input embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from videollm.errors import ModelError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def scatter_visual(
    inputs_embeds: torch.Tensor, input_ids: torch.Tensor, visual: torch.Tensor, placeholder_id: int
) -> torch.Tensor:
    """Replace the embeddings at placeholder positions with visual tokens, in reading order.

    Out of place (``masked_scatter``), so gradients flow into ``visual`` and ``inputs_embeds`` is untouched.

    Args:
        inputs_embeds: (B, T, H) token embeddings.
        input_ids: (B, T) token ids holding the placeholders.
        visual: (B, R, H) — row b fills the R placeholders of sample b — or a flat (N, H) consumed in
            row-major order over the batch (samples may then hold different numbers of placeholders).
        placeholder_id: the placeholder token id.

    Returns:
        (B, T, H) embeddings, dtype of ``inputs_embeds``.

    Raises:
        ModelError: the number of visual tokens does not match the number of placeholders (per sample for
            a 3-D ``visual``).
    """
    if inputs_embeds.shape[:2] != input_ids.shape:
        raise ModelError(
            f"inputs_embeds {tuple(inputs_embeds.shape)} does not match input_ids {tuple(input_ids.shape)}"
        )
    hidden = inputs_embeds.shape[-1]
    if visual.shape[-1] != hidden or visual.dim() not in (2, 3):
        raise ModelError(f"visual tokens must be (B, R, {hidden}) or (N, {hidden}), got {tuple(visual.shape)}")
    mask = input_ids == placeholder_id  # (B, T)
    per_sample = mask.sum(dim=1)  # (B,)
    total = int(per_sample.sum())
    n_visual = visual.shape[0] * visual.shape[1] if visual.dim() == 3 else visual.shape[0]
    if n_visual != total:
        raise ModelError(f"expected {total} visual tokens for {total} placeholders in the prompt, got {n_visual}")
    if visual.dim() == 3:
        if visual.shape[0] != input_ids.shape[0]:
            raise ModelError(f"visual batch {visual.shape[0]} does not match the prompt batch {input_ids.shape[0]}")
        if bool((per_sample != visual.shape[1]).any()):
            raise ModelError(
                f"expected {visual.shape[1]} placeholders in every sample, got {per_sample.tolist()} per sample"
            )
    flat = visual.reshape(-1, hidden).to(inputs_embeds.dtype)  # (N, H)
    return inputs_embeds.masked_scatter(mask.unsqueeze(-1), flat)


def embed_with_visual(
    model: PreTrainedModel, input_ids: torch.Tensor, visual: torch.Tensor | None, placeholder_id: int
) -> torch.Tensor:
    """Look up token embeddings and fill the placeholders with ``visual``.

    Args:
        model: the causal LM (its input embedding table is used).
        input_ids: (B, T) token ids.
        visual: (B, R, H) or (N, H) visual tokens, or ``None`` for a text-only prompt (which must then hold
            no placeholders).
        placeholder_id: the placeholder token id.

    Returns:
        (B, T, H) input embeddings.
    """
    embeds = model.get_input_embeddings()(input_ids)  # (B, T, H)
    if visual is None:
        visual = embeds.new_zeros(0, embeds.shape[-1])
    return scatter_visual(embeds, input_ids, visual, placeholder_id)
