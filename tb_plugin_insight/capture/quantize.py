"""8-bit quantisation of maps with a per-map [min, max] scale: how feature maps and filters are stored.

A map x (any float values) is stored as q = round((x - min) / (max - min) * 255) in uint8 together with
its min and max (float32, stored as float64). `dequantize` gives x' = min + q / 255 * (max - min), so
for every finite value |x - x'| <= (max - min) / 510 (half a quantisation step), up to float32
rounding. A constant map (max == min) is stored as zeros and restored exactly. Non-finite values do
not take part in the scale: NaN and -Inf are stored as 0, +Inf as 255.
"""

from __future__ import annotations

import numpy as np
import torch


def quantize(maps: torch.Tensor, map_dims: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 codes of `maps` (same shape and device) and each map's [min, max] (shape[:-map_dims] + (2,)).

    The last `map_dims` dimensions form one map; runs on the maps' device (one small copy to the host
    later), in float32.
    """
    x = maps.detach().float()
    flat = x.flatten(start_dim=x.dim() - map_dims) if map_dims > 0 else x.unsqueeze(-1)
    lo, hi = torch.aminmax(flat, dim=-1)
    if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        return _quantize_non_finite(flat, x.shape)
    span = hi - lo
    factor = torch.where(span > 0, 255.0 / span, torch.zeros_like(span)).unsqueeze(-1)
    # (x - lo) first (exact for close values, so a small span on a large offset keeps its precision),
    # then * factor + 0.5 truncated: round half up; the values lie in [0.5, 255.5) up to float
    # rounding, so the cast needs no clamp.
    shifted = (flat - lo.unsqueeze(-1)).mul_(factor).add_(0.5)
    return shifted.to(torch.uint8).reshape(x.shape), torch.stack([lo, hi], dim=-1)


def _quantize_non_finite(flat: torch.Tensor, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """The slow path for maps holding NaN or Inf: scales over the finite values only."""
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
    codes = scaled.round().clamp(0, 255).to(torch.uint8).reshape(shape)
    return codes, torch.stack([lo, hi], dim=-1)


def dequantize(codes: np.ndarray, scale: np.ndarray, map_dims: int = 2) -> np.ndarray:
    """The float64 values stored codes stand for (the inverse of `quantize` up to the stated bound)."""
    q = np.asarray(codes, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    lo = s[..., 0].reshape(s.shape[:-1] + (1,) * map_dims)
    hi = s[..., 1].reshape(s.shape[:-1] + (1,) * map_dims)
    return lo + q / 255.0 * (hi - lo)
