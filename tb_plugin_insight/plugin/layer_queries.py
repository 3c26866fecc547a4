"""Queries of the layer panel and the model table: histograms, dead/saturated units, the model table.

Like queries.py: data_provider reads in, JSON-ready dicts out; user errors raise 404/400.
"""

from __future__ import annotations

import json
from typing import Any

from tensorboard.data import provider as tb_provider

from tb_plugin_insight import metadata
from tb_plugin_insight.plugin.http import not_found
from tb_plugin_insight.plugin.queries import InsightQueries, _finite_or_none, _parse

_HEAD = len(metadata.HISTOGRAM_HEAD)


class LayerViewQueries:
    """Reads ACTIVATION_HISTOGRAM, UNIT_STATS and MODEL_TABLE records (one TensorBoard instance)."""

    def __init__(self, queries: InsightQueries) -> None:
        self._queries = queries
        self._provider = queries._provider
        self._downsample = queries._downsample

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
        data, _ = found
        tag = metadata.tag_for(data.kind, layer)
        points = sorted(self._read(ctx, eid, run, [tag]).get(tag, []), key=lambda d: d.step)
        rows = [d.numpy.reshape(-1) for d in points]
        rows_ok = [(d, r) for d, r in zip(points, rows) if r.shape[0] == _HEAD + data.bins and data.bins > 0]
        return {
            "run": run,
            "layer": layer,
            "moduleType": data.module_type,
            "bins": data.bins,
            "steps": [int(d.step) for d, _ in rows_ok],
            "low": [_finite_or_none(r[0]) for _, r in rows_ok],
            "high": [_finite_or_none(r[1]) for _, r in rows_ok],
            "underflow": [int(r[2]) for _, r in rows_ok],
            "overflow": [int(r[3]) for _, r in rows_ok],
            "counts": [[int(c) for c in r[_HEAD:]] for _, r in rows_ok],
        }

    def units(self, ctx: Any, eid: str, run: str) -> dict[str, Any]:
        """Dead and saturated fractions of every layer at every recorded step (layer x step tables)."""
        self._queries._run_layers(ctx, eid, run)
        series = self._queries._stats_series(ctx, eid, [run], metadata.RecordKind.UNIT_STATS).get(run, {})
        ordered = sorted(series.values(), key=lambda item: (item[0].order, item[0].layer))
        tags = [metadata.tag_for(data.kind, data.layer) for data, _ in ordered]
        by_tag = self._read(ctx, eid, run, tags) if tags else {}
        per_layer: list[dict[int, Any]] = []
        steps: set[int] = set()
        for (data, _), tag in zip(ordered, tags):
            fields = list(data.fields) or list(metadata.UNIT_FIELDS)
            values = {}
            for datum in by_tag.get(tag, []):
                vector = datum.numpy.reshape(-1)
                if vector.shape[0] == len(fields):
                    values[int(datum.step)] = dict(zip(fields, vector))
            per_layer.append(values)
            steps.update(values)
        ordered_steps = sorted(steps)

        def table(field: str) -> list[list[float | None]]:
            return [
                [_finite_or_none(v[s][field]) if s in v and field in v[s] else None for s in ordered_steps]
                for v in per_layer
            ]

        return {
            "run": run,
            "layers": [
                {"name": d.layer, "moduleType": d.module_type, "order": d.order, "bounded": d.bounded}
                for d, _ in ordered
            ],
            "steps": ordered_steps,
            "dead": table("deadFraction"),
            "saturated": table("saturatedFraction"),
            "channels": [
                next((int(v[s]["channels"]) for s in v if "channels" in v[s]), None) for v in per_layer
            ],
        }

    def model(self, ctx: Any, eid: str, run: str) -> dict[str, Any]:
        """The latest model table of a run (a watch writes one; a later watch of the run replaces it);
        empty rows when the run has none (or none readable)."""
        self._queries._run_layers(ctx, eid, run)
        tag = metadata.tag_for(metadata.RecordKind.MODEL_TABLE)
        listing = self._provider.list_blob_sequences(
            ctx,
            experiment_id=eid,
            plugin_name=metadata.PLUGIN_NAME,
            run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=[tag]),
        )
        series = listing.get(run, {}).get(tag)
        if series is None or _parse(series.plugin_content) is None:
            return _no_table(run)
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


def _channels(values: dict[int, dict[str, Any]]) -> int | None:
    """A layer's channel count from its latest record (None when it has no channel dimension)."""
    for step in sorted(values, reverse=True):
        count = _finite_or_none(values[step].get("channels", float("nan")))
        if count is not None:
            return int(count)
    return None


def _no_table(run: str) -> dict[str, Any]:
    return {"run": run, "step": None, "modelType": None, "params": None, "trainableParams": None, "rows": []}
