"""Per-run tables of per-layer statistics, read once and reused by every route until new data arrives.

A run's activation (or gradient) statistics are one (layers x steps x fields) float64 array. Building it
costs one `read_tensors` of all the run's tags (v2: one layer table per kind, v1: one tag per layer,
plugin/layer_index.py); the heatmap of another statistic, one layer's series,
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
from tb_plugin_insight.plugin import layer_index

MAX_TABLES = 16


@dataclasses.dataclass(frozen=True)
class SeriesTable:
    """values[i, j, k]: layer `layers[i]` at step `steps[j]`, field `fields[k]`; NaN where absent."""

    layers: tuple[Any, ...]  # metadata.PluginData, in model order
    steps: np.ndarray  # int64, sorted, every step any layer has
    fields: tuple[str, ...]
    values: np.ndarray  # float64, or float32 when every record was (layers, steps, fields); may be a view
    present: np.ndarray  # bool (layers, steps): the layer has a record at that step
    wall_times: np.ndarray  # float64 (layers, steps)

    def layer_index(self, name: str) -> int:
        for i, data in enumerate(self.layers):
            if data.layer == name:
                return i
        return -1


def build_table(
    sources: Sequence[layer_index.LayerSource], data_by_tag: dict[str, list[Any]], fields: Sequence[str]
) -> SeriesTable:
    """The table of `sources`' layers (in that order) from their records read under their tags
    (`data_by_tag`), in canonical `fields`.

    Vectorised: a v2 layer table is stacked once (steps x layers x width) and its layers are copied
    in one assignment; a v1 layer is one stack of its own records. A first read of 50 layers x 1,000
    steps is then bound by the data provider, not by this loop."""
    fast = _one_table(sources, data_by_tag, fields)
    if fast is not None:
        return fast
    stacks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    whole: dict[str, list[tuple[int, int]]] = {}  # v2 tag -> [(layer index, row)] of single-part layers
    per_layer: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
    for i, source in enumerate(sources):
        if len(source.parts) == 1 and source.parts[0].row != layer_index.V1:
            part = source.parts[0]
            whole.setdefault(part.tag, []).append((i, part.row))
            per_layer.append(None)
        else:
            per_layer.append(source_rows(source, data_by_tag, stacks))
    for tag in whole:
        if tag not in stacks:
            stacks[tag] = table_rows(data_by_tag.get(tag, []), _rows_of(sources, tag))
    found = [rows[0] for rows in per_layer if rows is not None and len(rows[0])]
    found += [stacks[tag][0] for tag in whole if len(stacks[tag][0])]
    steps = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    shape = (len(sources), len(steps))
    values = np.full((*shape, len(fields)), np.nan)
    present = np.zeros(shape, dtype=bool)
    wall_times = np.full(shape, np.nan)
    ordered = tuple(s.data for s in sources)
    for tag, members in whole.items():
        tag_steps, stack, walls = stacks[tag]
        if not len(tag_steps):
            continue
        at = np.searchsorted(steps, tag_steps)
        index = np.array([i for i, _ in members])
        rows = np.array([r for _, r in members])
        stored = list(ordered[members[0][0]].fields) or list(fields)
        block = stack[:, rows, :]  # (tag steps, members, width)
        for k, field in enumerate(fields):
            c = stored.index(field) if field in stored else -1
            if 0 <= c < block.shape[2]:
                values[index[:, None], at[None, :], k] = block[:, :, c].T
        present[index[:, None], at[None, :]] = True
        wall_times[index[:, None], at[None, :]] = walls[None, :]
    for i, (data, found_rows) in enumerate(zip(ordered, per_layer)):
        if found_rows is None or not len(found_rows[0]):
            continue
        layer_steps, rows, walls = found_rows
        stored = list(data.fields) or list(fields)
        at = np.searchsorted(steps, layer_steps)
        for k, field in enumerate(fields):
            c = stored.index(field) if field in stored else -1
            if 0 <= c < rows.shape[1]:
                values[i, at, k] = rows[:, c]
        present[i, at] = True
        wall_times[i, at] = walls
    return SeriesTable(ordered, steps, tuple(fields), values, present, wall_times)


def _one_table(
    sources: Sequence[layer_index.LayerSource], data_by_tag: dict[str, list[Any]], fields: Sequence[str]
) -> SeriesTable | None:
    """The table as a view of one v2 layer table's stack, when every layer is one row of that one tag
    holding the canonical fields (a run written by one watch): no copy of (layers x steps x fields)
    numbers (300 layers x 10,000 steps x 12 fields are 144 MB in float32), in the stored dtype. None
    otherwise (build_table's general path)."""
    parts = [s.parts[0] for s in sources if len(s.parts) == 1]
    if not sources or len(parts) != len(sources) or len({p.tag for p in parts}) != 1:
        return None
    part = parts[0]
    stored = list(sources[0].data.fields) or list(fields)
    if part.row == layer_index.V1 or stored[: len(fields)] != list(fields):
        return None
    steps, stack, walls = table_rows(data_by_tag.get(part.tag, []), part.rows)
    if len(steps) and len(np.unique(steps)) != len(steps):
        return None  # a step written twice (a resumed run): the general path keeps the last
    rows = np.array([p.row for p in parts])
    if stack.shape[2] < len(fields):
        return None
    if not np.array_equal(rows, np.arange(part.rows)):
        stack = stack[:, rows, :]
    values = stack[:, :, : len(fields)].transpose(1, 0, 2)
    present = np.ones((len(sources), len(steps)), dtype=bool)
    wall_times = np.broadcast_to(walls, (len(sources), len(steps)))
    return SeriesTable(tuple(s.data for s in sources), steps, tuple(fields), values, present, wall_times)


def _rows_of(sources: Sequence[layer_index.LayerSource], tag: str) -> int:
    return next(p.rows for s in sources for p in s.parts if p.tag == tag)


def source_rows(
    source: layer_index.LayerSource,
    data_by_tag: dict[str, list[Any]],
    stacks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, rows (steps x width, NaN-padded), wall times) of one layer, by step, from all its parts
    (a step found in several parts: the part listed last wins). `stacks` caches v2 tags' stacks."""
    pieces = []
    for part in source.parts:
        points = data_by_tag.get(part.tag, [])
        if part.row == layer_index.V1:
            pieces.append(layer_rows(points))
            continue
        if part.tag not in stacks:
            stacks[part.tag] = table_rows(points, part.rows)
        steps, stack, walls = stacks[part.tag]
        pieces.append((steps, stack[:, part.row, :], walls))
    if len(pieces) == 1:
        return pieces[0]
    width = max(max(rows.shape[1] for _, rows, _ in pieces), 1)
    padded = [np.pad(r.astype(np.float64), ((0, 0), (0, width - r.shape[1])), constant_values=np.nan)
              for _, r, _ in pieces]  # fmt: skip
    steps = np.concatenate([s for s, _, _ in pieces])
    rows = np.concatenate(padded)
    walls = np.concatenate([w for _, _, w in pieces])
    last = len(steps) - 1 - np.unique(steps[::-1], return_index=True)[1]  # each step's last occurrence
    return steps[last], rows[last], walls[last]


def table_rows(points: Sequence[Any], rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, stack (steps x rows x width), wall times) of a v2 layer table's records, by step;
    records of another number of rows (damaged) are left out."""
    arrays = [(d, d.numpy) for d in points]
    arrays = [(d, a.reshape(rows, -1)) for d, a in arrays if a.ndim == 2 and a.shape[0] == rows]
    width = max((a.shape[1] for _, a in arrays), default=1)
    if all(a.shape[1] == width for _, a in arrays) and arrays:
        stack = np.stack([a for _, a in arrays])
    else:  # records of different widths (a newer writer added a field): pad with NaN
        stack = np.full((len(arrays), rows, width), np.nan)
        for r, (_, a) in enumerate(arrays):
            stack[r, :, : a.shape[1]] = a
    steps = np.fromiter((d.step for d, _ in arrays), dtype=np.int64, count=len(arrays))
    walls = np.fromiter((d.wall_time for d, _ in arrays), dtype=np.float64, count=len(arrays))
    if len(steps) < 2 or bool((steps[1:] >= steps[:-1]).all()):
        return steps, stack, walls  # in step order already (as read): no copy of the stack
    order = np.argsort(steps, kind="stable")
    return steps[order], stack[order], walls[order]


def layer_rows(points: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, rows (points x widest record, NaN-padded), wall times) of one v1 layer's records, by step."""
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


def field_matrix(table: SeriesTable, field: str, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """values[rows, columns] of one field (layers x steps), gathered in the order the numbers lie in
    memory: a v2 table's values are a steps-major view (see `_one_table`), where reading across layers
    first is ~10x faster than along one layer's steps."""
    matrix = table.values[:, :, table.fields.index(field)]
    if matrix.strides[0] < matrix.strides[1]:  # steps-major
        return np.ascontiguousarray(_pick(matrix.T, columns, rows)).T
    return _pick(matrix, rows, columns)


def field_max(
    table: SeriesTable, field: str, rows: np.ndarray, columns: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    """The maximum (NaN-ignoring) of one field over each bucket of `columns` starting at `starts`
    (layers x buckets), reduced along the axis that lies contiguously in memory."""
    matrix = table.values[:, :, table.fields.index(field)]
    if matrix.strides[0] < matrix.strides[1]:  # steps-major
        return np.fmax.reduceat(_pick(np.ascontiguousarray(matrix.T), columns, rows), starts, axis=0).T
    return np.fmax.reduceat(_pick(matrix, rows, columns), starts, axis=1)


def _pick(values: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """values[rows][:, columns] of a matrix, without a copy for an axis taken whole."""
    if len(rows) != values.shape[0] or not np.array_equal(rows, np.arange(len(rows))):
        values = values[rows]
    if len(columns) != values.shape[1] or not np.array_equal(columns, np.arange(len(columns))):
        values = values[:, columns]
    return values


def fields_for(kind: int) -> tuple[str, ...]:
    return {
        metadata.RecordKind.ACTIVATION_STATS: metadata.STAT_FIELDS,
        metadata.RecordKind.UNIT_STATS: metadata.UNIT_FIELDS,
        metadata.RecordKind.GRADIENT_NOISE: metadata.NOISE_FIELDS,
        metadata.RecordKind.MASSIVE_ACTIVATIONS: metadata.MASSIVE_FIELDS,
    }.get(kind, metadata.GRAD_FIELDS)
