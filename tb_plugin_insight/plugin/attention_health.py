"""Alerts on attention health, from the per-head tables of ATTENTION_STATS (pure: no TensorBoard, no torch).

* entropy collapse: a head's normalised attention entropy (1: uniform over the keys, 0: all on one key)
  falls below `entropy_min`. Zhai et al. 2023 ("Stabilizing Transformer Training by Preventing
  Attention Entropy Collapse", ICML) show training instability goes with attention entropy collapsing
  towards 0; default 0.1.
* attention-logit growth: a head's maximum pre-softmax logit exceeds `logit_growth` times its value at
  the first recorded step (at least 1 in magnitude). Wortsman et al. 2023 ("Small-scale proxies for
  large-scale Transformer training instabilities", arXiv 2309.14322) trace divergence to attention
  logits growing by orders of magnitude; QK-clip (Kimi K2, MuonClip) caps them near 100. Default 10.

Each alert is {"kind", "layer", "head", "first_step", "value", "threshold"}, the format the
transformer-health card shares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

ENTROPY_MIN = 0.1
LOGIT_GROWTH = 10.0


def attention_alerts(
    steps: Sequence[int],
    layers: Sequence[str],
    entropy: Sequence[Sequence[Sequence[float]]],
    max_logit: Sequence[Sequence[Sequence[float]]],
    *,
    entropy_min: float = ENTROPY_MIN,
    logit_growth: float = LOGIT_GROWTH,
) -> list[dict[str, Any]]:
    """Alerts of every layer and head, with the first step each condition held.

    `entropy[l][h][s]` and `max_logit[l][h][s]` are layer `layers[l]`, head `h` at `steps[s]` (NaN:
    not recorded). Sorted by first step, then layer order, then head.

    Raises:
        ValueError: tables whose shape does not match `layers` and `steps`, or a threshold that is not a
            positive finite number.
    """
    for name, value in (("entropy_min", entropy_min), ("logit_growth", logit_growth)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if len(entropy) != len(layers) or len(max_logit) != len(layers):
        raise ValueError("entropy and max_logit need one table per layer")
    alerts: list[tuple[int, int, dict[str, Any]]] = []
    for index, layer in enumerate(layers):
        for head, row in enumerate(entropy[index]):
            _check_row(row, steps)
            found = _first(row, lambda v: v < entropy_min)
            if found is not None:
                alert = _alert("entropy_collapse", layer, head, steps[found], row[found], entropy_min)
                alerts.append((steps[found], index, alert))
        for head, row in enumerate(max_logit[index]):
            _check_row(row, steps)
            start = _first(row, lambda v: True)
            if start is None:
                continue
            limit = logit_growth * max(abs(row[start]), 1.0)
            found = _first(row, lambda v, limit=limit: v > limit)
            if found is not None:
                alert = _alert("logit_growth", layer, head, steps[found], row[found], limit)
                alerts.append((steps[found], index, alert))
    alerts.sort(key=lambda item: (item[0], item[1], item[2]["head"], item[2]["kind"]))
    return [alert for _, _, alert in alerts]


def _check_row(row: Sequence[float], steps: Sequence[int]) -> None:
    if len(row) != len(steps):
        raise ValueError(f"a head's row has {len(row)} values for {len(steps)} steps")


def _first(row: Sequence[float], test: Any) -> int | None:
    """Index of the first finite value passing `test`."""
    for i, value in enumerate(row):
        if value is not None and math.isfinite(value) and test(value):
            return i
    return None


def _alert(kind: str, layer: str, head: int, step: int, value: float, threshold: float) -> dict[str, Any]:
    return {
        "kind": kind,
        "layer": layer,
        "head": head,
        "first_step": int(step),
        "value": float(value),
        "threshold": float(threshold),
    }
