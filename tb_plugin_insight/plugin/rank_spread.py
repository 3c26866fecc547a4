"""How far each rank of a family departs from the others, per layer, step and statistic (pure numpy).

The ranks of a data-parallel job train one model on different shards of each batch: their per-layer
statistics agree up to sampling noise, and a rank fed different data (a broken shard, a preprocessing
bug on one node) or a replica whose weights diverged stands out. Per layer and step the robust rule is
the deviation `z = |x_r - median| / scale`, with `scale = 1.4826 * MAD` over the ranks (the standard
deviation of normal noise), floored at the layer's usual relative spread times |median|
(`typical_spread`; at least REL_FLOOR: ranks that agree exactly, e.g. replicated weights, have MAD 0)
and ABS_FLOOR. A median and MAD say which rank is the odd one only with three ranks or more (of two
ranks each is as far from their median as the other): with fewer, `z` is NaN and
only the spread (min, median, max) is given. A departure is a rank whose `z` exceeds the threshold at
`sustain` consecutive recorded steps of the family (fewer when the family has fewer steps).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from tb_plugin_insight import metadata

MAD_SIGMA = 1.4826  # MAD of normal noise times this is its standard deviation
REL_FLOOR = 1e-3  # the scale is at least this fraction of |median| ...
ABS_FLOOR = 1e-12  # ... and at least this
MIN_RANKS = 3  # ranks with a value needed to name the rank that departs
DEFAULT_THRESHOLD = 8.0
DEFAULT_SUSTAIN = 3

# Statistics checked for departures (counts of elements are left out: an uneven last batch differs).
ALERT_FIELDS: dict[int, tuple[str, ...]] = {
    metadata.RecordKind.ACTIVATION_STATS: (
        "mean", "std", "min", "max", "zeroFraction", "nanCount", "infCount",
    ),
    metadata.RecordKind.GRADIENT_STATS: (
        "gradNorm", "gradMeanAbs", "gradMaxAbs", "gradNanCount", "gradInfCount", "weightNorm",
        "updateRatio", "actGradNorm", "actGradNanCount", "actGradInfCount",
    ),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RankStack:
    """values[r, i, j, k]: rank `ranks[r]`, layer `layers[i]`, step `steps[j]`, field `fields[k]`;
    NaN where that rank has no record (a rank that stopped early, a layer it did not watch)."""

    ranks: tuple[int, ...]
    runs: tuple[str, ...]
    layers: tuple[str, ...]
    module_types: tuple[str, ...]
    steps: np.ndarray  # int64, sorted: every step any rank recorded
    fields: tuple[str, ...]
    values: np.ndarray  # float32 (ranks, layers, steps, fields)
    last_steps: tuple[int | None, ...]  # each rank's last recorded step

    def field(self, name: str) -> np.ndarray:
        """(ranks, layers, steps) float64 of one field, non-finite values as NaN (no value)."""
        x = self.values[:, :, :, self.fields.index(name)].astype(np.float64)
        x[~np.isfinite(x)] = np.nan
        return x


def stack(
    ranks: Sequence[int], runs: Sequence[str], tables: Sequence[Any], fields: Sequence[str]
) -> RankStack:
    """One array of the ranks' tables (plugin/tables.SeriesTable, None for a rank without records of
    the kind), aligned by layer name and step number. Layers in model order (the first rank's order)."""
    info: dict[str, tuple[int, str]] = {}
    for table in tables:
        for data in table.layers if table is not None else ():
            info.setdefault(data.layer, (data.order, data.module_type))
    names = sorted(info, key=lambda n: (info[n][0], n))
    index = {name: i for i, name in enumerate(names)}
    recorded = [t.steps[t.present.any(axis=0)] for t in tables if t is not None]
    steps = np.unique(np.concatenate(recorded)) if recorded else np.zeros(0, dtype=np.int64)
    values = np.full((len(tables), len(names), len(steps), len(fields)), np.nan, dtype=np.float32)
    last: list[int | None] = []
    for r, table in enumerate(tables):
        if table is None or not len(table.steps):
            last.append(None)
            continue
        rows = np.array([index[d.layer] for d in table.layers])
        at = np.searchsorted(steps, table.steps)
        columns = [table.fields.index(f) if f in table.fields else -1 for f in fields]
        block = np.full((len(rows), len(at), len(fields)), np.nan, dtype=np.float32)
        for k, c in enumerate(columns):
            if c >= 0:
                block[:, :, k] = np.where(table.present, table.values[:, :, c], np.nan)
        values[r][np.ix_(rows, at)] = block
        any_step = table.present.any(axis=0)
        last.append(int(table.steps[any_step][-1]) if any_step.any() else None)
    modules = tuple(info[n][1] for n in names)
    return RankStack(
        tuple(ranks), tuple(runs), tuple(names), modules, steps, tuple(fields), values, tuple(last)
    )


def median0(x: np.ndarray) -> np.ndarray:
    """The NaN-ignoring median along axis 0 (NaN where every value is NaN); vectorised, unlike
    np.nanmedian's masked path for a short axis."""
    missing = np.isnan(x)
    ordered = np.sort(x, axis=0)  # NaN last
    n = np.sum(~missing, axis=0)
    low = np.take_along_axis(ordered, np.maximum((n - 1) // 2, 0)[None], axis=0)[0]
    high = np.take_along_axis(ordered, (n // 2)[None], axis=0)[0] if len(x) else low
    return (low + high) / 2


@dataclasses.dataclass(frozen=True)
class Spread:
    """One field across ranks: low/median/high (layers, steps), each rank's deviation z (ranks,
    layers, steps; NaN with fewer than MIN_RANKS values) and the number of ranks with a value."""

    low: np.ndarray
    median: np.ndarray
    high: np.ndarray
    deviation: np.ndarray
    count: np.ndarray


def spread(x: np.ndarray) -> Spread:
    """The spread of `x` (ranks, layers, steps; NaN: no value) across ranks."""
    count = np.sum(~np.isnan(x), axis=0)
    with np.errstate(invalid="ignore"):
        low = np.fmin.reduce(x, axis=0) if len(x) else np.full(x.shape[1:], np.nan)
        high = np.fmax.reduce(x, axis=0) if len(x) else np.full(x.shape[1:], np.nan)
    median = median0(x)
    distance = np.abs(x - median)
    noise = MAD_SIGMA * median0(distance)
    scale = np.maximum(noise, np.maximum(typical_spread(noise, median, count) * np.abs(median), ABS_FLOOR))
    with np.errstate(invalid="ignore", divide="ignore"):
        deviation = distance / scale
    deviation[:, count < MIN_RANKS] = np.nan
    return Spread(low, median, high, deviation, count)


def typical_spread(noise: np.ndarray, median: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per layer (a column), the family's usual noise relative to |median|: the median over steps of
    noise / |median|, at least REL_FLOOR. The MAD of a few ranks is itself noisy (of three ranks it is
    the smaller distance of the two outer ones), and a step where it is small by chance would make an
    ordinary rank look far off; the scale is never below this usual level."""
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(count >= MIN_RANKS, noise / np.abs(median), np.nan)
    relative[~np.isfinite(relative)] = np.nan
    usual = median0(relative.T)[:, None] if relative.size else np.full((relative.shape[0], 1), np.nan)
    return np.fmax(usual, REL_FLOOR)


def relative_spread(s: Spread) -> np.ndarray:
    """(max - min) / |median| per layer and step: how much the ranks disagree, for any number of ranks."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (s.high - s.low) / np.maximum(np.abs(s.median), ABS_FLOOR)


@dataclasses.dataclass(frozen=True)
class Departure:
    """Rank index `rank`, layer index `layer`: above the threshold at `count` steps, the first
    sustained run starting at step index `first`; `last` is the last step index above it."""

    rank: int
    layer: int
    first: int
    last: int
    count: int


def departures(deviation: np.ndarray, threshold: float, sustain: int) -> list[Departure]:
    """The (rank, layer) pairs whose deviation exceeds `threshold` at `sustain` consecutive steps
    (at most as many as there are steps), in rank then layer order."""
    above = np.nan_to_num(deviation, nan=0.0) > threshold
    steps = above.shape[-1]
    k = min(sustain, steps)
    if k < 1 or not above.any():
        return []
    runs = np.concatenate([np.zeros((*above.shape[:-1], 1), np.int32), np.cumsum(above, -1, np.int32)], -1)
    sustained = runs[..., k:] - runs[..., :-k] == k  # (ranks, layers, starts)
    found = sustained.any(axis=-1)
    first = sustained.argmax(axis=-1)
    last = steps - 1 - above[..., ::-1].argmax(axis=-1)
    count = above.sum(axis=-1)
    return [
        Departure(int(r), int(i), int(first[r, i]), int(last[r, i]), int(count[r, i]))
        for r, i in np.argwhere(found)
    ]
