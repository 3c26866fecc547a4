"""Per-run tables of per-layer statistics, read once and reused by every route until new data arrives.

A run's activation (or gradient) statistics are one (layers x steps x fields) float64 array. Building it
costs one `read_tensors` of all the run's layers; the heatmap of another statistic, one layer's series,
the gradient overview or one step are then slices of it. A table is keyed by the run's listing (each
tag's max step and wall time), so new data makes a new table; the MAX_TABLES most recent are kept
(listings.LruCache).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from tb_plugin_insight import metadata

MAX_TABLES = 16


@dataclasses.dataclass(frozen=True)
class SeriesTable:
    """values[i, j, k]: layer `layers[i]` at step `steps[j]`, field `fields[k]`; NaN where absent."""

    layers: tuple[Any, ...]  # metadata.PluginData, in model order
    steps: np.ndarray  # int64, sorted, every step any layer has
    fields: tuple[str, ...]
    values: np.ndarray  # float64 (layers, steps, fields)
    present: np.ndarray  # bool (layers, steps): the layer has a record at that step
    wall_times: np.ndarray  # float64 (layers, steps)

    def layer_index(self, name: str) -> int:
        for i, data in enumerate(self.layers):
            if data.layer == name:
                return i
        return -1


def build_table(
    ordered: Sequence[Any], tags: Sequence[str], data_by_tag: dict[str, list[Any]], fields: Sequence[str]
) -> SeriesTable:
    """The table of `ordered` layers' (PluginData) records read under `tags`, in canonical `fields`."""
    per_layer = [sorted(data_by_tag.get(tag, []), key=lambda d: d.step) for tag in tags]
    steps = np.array(sorted({int(d.step) for points in per_layer for d in points}), dtype=np.int64)
    shape = (len(ordered), len(steps))
    values = np.full((*shape, len(fields)), np.nan)
    present = np.zeros(shape, dtype=bool)
    wall_times = np.full(shape, np.nan)
    for i, (data, points) in enumerate(zip(ordered, per_layer)):
        if not points:
            continue
        stored = list(data.fields) or list(fields)
        columns = [stored.index(f) if f in stored else -1 for f in fields]
        width = max(len(d.numpy.reshape(-1)) for d in points)
        rows = np.full((len(points), max(width, 1)), np.nan)
        for r, d in enumerate(points):
            vector = d.numpy.reshape(-1)
            rows[r, : len(vector)] = vector
        at = np.searchsorted(steps, [int(d.step) for d in points])
        for k, c in enumerate(columns):
            if 0 <= c < width:
                values[i, at, k] = rows[:, c]
        present[i, at] = True
        wall_times[i, at] = [float(d.wall_time) for d in points]
    return SeriesTable(tuple(ordered), steps, tuple(fields), values, present, wall_times)


def fields_for(kind: int) -> tuple[str, ...]:
    return {
        metadata.RecordKind.ACTIVATION_STATS: metadata.STAT_FIELDS,
        metadata.RecordKind.UNIT_STATS: metadata.UNIT_FIELDS,
    }.get(kind, metadata.GRAD_FIELDS)
