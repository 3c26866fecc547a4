"""Transformer health per layer and step: the peak-to-RMS ratio, derived from the activation statistics
(nothing more is stored for it), and the massive activations of token layers (their layer table).

Both are read through the run's cached tables (plugin/tables.py), so the heatmap, a layer's charts and
the alerts (plugin/health_alerts.py) reuse one read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tb_plugin_insight import metadata
from tb_plugin_insight.plugin import encode, tables
from tb_plugin_insight.plugin.queries import InsightQueries, bucket_starts

MASSIVE_COUNT = "massiveCount"
# The health numbers the statistics heatmap can show besides the stored statistics.
HEALTH_STATS: tuple[str, ...] = (metadata.PEAK_TO_RMS, MASSIVE_COUNT)

_TOP = metadata.MASSIVE_TOP
_INDEX = metadata.MASSIVE_FIELDS.index("topIndex0")
_RATIO = metadata.MASSIVE_FIELDS.index("topRatio0")


def peak_to_rms(mean: Any, std: Any, low: Any, high: Any) -> np.ndarray:
    """max |a| / RMS from the statistics: max(|min|, |max|) / sqrt(mean^2 + std^2) (NaN where RMS is 0
    or a statistic is missing). All over the finite elements, as the statistics are."""
    mean, std, low, high = (np.asarray(v, dtype=np.float64) for v in (mean, std, low, high))
    peak = np.maximum(np.abs(low), np.abs(high))
    rms = np.sqrt(mean * mean + std * std)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = peak / rms
    return np.where(rms > 0, ratio, np.nan)


def table_peak_to_rms(table: tables.SeriesTable, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """peak_to_rms of an activation-statistics table's `rows` x `columns` (layers x steps)."""
    fields = [tables.field_matrix(table, f, rows, columns) for f in ("mean", "std", "min", "max")]
    return peak_to_rms(*fields)


def massive_channels(row: np.ndarray, ratio: float) -> list[int]:
    """The channels of one stored massive-activation row whose ratio exceeds `ratio`, largest first
    (at most MASSIVE_TOP: the stored ones)."""
    tops = row[_RATIO : _RATIO + _TOP]
    indices = row[_INDEX : _INDEX + _TOP]
    keep = np.isfinite(tops) & (tops > ratio) & np.isfinite(indices)
    return [int(i) for i in indices[keep]]


class HealthQueries:
    """Reads the health numbers of one TensorBoard instance through `InsightQueries`' tables."""

    def __init__(self, queries: InsightQueries) -> None:
        self._queries = queries

    def check_run(self, ctx: Any, eid: str, run: str) -> None:
        """Raise a 404 unless the run has Insight data."""
        self._queries.run_layers(ctx, eid, run)

    def stats_table(self, ctx: Any, eid: str, run: str) -> tables.SeriesTable | None:
        return self._queries.table(ctx, eid, run, metadata.RecordKind.ACTIVATION_STATS)

    def massive_table(self, ctx: Any, eid: str, run: str) -> tables.SeriesTable | None:
        """The run's massive-activation table (None: not recorded, e.g. runs written before it)."""
        return self._queries.table(ctx, eid, run, metadata.RecordKind.MASSIVE_ACTIVATIONS)

    def offered(self, ctx: Any, eid: str, run: str) -> list[str]:
        """The health numbers this run has: peak-to-RMS always, the count when it was recorded."""
        shown = [metadata.PEAK_TO_RMS]
        if self._queries.layer_sources(ctx, eid, [run], kind=metadata.RecordKind.MASSIVE_ACTIVATIONS):
            shown.append(MASSIVE_COUNT)
        return shown

    def heatmap(
        self, ctx: Any, eid: str, run: str, stat: str, *, max_steps: int | None, encoding: str
    ) -> dict[str, Any]:
        """The layer x step matrix of a health number (HEALTH_STATS), as /stats_heatmap answers: at most
        `max_steps` columns, each the last step of its bucket (massive counts: the bucket's maximum, so
        thinning never hides one)."""
        if stat == MASSIVE_COUNT:
            table = self.massive_table(ctx, eid, run)
        else:
            table = self.stats_table(ctx, eid, run)
        if table is None:
            self._queries.run_layers(ctx, eid, run)  # 404 unless the run has Insight data
            empty = encode.matrix(np.zeros((0, 0)), encoding)
            return {"run": run, "stat": stat, "layers": [], "steps": [], "totalSteps": 0, "values": empty}
        rows = np.arange(len(table.layers))
        columns = np.flatnonzero(table.present.any(axis=0))
        starts = bucket_starts(len(columns), max_steps)
        ends = np.append(starts[1:], len(columns)) - 1 if len(columns) else starts
        shown = columns[ends]
        if stat == MASSIVE_COUNT:
            if len(starts) < len(columns):
                matrix = tables.field_max(table, MASSIVE_COUNT, rows, columns, starts)
            else:
                matrix = tables.field_matrix(table, MASSIVE_COUNT, rows, shown)
        else:
            matrix = table_peak_to_rms(table, rows, shown)
        return {
            "run": run,
            "stat": stat,
            "layers": [d.layer for d in table.layers],
            "steps": table.steps[shown].tolist(),
            "totalSteps": len(columns),
            "values": encode.matrix(np.asarray(matrix, dtype=np.float64), encoding),
        }

    def layer(self, ctx: Any, eid: str, run: str, layer: str) -> dict[str, Any]:
        """/layer_health: one layer's health at its statistics steps: `peakToRms` and, when recorded,
        `massiveCount` with `massive` = {"ratio": the counting ratio, "channels": the massive channels
        per step (largest first, at most MASSIVE_TOP), "topRatio": the largest ratio per step}."""
        stats = self._queries.layer_stats(ctx, eid, run, layer)  # 404 for an unknown run or layer
        values = stats["stats"]
        body: dict[str, Any] = {
            "run": run,
            "layer": layer,
            "steps": stats["steps"],
            metadata.PEAK_TO_RMS: encode.json_values(
                peak_to_rms(*(_floats(values.get(f, [])) for f in ("mean", "std", "min", "max")))
            ),
        }
        found = self._massive_rows(ctx, eid, run, layer, np.asarray(stats["steps"], dtype=np.int64))
        if found is None:
            return body
        rows, ratio = found
        body[MASSIVE_COUNT] = encode.json_values(rows[:, 0])
        body["massive"] = {
            "ratio": ratio,
            "channels": [massive_channels(row, ratio) for row in rows],
            "topRatio": encode.json_values(rows[:, _RATIO]),
        }
        return body

    def _massive_rows(
        self, ctx: Any, eid: str, run: str, layer: str, steps: np.ndarray
    ) -> tuple[np.ndarray, float] | None:
        """The layer's massive-activation rows at `steps` (NaN where absent) and the counting ratio;
        None when the run has none for the layer."""
        table = self.massive_table(ctx, eid, run)
        i = -1 if table is None else table.layer_index(layer)
        if table is None or i < 0 or not len(table.steps):
            return None
        at = np.minimum(np.searchsorted(table.steps, steps), len(table.steps) - 1)
        found = (table.steps[at] == steps) & table.present[i, at]
        rows = np.full((len(steps), len(metadata.MASSIVE_FIELDS)), np.nan)
        rows[found] = np.asarray(table.values[i, at[found]], dtype=np.float64)
        return rows, float(table.layers[i].massive_ratio) or metadata.DEFAULT_MASSIVE_RATIO


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
