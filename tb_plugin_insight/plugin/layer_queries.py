"""Queries of the layer panel and the model table: histograms, dead/saturated units, the model table.

Like queries.py: data_provider reads in, JSON-ready dicts out; user errors raise 404/400.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from tensorboard.data import provider as tb_provider

from tb_plugin_insight import metadata
from tb_plugin_insight.plugin import encode
from tb_plugin_insight.plugin.http import not_found
from tb_plugin_insight.plugin.listings import LruCache, signature
from tb_plugin_insight.plugin.queries import InsightQueries, _bucket_starts, _parse

_HEAD = len(metadata.HISTOGRAM_HEAD)
MAX_HISTOGRAMS = 64  # layers whose histograms are kept (1,000 steps x 64 bins: 0.5 MB each)


class LayerViewQueries:
    """Reads ACTIVATION_HISTOGRAM, UNIT_STATS and MODEL_TABLE records (one TensorBoard instance)."""

    def __init__(self, queries: InsightQueries) -> None:
        self._queries = queries
        self._provider = queries._provider
        self._downsample = queries._downsample
        self._histogram_cache = LruCache(MAX_HISTOGRAMS)

    def _read(self, ctx: Any, eid: str, run: str, tags: list[str]) -> dict[str, list[Any]]:
        return self._queries._read(ctx, eid, run, tags)

    def histograms(self, ctx: Any, eid: str, run: str, layer: str) -> dict[str, Any]:
        """Every recorded histogram of one layer, oldest first."""
        recorded = self._queries._run_layers(ctx, eid, run)  # 404 for a run without Insight data
        series = self._queries._stats_series(ctx, eid, [run], metadata.RecordKind.ACTIVATION_HISTOGRAM)
        found = series.get(run, {}).get(layer)
        if found is None:
            if layer not in recorded:
                raise not_found(f"run {run!r} has no layer {layer!r}")
            empty: dict[str, Any] = {"steps": [], "low": [], "high": [], "underflow": [], "overflow": []}
            module_type = recorded[layer][0].module_type
            return {"run": run, "layer": layer, "moduleType": module_type, "bins": 0, **empty, "counts": []}
        data, series_info = found
        tag = metadata.tag_for(data.kind, layer)
        key = ("histograms", eid, run, layer, signature([(tag, series_info)]))
        body = self._histogram_cache.get_or_make(key, lambda: self._histograms(ctx, eid, run, data, tag))
        return {**body, "counts": body["counts"].tolist()}  # kept as an array: 8x less memory

    def _histograms(
        self, ctx: Any, eid: str, run: str, data: metadata.PluginData, tag: str
    ) -> dict[str, Any]:
        points = sorted(self._read(ctx, eid, run, [tag]).get(tag, []), key=lambda d: d.step)
        width = _HEAD + data.bins
        ok = [(d, d.numpy.reshape(-1)) for d in points]
        ok = [(d, r) for d, r in ok if r.shape[0] == width and data.bins > 0]
        table = np.array([r for _, r in ok], dtype=np.float64).reshape(len(ok), width)
        counts = np.nan_to_num(table[:, _HEAD:], nan=0.0, posinf=0.0, neginf=0.0)
        return {
            "run": run,
            "layer": data.layer,
            "moduleType": data.module_type,
            "bins": data.bins,
            "steps": [int(d.step) for d, _ in ok],
            "low": encode.json_values(table[:, 0]),
            "high": encode.json_values(table[:, 1]),
            "underflow": np.nan_to_num(table[:, 2]).astype(np.int64).tolist(),
            "overflow": np.nan_to_num(table[:, 3]).astype(np.int64).tolist(),
            "counts": counts.astype(np.int64),
        }

    def units(
        self, ctx: Any, eid: str, run: str, *, max_steps: int | None = None, encoding: str = "json"
    ) -> dict[str, Any]:
        """Dead and saturated fractions of every layer at every recorded step (layer x step tables), at
        most `max_steps` columns (each the maximum over its steps, so thinning never hides a dead or
        saturated spike), and each layer's first step with a fraction above 0 (over all steps)."""
        self._queries._run_layers(ctx, eid, run)
        table = self._queries._table(ctx, eid, run, metadata.RecordKind.UNIT_STATS)
        if table is None:
            empty = encode.matrix(np.zeros((0, 0)), encoding)
            return {"run": run, "layers": [], "steps": [], "totalSteps": 0, "dead": empty,
                    "saturated": empty, "deadSince": [], "saturatedSince": [], "channels": []}  # fmt: skip
        columns = np.flatnonzero(table.present.any(axis=0))
        starts = _bucket_starts(len(columns), max_steps)
        ends = np.append(starts[1:], len(columns)) - 1 if len(columns) else starts
        body: dict[str, Any] = {
            "run": run,
            "layers": [
                {"name": d.layer, "moduleType": d.module_type, "order": d.order, "bounded": d.bounded}
                for d in table.layers
            ],
            "steps": table.steps[columns[ends]].tolist(),
            "totalSteps": len(columns),
        }
        for field, name in (("deadFraction", "dead"), ("saturatedFraction", "saturated")):
            values = table.values[:, columns, table.fields.index(field)]
            thinned = np.fmax.reduceat(values, starts, axis=1) if len(starts) < len(columns) else values
            body[name] = encode.matrix(thinned, encoding)
            above = np.nan_to_num(values, nan=0.0) > 0
            first = np.where(above.any(axis=1), above.argmax(axis=1), -1)
            body[name + "Since"] = [int(table.steps[columns[j]]) if j >= 0 else None for j in first]
        channels = table.values[:, :, table.fields.index("channels")]
        body["channels"] = [_latest_count(row) for row in channels]
        return body

    def model(self, ctx: Any, eid: str, run: str) -> dict[str, Any]:
        """The latest model table of a run (a watch writes one; a later watch of the run replaces it);
        empty rows when the run has none (or none readable)."""
        self._queries._run_layers(ctx, eid, run)
        tag = metadata.tag_for(metadata.RecordKind.MODEL_TABLE)
        series = self._queries.listings.blobs(ctx, eid, run).get(tag)
        if series is None or _parse(series.plugin_content) is None:
            return _no_table(run)
        key = ("model", eid, run, signature([(tag, series)]))
        return self._queries.results.get_or_make(key, lambda: self._model(ctx, eid, run, tag))

    def _model(self, ctx: Any, eid: str, run: str, tag: str) -> dict[str, Any]:
        blobs = self._provider.read_blob_sequences(
            ctx,
            experiment_id=eid,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=[tag]),
        )
        data = sorted(blobs.get(run, {}).get(tag, []), key=lambda d: d.step)
        for datum in reversed(data):
            if not datum.values:
                continue
            try:
                document = json.loads(self._provider.read_blob(ctx, blob_key=datum.values[0].blob_key))
            except ValueError:
                continue  # a damaged record: fall back to an older one
            if isinstance(document, dict) and isinstance(document.get("rows"), list):
                return {**document, "run": run, "step": int(datum.step)}
        return _no_table(run)


def _latest_count(row: np.ndarray) -> int | None:
    """The latest finite value of a layer's per-step count (None when it never had one)."""
    finite = np.flatnonzero(np.isfinite(row))
    return int(row[finite[-1]]) if len(finite) else None


def _no_table(run: str) -> dict[str, Any]:
    return {"run": run, "step": None, "modelType": None, "params": None, "trainableParams": None, "rows": []}
