"""On-device reductions of captured tensors to small records (moved to the host once per step)."""

from __future__ import annotations

import math

import torch

from tb_plugin_insight import metadata

NUM_STATS = len(metadata.STAT_FIELDS)


def stats_dtype(device: torch.device) -> torch.dtype:
    """float64 keeps element counts exact; MPS has no float64, so it gets float32."""
    return torch.float32 if device.type == "mps" else torch.float64


@torch.no_grad()
def activation_stats(x: torch.Tensor) -> torch.Tensor:
    """Statistics vector of `x` in metadata.STAT_FIELDS order, computed where `x` lives.

    mean/std/min/max ignore NaN and Inf (so one bad value cannot poison them); NaN and Inf are counted
    instead. std is the population standard deviation. Empty tensors give NaN statistics and 0 counts.
    """
    x = x.detach()
    dtype = stats_dtype(x.device)
    numel = x.numel()
    if numel == 0:
        nan = float("nan")
        return torch.tensor([nan, nan, nan, nan, nan, 0, 0, 0], dtype=dtype, device=x.device)
    if not x.is_floating_point():
        x = x.to(torch.float32)
    if x.device.type == "cpu":
        fast = _all_finite_stats(x, numel, dtype)
        if fast is not None:
            return fast
    return _masked_stats(x, numel, dtype)


# Below this size the two-pass variance costs nothing; above it, one pass (a BLAS dot) is used when safe.
_ONE_PASS_MIN_NUMEL = 1 << 16


def _all_finite_stats(x: torch.Tensor, numel: int, dtype: torch.dtype) -> torch.Tensor | None:
    """Fast statistics, or None when x holds NaN/Inf (then the masked path runs).

    Only on the CPU, where reading a scalar back costs nothing; on accelerators that would be a sync.
    min/max come first: both finite proves there is no NaN or Inf (aminmax propagates NaN), and a range
    that excludes 0 proves there are no zeros, which skips the zero count (two of the passes below).
    Large tensors get the variance from one pass, E[x^2] - mean^2 with the sum of squares as a BLAS dot
    (no temporary; about 1e-6 relative error), unless the mean dominates the spread (mean^2 > 3 var),
    where that formula cancels: then, as for small tensors, the exact two-pass variance (sum, then
    squares of deviations) is computed. A sum that overflows to Inf also falls back to the masked path.
    """
    lo, hi = (float(v) for v in torch.aminmax(x))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    src = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    mean = float(src.sum()) / numel
    if not math.isfinite(mean):
        return None
    var = math.nan
    if numel >= _ONE_PASS_MIN_NUMEL:
        flat = src.reshape(-1)
        mean_sq = float(torch.dot(flat, flat)) / numel
        if not math.isfinite(mean_sq):
            return None
        var = max(mean_sq - mean * mean, 0.0)
        if mean * mean > 3 * var:
            var = math.nan  # cancellation: recompute exactly below
    if math.isnan(var):
        var = float((src - mean).square_().sum()) / numel
        if not math.isfinite(var):
            return None
    zero_fraction = _count_zeros(x) / numel if lo <= 0.0 <= hi else 0.0
    values = [mean, math.sqrt(var), lo, hi, zero_fraction, 0, 0, numel]
    return torch.tensor(values, dtype=dtype)


# Float dtype -> (integer dtype of the same width, mask clearing the sign bit).
_MAGNITUDE_BITS = {
    torch.float64: (torch.int64, 0x7FFF_FFFF_FFFF_FFFF),
    torch.float32: (torch.int32, 0x7FFF_FFFF),
    torch.float16: (torch.int16, 0x7FFF),
    torch.bfloat16: (torch.int16, 0x7FFF),
}


def _count_zeros(x: torch.Tensor) -> int:
    """Elements equal to zero (+0.0 and -0.0), exactly.

    torch.count_nonzero of a float tensor is ~20x slower on the CPU than of an integer one, so the
    count runs on the bits: +0.0 is the all-zero pattern, and -0.0 the smallest integer of the same
    width (sign bit only), so when the bits' integer minimum is above that there is no -0.0 and the
    zeros are the zero patterns: two reading passes, no temporary. Otherwise (some -0.0, e.g. after
    dropout) the sign bits are cleared first.
    """
    spec = _MAGNITUDE_BITS.get(x.dtype)
    if spec is None or not x.is_contiguous():
        return x.numel() - int(torch.count_nonzero(x))
    bits = x.view(spec[0])
    if int(bits.amin()) != torch.iinfo(spec[0]).min:
        return x.numel() - int(torch.count_nonzero(bits))
    return x.numel() - int(torch.count_nonzero(torch.bitwise_and(bits, spec[1])))


def _masked_stats(x: torch.Tensor, numel: int, dtype: torch.dtype) -> torch.Tensor:
    """Statistics over the finite elements, with NaN/Inf counted; no host round trip."""
    acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    is_nan = torch.isnan(x)
    is_inf = torch.isinf(x)
    finite = ~(is_nan | is_inf)
    n_finite = finite.sum()
    zero = x.new_zeros(())
    total = torch.where(finite, x, zero).sum(dtype=acc)
    mean = total / n_finite
    centred = torch.where(finite, x.to(acc) - mean, zero.to(acc))
    std = torch.sqrt((centred * centred).sum() / n_finite)
    lo = torch.where(finite, x, x.new_full((), float("inf"))).amin()
    hi = torch.where(finite, x, x.new_full((), float("-inf"))).amax()
    no_finite = n_finite == 0  # amin/amax over nothing finite would report +/-inf
    lo = torch.where(no_finite, lo.new_full((), float("nan")), lo)
    hi = torch.where(no_finite, hi.new_full((), float("nan")), hi)
    zero_fraction = (x == 0).sum() / numel
    parts = (mean, std, lo, hi, zero_fraction, is_nan.sum(), is_inf.sum(), torch.tensor(numel))
    return torch.stack([p.to(device=x.device, dtype=dtype) for p in parts])


# Entries of `grad_parts`: sums that add up across tensors, so a layer's parameters combine exactly.
GRAD_PARTS: tuple[str, ...] = ("sumSquares", "sumAbs", "maxAbs", "nanCount", "infCount", "numel")


@torch.no_grad()
def grad_parts(g: torch.Tensor, *, abs_stats: bool = True) -> torch.Tensor:
    """(sum of squares, sum of |g|, max |g|, NaN count, Inf count, element count) of `g`, on its device.

    Sums and the maximum are over the finite elements (max is -inf when there are none), so parts of
    several tensors combine by adding (and taking the max). On the CPU a finite L2 norm proves there is no
    NaN/Inf and fast reductions suffice (float32 accumulation: about 1e-5 relative error for millions of
    elements); otherwise, and on accelerators (no host round trip), NaN/Inf are masked out.
    `abs_stats=False` skips sum and max of |g| (NaN instead): the L2 norm alone is several times cheaper.
    """
    g = g.detach()
    if g.is_sparse:
        g = g.coalesce().values()
    dtype = stats_dtype(g.device)
    numel = g.numel()
    if numel == 0:
        empty = torch.zeros(len(GRAD_PARTS), dtype=dtype, device=g.device)  # filled on the device: no sync
        empty[2] = float("-inf")
        return empty
    if g.dtype in (torch.float16, torch.bfloat16) or not g.is_floating_point():
        g = g.float()
    if g.device.type == "cpu":
        sum_sq = sum_of_squares(g)
        if math.isfinite(sum_sq) and not abs_stats:
            return torch.tensor([sum_sq, math.nan, math.nan, 0, 0, numel], dtype=dtype)
        if math.isfinite(sum_sq):
            lo, hi = torch.aminmax(g)
            sum_abs = float(g.abs().sum())  # abs + sum: half the time of vector_norm(g, 1)
            return torch.tensor([sum_sq, sum_abs, max(-float(lo), float(hi)), 0, 0, numel], dtype=dtype)
    is_nan = torch.isnan(g)
    is_inf = torch.isinf(g)
    a = torch.where(is_nan | is_inf, g.new_zeros(()), g).abs_()
    n_bad = is_nan.sum() + is_inf.sum()
    max_abs = torch.where(n_bad == numel, a.new_full((), float("-inf")), a.amax())
    parts = (
        torch.linalg.vector_norm(a, dtype=dtype).square(),
        a.sum(dtype=dtype),
        max_abs,
        is_nan.sum(),
        is_inf.sum(),
        a.new_full((), float(numel)),  # not torch.tensor(..., device=): a host-to-device copy syncs
    )
    return torch.stack([p.to(dtype=dtype) for p in parts])


def sum_of_squares(t: torch.Tensor) -> float:
    """sum(t^2) of a CPU tensor as a Python float: Inf or NaN when t holds NaN/Inf (or it overflows).

    A BLAS dot of the flattened tensor with itself: one pass, no temporary, about twice as fast as
    torch.linalg.vector_norm (float32 accumulation in blocks: about 1e-6 relative error).
    """
    if t.is_contiguous() and t.dtype in (torch.float32, torch.float64):
        flat = t.reshape(-1)
        return float(torch.dot(flat, flat))
    return float(torch.linalg.vector_norm(t)) ** 2


def add_grad_parts(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`grad_parts` of two tensors combined into those of both (sums add, the max |g| is the larger)."""
    total = a + b.to(a.device, a.dtype)
    total[2] = torch.maximum(a[2], b[2].to(a.device, a.dtype))
    return total
