"""Activation histograms with bin edges fixed per layer, computed on the tensor's device.

Edge rule (chosen once per layer, at its first recorded step, so every later step is comparable):
R is the smallest 1, 2, 4, 5 or 8 x 10^k that is at least 1.5 x the largest finite |value| of that
first output (R = 1 when there is none, e.g. all zeros); the range is [0, R] when the first output has no
negative value (ReLU-like layers), else [-R, R]; `bins` equal-width bins. Values are binned like
numpy.histogram (bins half-open, the last one closed). Finite values outside the range are counted as
underflow/overflow; NaN and +/-Inf are left out (the activation statistics count them).

Large outputs are sampled: `torch.histc` is the costliest reduction of a recorded step on the CPU (about
1.5x the statistics of the same tensor), so an output of more than SAMPLE_SIZE elements is binned from
an evenly strided sample of about SAMPLE_SIZE of them (the stride shares no factor with the element
count, so the sample visits every channel and position alike) and the counts are scaled by numel /
sample size: estimates of the full counts (relative error about 1 / sqrt(sampled count of the bin): 1.2
% for a bin holding a tenth of the sample), exact for outputs up to SAMPLE_SIZE elements. The statistics
(mean, std, min, max, NaN/Inf counts) stay exact.

Cost: one `torch.histc` pass per layer and recorded step. The underflow/overflow passes run only when
the statistics' min/max (already computed, free to read on the CPU) show that something lies outside;
on accelerators they always run (reading min/max would synchronise). The first recorded step of a
layer reads its min/max to the host once to fix the edges.
"""

from __future__ import annotations

import math

import torch

from tb_plugin_insight import metadata, validate

DEFAULT_BINS = 32
# Default steps between histograms: like the feature maps, a histogram is a picture of a layer, costing
# about as much as all of its statistics (a sample copy, a binning pass and 36 numbers to write; on a
# ResNet-18 step 60 ms against 70 ms), and one every 100 steps still shows a distribution drifting over
# a run; the statistics come every `every`.
DEFAULT_EVERY = 100
# Entries before the counts in a stored histogram vector (metadata.HISTOGRAM_HEAD).
HEAD = len(metadata.HISTOGRAM_HEAD)

_MIN, _MAX, _NAN, _INF = (metadata.STAT_FIELDS.index(k) for k in ("min", "max", "nanCount", "infCount"))


SAMPLE_SIZE = 1 << 16  # elements binned per layer at most (see the module doc)
MARGIN = 1.5  # room for activations to grow after the first recorded step
_MANTISSAS = (1.0, 2.0, 4.0, 5.0, 8.0, 10.0)  # 2, 4, 8 give exact binary bin widths with 2^k bins


def nice_ceil(value: float) -> float:
    """The smallest 1, 2, 4, 5 or 8 x 10^k that is >= value (value > 0)."""
    exponent = math.floor(math.log10(value))
    for mantissa in _MANTISSAS:
        candidate = mantissa * 10.0**exponent
        if candidate >= value * (1 - 1e-12):
            return candidate
    return 10.0 ** (exponent + 1)  # pragma: no cover - the loop always returns


def choose_range(lo: float, hi: float) -> tuple[float, float]:
    """Fixed histogram range from the finite min/max of a layer's first recorded output (module doc)."""
    finite = [v for v in (lo, hi) if math.isfinite(v)]
    largest = max((abs(v) for v in finite), default=0.0)
    extent = nice_ceil(MARGIN * largest) if largest > 0 else 1.0
    return (0.0, extent) if finite and min(finite) >= 0 else (-extent, extent)


@torch.no_grad()
def histogram(
    x: torch.Tensor,
    low: float,
    high: float,
    bins: int,
    stats: torch.Tensor | None = None,
    sample_size: int = SAMPLE_SIZE,
) -> torch.Tensor:
    """[low, high, underflow, overflow, count_0 .. count_{bins-1}] of `x`, on its device.

    `stats` (reduce.activation_stats of the same tensor) lets the CPU skip the under/overflow passes
    when its min/max lie inside the range. The result has `stats`' dtype (float64 except on MPS).
    """
    x = x.detach()
    dtype = stats.dtype if stats is not None else torch.float64
    if not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # histc has no integer kernels; half precision would merge neighbouring bins
    x = x.reshape(-1)
    numel = x.numel()
    step = sample_step(numel, sample_size)
    if step > 1:
        x = x[::step].contiguous()  # histc of a strided view is ~2x slower than a copy + histc
    counts = torch.histc(x, bins=bins, min=low, max=high).to(dtype)  # NaN, Inf, out of range: ignored
    scale = numel / x.numel() if step > 1 else 1  # sampled: the counts estimate the full ones
    under, over = _outside(x, low, high, stats)
    if isinstance(under, int) and isinstance(over, int):  # CPU, both known: one small tensor, no sync
        head = torch.tensor([low, high, under * scale, over * scale], dtype=dtype)
        return torch.cat([head, counts.mul_(scale) if scale != 1 else counts])
    head = x.new_empty(HEAD, dtype=dtype)  # filled on the device: no host-to-device copy, no sync
    head[0], head[1] = low, high
    head[2], head[3] = under, over
    out = torch.cat([head, counts])
    if scale != 1:
        out[2:] *= scale
    return out


def sample_step(numel: int, sample_size: int = SAMPLE_SIZE) -> int:
    """The stride of the histogram's sample: 1 up to `sample_size` elements, else the smallest stride
    giving at most `sample_size` elements that shares no factor with `numel` (an even spread)."""
    if numel <= sample_size:
        return 1
    step = -(-numel // sample_size)
    while math.gcd(step, numel) != 1:
        step += 1
    return step


def _outside(
    x: torch.Tensor, low: float, high: float, stats: torch.Tensor | None
) -> tuple[torch.Tensor | int, torch.Tensor | int]:
    """Counts of finite elements below `low` and above `high`: ints when known on the host (CPU
    statistics, read for free), else tensors on x's device (reading them would synchronise)."""
    check_low = check_high = exclude_inf = True
    host = stats is not None and stats.device.type == "cpu"
    if stats is not None and host:
        lo, hi, n_inf = (float(v) for v in stats[[_MIN, _MAX, _INF]])
        exclude_inf = n_inf > 0
        check_low = not lo >= low  # also True for NaN (no finite value: nothing to find, but cheap)
        check_high = not hi <= high
        if math.isnan(lo) and math.isnan(hi):
            return 0, 0
    zero = 0 if host else torch.zeros((), dtype=torch.int64, device=x.device)
    under: torch.Tensor | int = zero
    over: torch.Tensor | int = zero
    if check_low:
        below = x < low
        under = (below & (x != float("-inf"))).sum() if exclude_inf else below.sum()
    if check_high:
        above = x > high
        over = (above & (x != float("inf"))).sum() if exclude_inf else above.sum()
    if host:
        return int(under), int(over)
    return under, over


def choose_every(histogram_every: int | None, every: int) -> int:
    """The steps between histograms: `histogram_every`, which must be a multiple of the statistics'
    `every` (histograms are taken in the same hooks), or by default DEFAULT_EVERY rounded up to one.

    Raises:
        ValueError: `histogram_every` is not a positive int, or not a multiple of `every`.
    """
    if histogram_every is None:
        return every * -(-DEFAULT_EVERY // every)
    validate.int_option(
        histogram_every,
        f"histogram_every must be a positive int (steps between histograms), got {histogram_every!r}",
    )
    if histogram_every % every:
        lower, upper = (
            max(every, histogram_every - histogram_every % every),
            every * -(-histogram_every // every),
        )
        raise ValueError(
            f"histogram_every={histogram_every} must be a multiple of every={every} (histograms are taken at"
            f" the recorded steps): use {lower}" + (f" or {upper}" if upper != lower else "")
        )
    return histogram_every


class HistogramReducer:
    """Per-layer histograms at the recorded steps divisible by `every`, with edges fixed at each layer's
    first histogram (see module doc)."""

    name = "histogram"

    def __init__(self, bins: int = DEFAULT_BINS, every: int = 1) -> None:
        validate.int_option(bins, f"histogram_bins must be an int from 1 to 4096, got {bins!r}", high=4096)
        self.bins = bins
        self.every = every
        self.width = HEAD + bins
        self._ranges: dict[int, tuple[float, float]] = {}

    def range_of(self, index: int) -> tuple[float, float] | None:
        """The fixed range of layer `index`, once its first step was recorded."""
        return self._ranges.get(index)

    def __call__(
        self, index: int, module: torch.nn.Module, x: torch.Tensor, stats: torch.Tensor
    ) -> torch.Tensor:
        fixed = self._ranges.get(index)
        if fixed is None:
            lo, hi = (float(v) for v in stats[[_MIN, _MAX]].cpu())  # once per layer: one sync on accelerators
            fixed = self._ranges[index] = choose_range(lo, hi)
        return histogram(x, fixed[0], fixed[1], self.bins, stats)


# --- parameter and gradient histograms (capture/grads.py) -------------------------------------------------
#
# Edge rule: per step and per tensor, symmetric around 0: [-R, R] with R the smallest power of two at least
# the tensor's largest finite |value| (R = 1 when there is none), `bins` equal-width bins. Gradients shrink
# by orders of magnitude during training; edges fixed at the first step (the activation rule) would leave a
# later gradient in one or two central bins, while edges from the step's own scale always spread it over
# all bins, and each stored row carries its [low, high] so the scale is read from the axis. The power of
# two keeps edges round (exact binary bin widths with 2^k bins) and R is computed on the device: no sync.


@torch.no_grad()
def finite_absmax(x: torch.Tensor) -> torch.Tensor:
    """The largest finite |value| of x as a 0-d tensor on its device (-inf when there is none)."""
    x = x.detach()
    if x.numel() == 0:
        return torch.full((), float("-inf"), device=x.device)
    if not x.is_floating_point():
        x = x.float()
    if x.device.type == "cpu":  # the CPU reads its result for free: a fast min/max, checked
        lo, hi = torch.aminmax(x)
        m = max(-float(lo), float(hi))
        if math.isfinite(m):
            return torch.tensor(m)
    a = x.abs()
    return torch.where(torch.isfinite(a), a, a.new_full((), float("-inf"))).amax()


@torch.no_grad()
def symmetric_histogram(
    x: torch.Tensor,
    bins: int,
    absmax: torch.Tensor,
    dtype: torch.dtype,
    sample_size: int = SAMPLE_SIZE,
) -> torch.Tensor:
    """[low, high, 0, 0, counts...] of x on [-R, R] (the edge rule above), on x's device, without a sync.

    `absmax`: x's largest finite |value| (finite_absmax, or a gradient's max |g| already reduced). Binned
    like numpy.histogram (half-open bins, the last one closed); NaN/Inf left out (the gradient statistics
    count them), so nothing lies outside the range. Tensors over `sample_size` elements are binned from
    an evenly strided sample, counts scaled to the full size (as the activation histograms).
    """
    x = x.detach().reshape(-1)
    device = x.device
    m = absmax.detach().to(device, dtype)
    r = torch.where(
        torch.isfinite(m) & (m > 0), torch.exp2(torch.ceil(torch.log2(m.abs()))), torch.ones_like(m)
    )
    r = torch.where(r < m, r * 2, r)  # log2 rounding of a value just above a power of two
    numel = x.numel()
    step = sample_step(numel, sample_size)
    if step > 1:
        x = x[::step]
    xs = x.to(dtype)  # at most sample_size elements: float64 binning matches numpy's edges
    finite = torch.isfinite(xs)
    index = torch.floor((xs + r) * (bins / (2 * r))).clamp_(0, bins - 1).to(torch.int64)
    index = torch.where(finite, index, torch.full_like(index, bins))  # NaN/Inf: a dropped extra bin
    if device.type == "cpu":  # bincount sizes its result from the data: a sync, free only on the CPU
        counts = torch.bincount(index, minlength=bins + 1)[:bins].to(dtype)
    else:
        counts = torch.zeros(bins + 1, dtype=dtype, device=device)
        counts = counts.scatter_add_(0, index, torch.ones_like(xs))[:bins]
    if step > 1:
        counts = counts * (numel / x.numel())
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.cat([torch.stack([-r, r, zero, zero]), counts])
