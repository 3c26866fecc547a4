"""Attention probabilities and their health numbers as tensor formulas (no hooks, no model).

Fused attention kernels (`F.scaled_dot_product_attention`, the attention inside
`nn.MultiheadAttention`) never materialise the probabilities, so the probe pass recomputes them from
the same q and k: softmax(q k^T * scale + mask). These functions are that computation, the same rules
as the kernels (boolean masks: True takes part; float masks are added; `is_causal`: the lower triangle,
aligned top-left; grouped-query attention repeats each key head over its query heads), plus the two
numbers that tell a head's training is going wrong:

* normalised entropy: the entropy of each query's distribution divided by log(number of keys it may
  attend to), averaged over queries (1: uniform, 0: one key; Zhai et al. 2023);
* the maximum pre-softmax logit (Wortsman et al. 2023; QK-clip).

A key counts as masked when its logit is below `MASKED` (every framework's mask value, -inf or the
dtype's lowest, is far below it).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch

MASKED = -1e4  # logits below this are masked keys


@dataclasses.dataclass
class AttentionCall:
    """One attention computation of one module, detached, float32.

    Attributes:
        probs: (N, H, Q, K) attention probabilities (rows of masked queries are 0).
        entropy: (H,) normalised entropy, mean over the probe's queries that have at least 2 keys
            (NaN when none has).
        max_logit: (H,) largest pre-softmax logit over unmasked keys (NaN when unknown).
        causal: each query attends to itself and earlier keys only.
    """

    probs: torch.Tensor
    entropy: torch.Tensor
    max_logit: torch.Tensor
    causal: bool


def sdpa_logits(
    query: torch.Tensor,
    key: torch.Tensor,
    attn_mask: Optional[torch.Tensor] = None,
    is_causal: bool = False,
    scale: Optional[float] = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """The (N, H, Q, K) float32 logits `F.scaled_dot_product_attention` takes the softmax of (leading
    dimensions flattened into N; inputs without a head dimension get one head)."""
    q, k = _heads(query.detach()).float(), _heads(key.detach()).float()
    if enable_gqa and q.shape[1] != k.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    factor = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    logits = torch.matmul(q, k.transpose(-2, -1)) * factor
    length, keys = logits.shape[-2:]
    if is_causal:
        allowed = torch.ones(length, keys, dtype=torch.bool, device=logits.device).tril()
        logits = logits.masked_fill(~allowed, float("-inf"))
    if attn_mask is not None:
        mask = attn_mask.detach()
        mask = mask.reshape(-1, *mask.shape[-3:]) if mask.dim() > 4 else mask
        if mask.dtype == torch.bool:
            logits = logits.masked_fill(~mask, float("-inf"))
        else:
            logits = logits + mask.float()
    return logits


def _heads(x: torch.Tensor) -> torch.Tensor:
    """(..., H, L, E) -> (N, H, L, E); (L, E) and (N, L, E) get one head."""
    if x.dim() == 2:
        return x[None, None]
    if x.dim() == 3:
        return x[:, None]
    return x.reshape(-1, *x.shape[-3:])


def from_logits(logits: torch.Tensor, causal: Optional[bool] = None) -> AttentionCall:
    """Probabilities, entropy and max logit from (N, H, Q, K) pre-softmax logits (mask included).

    `causal`: known from the call (`is_causal`); None reads it from the mask (no query sees a later key).
    """
    logits = logits.detach().float()
    valid = logits > MASKED
    probs = torch.softmax(logits.masked_fill(~valid, float("-inf")), dim=-1).nan_to_num(0.0)
    heads = logits.shape[1]
    max_logit = logits.masked_fill(~valid, float("-inf")).transpose(0, 1).reshape(heads, -1).amax(dim=1)
    max_logit = torch.where(torch.isfinite(max_logit), max_logit, torch.full_like(max_logit, math.nan))
    if causal is None:
        causal = _looks_causal(valid)
    return AttentionCall(probs, entropy(probs, valid), max_logit, causal)


def entropy(probs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(H,) mean over (sample, query) of each query's entropy / log(its unmasked keys); queries with
    fewer than 2 keys are left out (NaN for a head with none left)."""
    keys = valid.sum(dim=-1).float().expand(probs.shape[:-1])  # (N, H, Q)
    plogp = torch.where(probs > 0, probs * probs.clamp_min(1e-30).log(), torch.zeros_like(probs))
    per_query = -plogp.sum(dim=-1) / keys.clamp_min(2).log()
    counted = (keys >= 2).float()
    total = (per_query * counted).transpose(0, 1).reshape(probs.shape[1], -1).sum(dim=1)
    count = counted.transpose(0, 1).reshape(probs.shape[1], -1).sum(dim=1)
    return total / count  # 0 / 0 = NaN: no query with a choice of keys


def _looks_causal(valid: torch.Tensor) -> bool:
    """Self-attention whose first query sees only the first key while the last sees more."""
    length, keys = valid.shape[-2:]
    if length < 2 or length != keys:
        return False
    return bool(not valid[..., 0, 1:].any() and valid[..., -1, :].sum(dim=-1).gt(1).all())


def query_rule(length: int, keys: int, causal: bool) -> str:
    """Which query's attention is stored per layer and head by default: "last" for causal models (the
    position that predicts the next token), "first" when the tokens are a class token and a square grid
    (ViT-style), else "mean" over queries."""
    if causal:
        return "last"
    if length == keys and grid_of(keys)[0] >= 1:
        return "first"
    return "mean"


# Leading tokens before a grid of patches: a class token, DeiT's distillation token, register tokens
# (as explain/layouts.py allows for CAMs).
MAX_LEADING_TOKENS = 16


def grid_of(tokens: int) -> tuple[int, int]:
    """(leading tokens k, grid side s) of a token sequence of k + s*s tokens, the smallest such k (a
    class token, then a distillation token or registers; at most MAX_LEADING_TOKENS and never more
    than half the grid), else (0, 0); grids of side 2 or more only."""
    for lead in range(0, min(MAX_LEADING_TOKENS, tokens) + 1):
        rest = tokens - lead
        side = math.isqrt(max(rest, 0))
        if rest >= max(2 * lead, 4) and side * side == rest:
            return lead, side
    return 0, 0


def chosen_rows(probs: torch.Tensor, rule: str) -> torch.Tensor:
    """(N, H, K): the attention of the first query, the last, or the mean over queries (masked rows,
    all zero, left out of the mean)."""
    if rule == "first":
        return probs[:, :, 0]
    if rule == "last":
        return probs[:, :, -1]
    live = (probs.sum(dim=-1, keepdim=True) > 0).float()
    return (probs * live).sum(dim=2) / live.sum(dim=2).clamp_min(1)


def query_blocks(length: int, max_rows: int) -> list[int]:
    """For each of `length` queries the stored row it is pooled into, at most `max_rows` rows: a class
    token keeps its own row, a square grid is pooled in f x f blocks, other sequences in runs of f."""
    lead, side = grid_of(length)
    if side:
        factor = 1
        while lead + math.ceil(side / factor) ** 2 > max_rows:
            factor += 1
        per_row = math.ceil(side / factor)
        grid = [lead + (i // factor) * per_row + (j // factor) for i in range(side) for j in range(side)]
        return list(range(lead)) + grid
    factor = max(1, math.ceil(length / max_rows))
    return [q // factor for q in range(length)]


def pooled_rows(probs: torch.Tensor, blocks: list[int]) -> torch.Tensor:
    """(N, H, R, K): the mean attention of the queries of each block (`query_blocks`)."""
    index = torch.tensor(blocks, device=probs.device)
    rows = int(index.max().item()) + 1
    total = torch.zeros(*probs.shape[:2], rows, probs.shape[-1], device=probs.device, dtype=probs.dtype)
    total.index_add_(2, index, probs)
    count = torch.bincount(index, minlength=rows).to(probs.dtype).clamp_min(1)
    return total / count[:, None]


def to_codes(probs: torch.Tensor) -> torch.Tensor:
    """uint8 codes q of probabilities p: q = round(255 * sqrt(p)), so p = (q / 255)^2 (finer near 0,
    where most attention lies)."""
    return (probs.clamp(0, 1).sqrt() * 255).round().to(torch.uint8)
