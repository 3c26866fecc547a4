"""Quantisation of maps with a per-map [min, max] scale: how feature maps and filters are stored.

A map x (any float values) is stored as 8-bit codes q together with its min and max (float32), and read
back as x' = min + q / 255 * (max - min) (`dequantize`), whatever the number of levels. With `bits` b,
L + 1 evenly spaced codes are used, multiples of 255 / L, where L is the largest divisor of 255 (1, 3,
5, 15, 17, 51, 85, 255) not above 2^b - 1: 8 bits use all 256 codes, the default 6 bits the 52 codes
0, 5, 10, ..., 255. Each value takes the nearest code (its level round((x - min) / (max - min) * L),
halves up). Fewer, evenly spaced codes compress better in PNG (6 bits: about 35% smaller grids than
8 bits), and every reader stays unchanged. (2^b - 1 levels, e.g. 63, would need codes 4 or 5 apart:
the same worst-case error as 51 levels and about 15% larger PNGs.)

Round-trip bound: for every finite value |x - x'| <= (max - min) / (2 L), half a level, up to float32
rounding: (max - min) / 510 for 8 bits, (max - min) / 102 for 6. A constant map (max == min) is stored
as zeros and restored exactly. Non-finite values do not take part in the scale: NaN and -Inf are stored
as 0, +Inf as 255.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tb_plugin_insight import validate

MAX_BITS = 8
_DIVISORS_OF_255 = (1, 3, 5, 15, 17, 51, 85, 255)


def check_bits(name: str, value: Any) -> int:
    """`value` as a number of bits 1..8.

    Raises:
        ValueError: anything else (the message names the option and the range).
    """
    message = f"{name} must be an int from 1 to {MAX_BITS} (bits per stored value), got {value!r}"
    return validate.int_option(value, message, high=MAX_BITS)


def levels(bits: int) -> int:
    """L: the largest divisor of 255 not above 2^bits - 1 (levels 0..L, codes k * 255 / L)."""
    top = (1 << bits) - 1
    return max(d for d in _DIVISORS_OF_255 if d <= top)


def allowed_codes(bits: int) -> np.ndarray:
    """The 8-bit codes `bits`-bit values are stored as: k * 255 / L, k = 0..L (uint8, ascending)."""
    top = levels(bits)
    return (np.arange(top + 1) * (255 // top)).astype(np.uint8)


def error_bound(span: Any, bits: int = MAX_BITS) -> Any:
    """The round-trip bound of the module docstring for maps of range `span` (= max - min)."""
    return span / (2 * levels(bits))


def quantize(
    maps: torch.Tensor, map_dims: int = 2, bits: int = MAX_BITS
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 codes of `maps` (same shape and device) and each map's [min, max] (shape[:-map_dims] + (2,)).

    The last `map_dims` dimensions form one map; runs on the maps' device (one small copy to the host
    later), in float32. `bits` < 8 uses only the codes of `allowed_codes`.
    """
    x = maps.detach().float()
    flat = x.flatten(start_dim=x.dim() - map_dims) if map_dims > 0 else x.unsqueeze(-1)
    top = levels(bits)
    lo, hi = torch.aminmax(flat, dim=-1)
    if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        scaled, scales = _scale_non_finite(flat, top)
        return _codes(scaled.add_(0.5), top).reshape(x.shape), scales
    span = hi - lo
    factor = torch.where(span > 0, top / span, torch.zeros_like(span)).unsqueeze(-1)
    # (x - lo) first (exact for close values, so a small span on a large offset keeps its precision),
    # then * factor + 0.5 truncated: the level rounded half up; the values lie in [0.5, L + 0.5) up to
    # float rounding, so the cast needs no clamp. For 8 bits this is the code itself.
    shifted = (flat - lo.unsqueeze(-1)).mul_(factor).add_(0.5)
    return _codes(shifted, top).reshape(x.shape), torch.stack([lo, hi], dim=-1)


def _codes(level_plus_half: torch.Tensor, top: int) -> torch.Tensor:
    """uint8 codes of levels given as (level + 0.5) floats in [0.5, top + 0.5)."""
    codes = level_plus_half.to(torch.uint8)
    return codes if top == 255 else codes.mul_(255 // top)


def _scale_non_finite(flat: torch.Tensor, top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The slow path for maps holding NaN or Inf: levels rounded to integers in [0, top] over the finite
    values (NaN and -Inf to 0, +Inf to top) and the scales."""
    finite = torch.isfinite(flat)
    lo = torch.where(finite, flat, torch.full_like(flat, torch.inf)).amin(dim=-1)
    hi = torch.where(finite, flat, torch.full_like(flat, -torch.inf)).amax(dim=-1)
    none = ~finite.any(dim=-1)
    lo = torch.where(none, torch.zeros_like(lo), lo)
    hi = torch.where(none, torch.zeros_like(hi), hi)
    span = (hi - lo).unsqueeze(-1)
    scaled = (flat - lo.unsqueeze(-1)) / torch.where(span > 0, span, torch.ones_like(span)) * float(top)
    scaled = torch.where(span > 0, scaled, torch.zeros_like(scaled))
    scaled = torch.where(flat == torch.inf, torch.full_like(scaled, float(top)), scaled)
    scaled = torch.where(torch.isfinite(scaled), scaled, torch.zeros_like(scaled))
    return scaled.round().clamp(0, top), torch.stack([lo, hi], dim=-1)


def dequantize(codes: np.ndarray, scale: np.ndarray, map_dims: int = 2) -> np.ndarray:
    """The float64 values stored codes stand for (the inverse of `quantize` up to the stated bound)."""
    q = np.asarray(codes, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    lo = s[..., 0].reshape(s.shape[:-1] + (1,) * map_dims)
    hi = s[..., 1].reshape(s.shape[:-1] + (1,) * map_dims)
    return lo + q / 255.0 * (hi - lo)
