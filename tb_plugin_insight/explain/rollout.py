"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

How much each input token flows into each output position through all attention layers: per layer,
the attention averaged over heads plus the identity (the residual connection), rows renormalised to sum
to 1, multiplied through the layers from the first to the last. The row of the class token (or the mean
over the query rows without one) over the patch tokens is the rollout map of an image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def rollout(layers: Sequence[torch.Tensor]) -> torch.Tensor:
    """(N, T, T) rollout of per-layer attention given as (N, T, T) head means (or (N, H, T, T), averaged
    here), first layer first.

    Raises:
        ValueError: no layer, or layers whose token counts differ.
    """
    if not layers:
        raise ValueError("attention rollout needs at least one attention layer")
    result = None
    for attention in layers:
        a = attention.float().mean(dim=1) if attention.dim() == 4 else attention.float()
        if a.shape[-1] != a.shape[-2] or (result is not None and a.shape != result.shape):
            raise ValueError(
                "attention rollout needs self-attention over the same tokens in every layer, got"
                f" {tuple(a.shape)}"
            )
        a = a + torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else torch.bmm(a, result)
    assert result is not None
    return result


def rollout_maps(layers: Sequence[torch.Tensor], class_tokens: int, side: int) -> torch.Tensor:
    """(N, side, side): the rollout of the first token (with a class token) or the mean over all query
    rows (without) to the side x side patch tokens that follow the class tokens."""
    flow = rollout(layers)
    row = flow[:, 0] if class_tokens else flow.mean(dim=1)
    return row[:, class_tokens:].reshape(-1, side, side)
