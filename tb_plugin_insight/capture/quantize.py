"""Quantisation of maps with a per-map [min, max] scale: how feature maps and filters are stored.

A map x (any float values) is stored as 8-bit codes q together with its min and max (float32), and read
back as x' = min + q / 255 * (max - min) (`dequantize`), whatever the number of levels. With `bits` b,
only L = 2^b - 1 levels are used: the codes round(k * 255 / L), k = 0..L (for 6 bits 0, 4, 8, ..., 251,
255), each value taking the nearest of them. Fewer distinct codes compress better in PNG (6 bits: about
30% smaller grids than 8) and every reader stays unchanged.

Round-trip bound: for every finite value |x - x'| <= ceil(255 / L) * (max - min) / 510, half the
largest gap between two allowed codes, up to float32 rounding. That is (max - min) / 510 for 8 bits
(half a step of 255), (max - min) / (2 L) when L divides 255 (1, 2, 4 and 8 bits), and 5 (max - min) /
510 = (max - min) / 102 for the default 6 bits (its codes are 4 or 5 apart). A constant map (max ==
min) is stored as zeros and restored exactly. Non-finite values do not take part in the scale: NaN and
-Inf are stored as 0, +Inf as 255.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

MAX_BITS = 8


def check_bits(name: str, value: Any) -> int:
    """`value` as a number of bits 1..8.

    Raises:
        ValueError: anything else (the message names the option and the range).
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BITS:
        raise ValueError(f"{name} must be an int from 1 to {MAX_BITS} (bits per stored value), got {value!r}")
    return value


def levels(bits: int) -> int:
    """L = 2^bits - 1: the highest level (levels 0..L)."""
    return (1 << bits) - 1


def allowed_codes(bits: int) -> np.ndarray:
    """The 8-bit codes `bits`-bit values are stored as: round(k * 255 / L), k = 0..L (uint8, ascending)."""
    top = levels(bits)
    return np.array([math.floor(k * 255 / top + 0.5) for k in range(top + 1)], dtype=np.uint8)


def error_bound(span: Any, bits: int = MAX_BITS) -> Any:
    """The round-trip bound of the module docstring for maps of range `span` (= max - min)."""
    return math.ceil(255 / levels(bits)) * span / 510


def quantize(
    maps: torch.Tensor, map_dims: int = 2, bits: int = MAX_BITS
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 codes of `maps` (same shape and device) and each map's [min, max] (shape[:-map_dims] + (2,)).

    The last `map_dims` dimensions form one map; runs on the maps' device (one small copy to the host
    later), in float32. `bits` < 8 uses only the 2^bits codes of `allowed_codes`.
    """
    x = maps.detach().float()
    flat = x.flatten(start_dim=x.dim() - map_dims) if map_dims > 0 else x.unsqueeze(-1)
    lo, hi = torch.aminmax(flat, dim=-1)
    if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        scaled, scales = _scale_non_finite(flat)
        if bits >= MAX_BITS:
            return scaled.round().clamp(0, 255).to(torch.uint8).reshape(x.shape), scales
        return _nearest_code(scaled, bits).reshape(x.shape), scales
    span = hi - lo
    factor = torch.where(span > 0, 255.0 / span, torch.zeros_like(span)).unsqueeze(-1)
    # (x - lo) first (exact for close values, so a small span on a large offset keeps its precision),
    # then * factor: values in [0, 255] up to float rounding.
    shifted = (flat - lo.unsqueeze(-1)).mul_(factor)
    if bits >= MAX_BITS:
        # + 0.5 truncated: round half up; the values lie in [0.5, 255.5) so the cast needs no clamp.
        return shifted.add_(0.5).to(torch.uint8).reshape(x.shape), torch.stack([lo, hi], dim=-1)
    return _nearest_code(shifted, bits).reshape(x.shape), torch.stack([lo, hi], dim=-1)


def _nearest_code(scaled: torch.Tensor, bits: int) -> torch.Tensor:
    """The allowed code nearest to each value of `scaled` (0..255 floats; ties go up)."""
    codes = torch.from_numpy(allowed_codes(bits)).to(scaled.device)
    middles = (codes[1:].float() + codes[:-1].float()) * 0.5
    return codes[torch.bucketize(scaled, middles, right=True)]


def _scale_non_finite(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The slow path for maps holding NaN or Inf: values scaled to [0, 255] over the finite ones (NaN and
    -Inf to 0, +Inf to 255) and the scales."""
    finite = torch.isfinite(flat)
    lo = torch.where(finite, flat, torch.full_like(flat, torch.inf)).amin(dim=-1)
    hi = torch.where(finite, flat, torch.full_like(flat, -torch.inf)).amax(dim=-1)
    none = ~finite.any(dim=-1)
    lo = torch.where(none, torch.zeros_like(lo), lo)
    hi = torch.where(none, torch.zeros_like(hi), hi)
    span = (hi - lo).unsqueeze(-1)
    scaled = (flat - lo.unsqueeze(-1)) / torch.where(span > 0, span, torch.ones_like(span)) * 255.0
    scaled = torch.where(span > 0, scaled, torch.zeros_like(scaled))
    scaled = torch.where(flat == torch.inf, torch.full_like(scaled, 255.0), scaled)
    scaled = torch.where(torch.isfinite(scaled), scaled, torch.zeros_like(scaled))
    return scaled, torch.stack([lo, hi], dim=-1)


def dequantize(codes: np.ndarray, scale: np.ndarray, map_dims: int = 2) -> np.ndarray:
    """The float64 values stored codes stand for (the inverse of `quantize` up to the stated bound)."""
    q = np.asarray(codes, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    lo = s[..., 0].reshape(s.shape[:-1] + (1,) * map_dims)
    hi = s[..., 1].reshape(s.shape[:-1] + (1,) * map_dims)
    return lo + q / 255.0 * (hi - lo)
