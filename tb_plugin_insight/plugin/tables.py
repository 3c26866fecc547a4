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
    """The table of `ordered` layers' (PluginData) records read under `tags`, in canonical `fields`.

    Vectorised per layer (one stack of its records): a first read of 50 layers x 1,000 steps is then
    bound by the data provider, not by this loop."""
    per_layer = [_layer_rows(data_by_tag.get(tag, [])) for tag in tags]
    found = [layer_steps for layer_steps, _, _ in per_layer if len(layer_steps)]
    steps = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    shape = (len(ordered), len(steps))
    values = np.full((*shape, len(fields)), np.nan)
    present = np.zeros(shape, dtype=bool)
    wall_times = np.full(shape, np.nan)
    for i, (data, (layer_steps, rows, walls)) in enumerate(zip(ordered, per_layer)):
        if not len(layer_steps):
            continue
        stored = list(data.fields) or list(fields)
        at = np.searchsorted(steps, layer_steps)
        for k, field in enumerate(fields):
            c = stored.index(field) if field in stored else -1
            if 0 <= c < rows.shape[1]:
                values[i, at, k] = rows[:, c]
        present[i, at] = True
        wall_times[i, at] = walls
    return SeriesTable(tuple(ordered), steps, tuple(fields), values, present, wall_times)


def _layer_rows(points: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, rows (points x widest record, NaN-padded), wall times) of one layer's records, by step."""
    if not points:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 1)), np.zeros(0)
    vectors = [d.numpy.reshape(-1) for d in points]
    width = max(len(v) for v in vectors)
    if all(len(v) == width for v in vectors):
        rows = np.stack(vectors).astype(np.float64, copy=False).reshape(len(vectors), width)
    else:  # records of different widths (a newer writer added a field): pad with NaN
        rows = np.full((len(vectors), max(width, 1)), np.nan)
        for r, vector in enumerate(vectors):
            rows[r, : len(vector)] = vector
    steps = np.fromiter((d.step for d in points), dtype=np.int64, count=len(points))
    walls = np.fromiter((d.wall_time for d in points), dtype=np.float64, count=len(points))
    order = np.argsort(steps, kind="stable")
    return steps[order], rows[order], walls[order]


def fields_for(kind: int) -> tuple[str, ...]:
    return {
        metadata.RecordKind.ACTIVATION_STATS: metadata.STAT_FIELDS,
        metadata.RecordKind.UNIT_STATS: metadata.UNIT_FIELDS,
    }.get(kind, metadata.GRAD_FIELDS)
