"""Training loss that applies the LM head only where there are labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from videollm.lm.processor import IGNORE_INDEX

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def lm_loss(
    model: PreTrainedModel,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    position_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Next-token cross-entropy over labelled positions, computing logits only at those positions.

    Equal to the loss a ``*ForCausalLM`` model returns for ``labels`` (mean over tokens whose label is not
    ``-100``), but the (B, T, V) logits tensor is never built: the decoder gives hidden states and the
    head runs on the N labelled positions only — with answers a small part of a prompt full of visual
    tokens, that is most of the head's time and memory.

    Args:
        model: causal LM (may be wrapped, e.g. by peft; ``get_decoder`` / ``get_output_embeddings`` are used).
        inputs_embeds: (B, T, H) input embeddings (visual tokens scattered in).
        attention_mask: (B, T), 0 on padding.
        labels: (B, T) token ids aligned with the inputs (not shifted), ``-100`` where no loss is taken.
        position_ids: (B, T) or ``None`` for 0..T-1.

    Returns:
        Scalar float32 loss (0, still attached to the graph, when no position is labelled).
    """
    hidden = model.get_decoder()(
        inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state  # (B, T, H)
    targets = labels[:, 1:]  # (B, T-1): position t predicts token t + 1
    keep = targets != IGNORE_INDEX  # (B, T-1)
    selected = hidden[:, :-1][keep]  # (N, H)
    logits = model.get_output_embeddings()(selected).float()  # (N, V)
    softcap = getattr(model.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    if selected.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, targets[keep])
