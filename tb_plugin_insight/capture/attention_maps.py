"""What the probe pass keeps of each attention call: the stored form of attention maps and health.

Per attention module and step (the budget is documented in docs/storage.md):

* the attention of one query per sample and head to every key (`query`: the class token, the last
  position of a causal model, else the mean over queries; with a text probe, each sequence's last
  real token or [CLS], see `AttentionPlan.for_text`), uint8 codes (explain/attention.to_codes);
* for the first `row_samples` probe samples, every query's attention, queries pooled into at most
  `max_queries` rows (a class token keeps its row; a square token grid is pooled in blocks), so the tab
  can show where a clicked patch or token attends;
* normalised entropy and max pre-softmax logit per head;
* for attention rollout, the attention averaged over heads (kept on the device until the pass ends).

All of it is reduced as soon as the call happens, so the full (N, heads, Q, K) probabilities of one
layer at a time exist, never those of every layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Optional, Union

import numpy as np
import torch

from tb_plugin_insight.capture import probe as probe_mod
from tb_plugin_insight.capture.maps import MapRecord
from tb_plugin_insight.explain import attention as attn_math
from tb_plugin_insight.explain import rollout as rollout_mod
from tb_plugin_insight.explain.attention import AttentionCall

QUERY_RULES = ("auto", "first", "last", "mean")


class QueryError(ValueError):
    """attention_query names a query the model's attention does not have."""


@dataclasses.dataclass(frozen=True)
class AttentionPlan:
    """What watch(..., attention_every=...) records; `keep` is the probe pass's per-call reduction."""

    every: int
    query: Union[str, int] = "auto"  # a QUERY_RULES name or a query index
    max_queries: int = 64
    row_samples: int = 1
    rollout: bool = True
    # text probes: the last non-padding position of each sequence (its "last" query, see `for_text`)
    positions: Optional[tuple[int, ...]] = None

    def for_text(self, mask: torch.Tensor) -> AttentionPlan:
        """This plan for a text probe with (N, L) attention mask `mask` (1 = real token): a causal
        model's chosen query is each sequence's last real token (padding after it would otherwise be
        chosen), an encoder's the first ([CLS]) rather than the mean over queries."""
        length = mask.shape[1]
        real = (mask != 0).long() * torch.arange(1, length + 1)
        last = tuple(int(v) - 1 if v > 0 else length - 1 for v in real.amax(dim=1).tolist())
        return dataclasses.replace(self, positions=last, rollout=False)  # rollout needs a patch grid

    def keep(self, name: str, call: AttentionCall) -> LayerAttention:
        """The stored form of one attention call (on the host, but the head means for rollout)."""
        probs = call.probs
        n, heads, length, keys = probs.shape
        rule, index = self._rule(length, keys, call.causal)
        if rule == "last_token" and self.positions is not None:
            at = torch.tensor(self.positions, device=probs.device)
            chosen = probs[torch.arange(n, device=probs.device), :, at]  # (N, H, K)
        else:
            chosen = probs[:, :, index] if rule == "index" else attn_math.chosen_rows(probs, rule)
        blocks = attn_math.query_blocks(length, self.max_queries)
        rows = attn_math.pooled_rows(probs[: self.row_samples], blocks) if self.row_samples else None
        head_mean = probs.mean(dim=1) if self.rollout and length == keys else None
        return LayerAttention(
            name=name,
            heads=heads,
            num_queries=length,
            num_keys=keys,
            causal=call.causal,
            rule=rule,
            index=index,
            chosen=attn_math.to_codes(chosen).cpu().numpy(),
            rows=None if rows is None else attn_math.to_codes(rows).cpu().numpy(),
            blocks=tuple(blocks),
            entropy=call.entropy.cpu().numpy(),
            max_logit=call.max_logit.cpu().numpy(),
            head_mean=head_mean,
            samples=n,
        )

    def _rule(self, length: int, keys: int, causal: bool) -> tuple[str, int]:
        if isinstance(self.query, int):
            if not -length <= self.query < length:
                raise QueryError(f"attention_query={self.query} is outside the {length} queries")
            return "index", self.query % length
        rule = attn_math.query_rule(length, keys, causal) if self.query == "auto" else self.query
        if self.positions is not None and rule == "last":  # text: each sequence's last real token
            if max(self.positions) >= length:
                raise QueryError(f"the text probe is longer than the {length} queries of this attention")
            return "last_token", -1
        if self.positions is not None and self.query == "auto":  # a text encoder: its [CLS] token
            return "first", 0
        return rule, {"first": 0, "last": length - 1}.get(rule, 0)


@dataclasses.dataclass
class LayerAttention:
    """One attention module's part of a probe pass, ready for the record builders."""

    name: str
    heads: int
    num_queries: int
    num_keys: int
    causal: bool
    rule: str
    index: int
    chosen: np.ndarray  # (N, heads, keys) uint8 codes
    rows: Optional[np.ndarray]  # (S, heads, R, keys) uint8 codes
    blocks: tuple[int, ...]  # stored row of each query
    entropy: np.ndarray  # (heads,)
    max_logit: np.ndarray  # (heads,)
    head_mean: Optional[torch.Tensor]  # (N, Q, K) for rollout, dropped once used
    samples: int
    module_type: str = ""
    order: int = 0


def rollout_record(layers: Mapping[str, Any]) -> Optional[MapRecord]:
    """The "rollout" CAM of the probe from every self-attention layer over the same token grid (a class
    token and a square grid, or a square grid), in call order; None when there is no such grid."""
    means = [
        layer.head_mean
        for layer in layers.values()
        if isinstance(layer, LayerAttention) and layer.head_mean is not None
    ]
    if not means or any(m.shape != means[0].shape for m in means):
        return None
    class_tokens, side = attn_math.grid_of(int(means[0].shape[-1]))
    if not side:
        return None
    maps = rollout_mod.rollout_maps(means, class_tokens, side)
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    scaled = (maps - low) / (high - low).clamp_min(1e-12)
    ranges = torch.cat([low.reshape(-1, 1), high.reshape(-1, 1)], dim=1)
    return MapRecord(
        maps={"rollout": probe_mod.maps_to_uint8(scaled)},
        predicted=None,
        probability=None,
        ranges={"rollout": ranges.double().cpu().numpy()},
    )
