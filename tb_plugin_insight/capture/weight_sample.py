"""A fixed sample of each watched parameter's elements: the update ratio in bounded memory.

The update ratio ||w_after - w_before|| / ||w_before|| needs w_before after the optimizer has overwritten
it. A copy of every watched parameter costs as much memory as the parameters (4 GB more for 1 B float32
parameters), so Insight keeps a sample instead.

Estimator. For a parameter of n elements, m of them are kept:

* m = n (an exact copy) when n <= K. Otherwise m ~ K positions, drawn once per parameter uniformly
  without replacement from a private `torch.Generator` seeded with SEED + the parameter's index (the
  global RNG is never touched: training stays bit-identical), read again at every recorded step.
* ||Δw||^2 is estimated by (n / m) * sum of Δw_i^2 over the sample: the expansion estimate of a total
  from a simple random sample, unbiased. ||w_before|| is exact (the weightNorm field reads the whole
  parameter anyway), and a layer's ratio is sqrt(sum over its parameters of the estimates) / ||w_before||.
  Scaling the sampled ||Δw|| by the exact norm rather than dividing it by the sample's own ||w|| halves
  the variance for independent entries and stays defined when the sampled weights are all zero.

Error. The relative standard error of the ||Δw||^2 estimate is sqrt((1 - m/n) / m) * cv, with cv the
coefficient of variation of the squared update entries Δw_i^2 over the parameter; the ratio's relative
error is about half that.

* Dense updates (SGD on dense gradients, momentum, Adam): for Gaussian-like entries cv = sqrt(2), so the
  ratio is off by about 1/sqrt(2m): 1.1 % at m = 4096 (one standard error); Adam's nearly equal-sized
  steps give less. A parameter of at most K elements is exact.
* Sparse updates are worse: when only a fraction f of the entries moves (embedding rows of the tokens in
  the batch under plain SGD, say) cv is about 1/sqrt(f) for equal-sized moves (sqrt(3/f) for Gaussian
  ones), so the error is about 1/(2 sqrt(f m)): 8 % at f = 1 % and m = 4096 (14 % for Gaussian moves).
  When fewer than about n/m entries move the sample may miss all of them and show 0.

Memory. K is 4096, halved (not below 64) until the samples and their int64 positions fit in 1 % of the
parameters' memory plus 16 MiB, so the total stays far inside the target of 2 % + 64 MB. Positions are
drawn on the CPU (cheap: O(m), or O(n) for n <= 16 K) and moved to an accelerator once, all parameters of
the device in one copy, at the first recorded step; they are kept until unwatch/close. Parameters that
are tensor subclasses (DTensor shards of FSDP2, ...) are still copied whole: torch.take is not defined
for every subclass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

SEED = 0x5EED_1A7E
MAX_SAMPLE = 4096
MIN_SAMPLE = 64
BUDGET_FRACTION = 0.01
BUDGET_BYTES = 16 * 2**20
_INDEX_BYTES = 8  # int64 positions (torch.take needs them)


def sample_size(
    params: Sequence[torch.Tensor], fraction: float = BUDGET_FRACTION, extra: int = BUDGET_BYTES
) -> int:
    """K: the largest of MAX_SAMPLE, MAX_SAMPLE / 2, ... MIN_SAMPLE whose samples fit the memory budget."""
    sizes = [(p.numel(), p.element_size()) for p in params]
    budget = fraction * sum(n * e for n, e in sizes) + extra
    k = MAX_SAMPLE
    while k > MIN_SAMPLE and sample_bytes(sizes, k) > budget:
        k //= 2
    return k


def sample_bytes(sizes: Sequence[tuple[int, int]], k: int) -> int:
    """Bytes kept for (numel, element size) parameters at sample size k: copies and positions."""
    return sum(n * e if n <= k else k * (e + _INDEX_BYTES) for n, e in sizes)


def draw_positions(numel: int, k: int, seed: int) -> Optional[torch.Tensor]:
    """Sorted distinct flat positions (int64, CPU) of a uniform sample of about k of `numel`, or None
    when numel <= k (the whole parameter is kept). Deterministic in (numel, k, seed)."""
    if numel <= k:
        return None
    gen = torch.Generator().manual_seed(seed)
    if numel <= 16 * k:
        chosen = torch.randperm(numel, generator=gen)[:k]
    else:  # k draws with replacement, duplicates dropped: still a uniform subset, ~k(1 - k / 2n) of them
        chosen = torch.randint(numel, (k,), generator=gen).unique()
    return chosen.sort().values


class WeightSample:
    """The sampled positions of a fixed list of parameters, and the two reads the update ratio needs:
    `take(j, w)` before the optimizer step and `delta_sq(j, before, w)` after it."""

    def __init__(self, params: Sequence[torch.Tensor], k: Optional[int] = None) -> None:
        self._params = list(params)
        self.k = sample_size(self._params) if k is None else k
        # j -> (numel, device, positions there or None for the whole parameter)
        self._positions: dict[int, tuple[int, torch.device, Optional[torch.Tensor]]] = {}

    def take(self, j: int, w: torch.Tensor) -> torch.Tensor:
        """A copy of parameter j's sampled elements (a copy of all of it when it is small)."""
        w = w.detach()
        where = self._where(j, w)
        return w.clone() if where is None else torch.take(w, where)

    def delta_sq(self, j: int, before: torch.Tensor, w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Estimate of ||w - w_before||^2 (module doc) as a 0-d tensor of `dtype` on w's device."""
        w = w.detach()
        where = self._where(j, w)
        after = w if where is None else torch.take(w, where)
        if after.dtype in (torch.float16, torch.bfloat16):
            after, before = after.float(), before.float()
        total = torch.linalg.vector_norm(after - before).to(dtype).square()
        return total if where is None else total * (w.numel() / where.numel())

    def kept_bytes(self) -> int:
        """Bytes held now by positions (the samples themselves live in the records)."""
        return sum(t.numel() * t.element_size() for _, _, t in self._positions.values() if t is not None)

    def clear(self) -> None:
        self._positions.clear()

    def _where(self, j: int, w: torch.Tensor) -> Optional[torch.Tensor]:
        if not self._valid(j, w):
            self._place(w.device)
            if not self._valid(j, w):  # a parameter not on the list, or resized since
                self._positions[j] = (w.numel(), w.device, _to(self._draw(j, w), w.device))
        return self._positions[j][2]

    def _valid(self, j: int, w: torch.Tensor) -> bool:
        """Positions drawn for w's current size, on its device (a moved or resized parameter: new ones)."""
        kept = self._positions.get(j)
        return kept is not None and kept[0] == w.numel() and kept[1] == w.device

    def _draw(self, j: int, w: torch.Tensor) -> Optional[torch.Tensor]:
        if type(w.detach()) is not torch.Tensor:  # a tensor subclass (DTensor, ...): whole, as before
            return None
        return draw_positions(w.numel(), self.k, SEED + j)

    def _place(self, device: torch.device) -> None:
        """Positions of every listed parameter now on `device` that lacks valid ones, moved there in one
        copy (one host-to-device transfer per device, not one per parameter)."""
        missing = [(j, p) for j, p in enumerate(self._params) if p.device == device and not self._valid(j, p)]
        drawn = [(j, p, self._draw(j, p)) for j, p in missing]
        sampled = [(j, p, t) for j, p, t in drawn if t is not None]
        for j, p, t in drawn:
            if t is None:
                self._positions[j] = (p.numel(), device, None)
        if not sampled:
            return
        joined = torch.cat([t for _, _, t in sampled]).to(device)
        for (j, p, _), part in zip(sampled, joined.split([t.numel() for _, _, t in sampled])):
            self._positions[j] = (p.numel(), device, part)


def _to(t: Optional[torch.Tensor], device: torch.device) -> Optional[torch.Tensor]:
    return None if t is None else t.to(device)
