"""Average pooling of stored maps to a maximum side: how feature and saliency maps stay small on disk.

A map whose side exceeds `max_side` is averaged over f x f blocks, f the smallest integer with
ceil(side / f) <= max_side for its longer side; both sides use the same f (the aspect is kept), and
blocks at the right and bottom edges that stick out of the map average only the pixels they cover
(ceil_mode: no pixel is dropped). A 56 x 56 map with max_side 32 becomes 28 x 28 (f = 2); a 112 x 112
saliency map with max_side 64 becomes 56 x 56. Pooling runs on the maps' device, in float32 (float64
for float64 maps), before quantisation, so the stored values are block means of the recorded values.
A NaN or Inf in a block makes that block's mean NaN or Inf.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch.nn import functional

from tb_plugin_insight import validate


def check_max_side(name: str, value: Any) -> Optional[int]:
    """`value` as a maximum side (None = no pooling).

    Raises:
        ValueError: not None and not a positive int (the message names the option).
    """
    if value is None:
        return None
    return validate.int_option(
        value, f"{name} must be a positive int (pixels) or None for full resolution, got {value!r}"
    )


def pool_factor(side: int, max_side: Optional[int]) -> int:
    """The smallest f >= 1 with ceil(side / f) <= max_side (1 when max_side is None)."""
    if max_side is None or side <= max_side:
        return 1
    return math.ceil(side / max_side)  # ceil(side / f) <= max_side  <=>  side <= f * max_side


def pooled_side(side: int, factor: int) -> int:
    return math.ceil(side / factor)


def pool_2d(maps: torch.Tensor, factor: int) -> torch.Tensor:
    """Block means over factor x factor blocks of the last two dimensions (same tensor if factor is 1)."""
    if factor <= 1:
        return maps
    lead = maps.shape[:-2]
    flat = _floating(maps.reshape(-1, 1, *maps.shape[-2:]))
    pooled = functional.avg_pool2d(flat, factor, ceil_mode=True)
    return pooled.reshape(*lead, *pooled.shape[-2:])


def pool_rows(maps: torch.Tensor, factor: int) -> torch.Tensor:
    """Block means over `factor` consecutive entries of the last dimension (same tensor if 1)."""
    if factor <= 1:
        return maps
    lead = maps.shape[:-1]
    flat = _floating(maps.reshape(-1, 1, 1, maps.shape[-1]))
    pooled = functional.avg_pool2d(flat, (1, factor), ceil_mode=True)
    return pooled.reshape(*lead, pooled.shape[-1])


def _floating(maps: torch.Tensor) -> torch.Tensor:
    """float64 stays; everything else (half types, ints) is averaged in float32."""
    return maps if maps.dtype in (torch.float32, torch.float64) else maps.float()
