"""Queries of the layer panel and the model table: histograms, dead/saturated units, the model table.

Like queries.py: data_provider reads in, JSON-ready dicts out; user errors raise 404/400.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
from tensorboard.data import provider as tb_provider

from tb_plugin_insight import metadata
from tb_plugin_insight.plugin import encode, layer_index, tables
from tb_plugin_insight.plugin.http import not_found
from tb_plugin_insight.plugin.listings import LruCache, signature
from tb_plugin_insight.plugin.queries import FIRST_SAMPLE, InsightQueries, bucket_starts

_HEAD = len(metadata.HISTOGRAM_HEAD)
MAX_HISTOGRAMS = 64  # layers whose histograms are kept (1,000 steps x 64 bins: 0.5 MB each)
# v2 histogram tables kept whole (steps x layers x bins): the next layer clicked is a slice of one.
MAX_HISTOGRAM_TABLES = 4


class LayerViewQueries:
    """Reads ACTIVATION_HISTOGRAM, UNIT_STATS and MODEL_TABLE records (one TensorBoard instance)."""

    def __init__(self, queries: InsightQueries) -> None:
        self._queries = queries
        self._provider = queries.provider
        self._downsample = queries.downsample
        self._histogram_cache = LruCache(MAX_HISTOGRAMS)
        self._stacks = LruCache(MAX_HISTOGRAM_TABLES)

    def histograms(self, ctx: Any, eid: str, run: str, layer: str) -> dict[str, Any]:
        """Every recorded histogram of one layer, oldest first."""
        recorded = self._queries.run_layers(ctx, eid, run)  # 404 for a run without Insight data
        kind = metadata.RecordKind.ACTIVATION_HISTOGRAM
        source = self._queries.layer_sources(ctx, eid, [run], kind).get(run, {}).get(layer)
        if source is None:
            if layer not in recorded:
                raise not_found(f"run {run!r} has no layer {layer!r}")
            empty: dict[str, Any] = {"steps": [], "low": [], "high": [], "underflow": [], "overflow": []}
            module_type = recorded[layer].data.module_type
            return {"run": run, "layer": layer, "moduleType": module_type, "bins": 0, **empty, "counts": []}
        key = ("histograms", eid, run, layer, source.signature())
        body = self._histogram_cache.get_or_make(key, lambda: self._histograms(ctx, eid, run, source))
        return {**body, "counts": body["counts"].tolist()}  # kept as an array: 8x less memory

    def _histograms(self, ctx: Any, eid: str, run: str, source: layer_index.LayerSource) -> dict[str, Any]:
        data = source.data
        stacks = {}
        for part in source.parts:  # a v2 table is read once for all its layers
            if part.row != layer_index.V1:
                key = ("stack", eid, run, part.tag, *part_signature(part))
                stacks[part.tag] = self._stacks.get_or_make(
                    key, functools.partial(self._stack, ctx, eid, run, part)
                )
        v1_tags = [p.tag for p in source.parts if p.row == layer_index.V1]
        points = self._queries.read(ctx, eid, run, v1_tags) if v1_tags else {}
        width = _HEAD + data.bins
        if source.is_v1 and len(source.parts) == 1:  # v1: records of another width are left out
            records = sorted(points.get(v1_tags[0], []), key=lambda d: d.step)
            kept = [(d.step, d.numpy.reshape(-1)) for d in records]
            kept = [(step, r) for step, r in kept if r.shape[0] == width and data.bins > 0]
            steps = np.array([step for step, _ in kept], dtype=np.int64)
            table = np.array([r for _, r in kept], dtype=np.float64).reshape(len(kept), width)
        else:
            steps, rows, _ = tables.source_rows(source, points, stacks)
            if data.bins <= 0 or rows.shape[1] != width:
                steps, rows = steps[:0], np.zeros((0, width))
            table = rows.astype(np.float64).reshape(len(steps), width)
        counts = np.nan_to_num(table[:, _HEAD:], nan=0.0, posinf=0.0, neginf=0.0)
        return {
            "run": run,
            "layer": data.layer,
            "moduleType": data.module_type,
            "bins": data.bins,
            "steps": [int(step) for step in steps],
            "low": encode.json_values(table[:, 0]),
            "high": encode.json_values(table[:, 1]),
            "underflow": np.nan_to_num(table[:, 2]).astype(np.int64).tolist(),
            "overflow": np.nan_to_num(table[:, 3]).astype(np.int64).tolist(),
            "counts": counts.astype(np.int64),
        }

    def param_histograms(self, ctx: Any, eid: str, run: str, layer: str) -> dict[str, Any]:
        """The weight and gradient histograms of one layer's parameter tensors, oldest first: per
        parameter (in the recorded order) its name, shape and, for "weights" and "grads", the steps,
        each step's [low, high] edges and the bin counts."""
        recorded = self._queries.run_layers(ctx, eid, run)  # 404 for a run without Insight data
        if layer not in recorded:
            raise not_found(f"run {run!r} has no layer {layer!r}")
        order = recorded[layer].data.order
        listing = self._queries.listings.tensors(ctx, eid, run)
        found: dict[str, dict[str, Any]] = {}  # parameter name -> its entry
        bins = 0
        for kind, key in (
            (metadata.RecordKind.PARAM_HISTOGRAM, "weights"),
            (metadata.RecordKind.GRAD_HISTOGRAM, "grads"),
        ):
            prefix = metadata.tag_for(kind)
            tables_of_kind = []
            for tag, series in listing.items():
                data = layer_index.parse(series.plugin_content)
                if data is None or data.kind != kind or not tag.startswith(prefix):
                    continue
                rows = [i for i, e in enumerate(data.layers) if e.order == order and _owned_by(e.name, layer)]
                if rows and data.bins > 0:
                    tables_of_kind.append((tag, data, rows))
            if not tables_of_kind:
                continue
            points = self._queries.read(ctx, eid, run, [tag for tag, _, _ in tables_of_kind])
            for tag, data, rows in tables_of_kind:
                bins = max(bins, data.bins)
                steps, stack, _ = tables.table_rows(points.get(tag, []), len(data.layers))
                if stack.ndim != 3 or stack.shape[2] != _HEAD + data.bins:
                    continue
                for row in rows:
                    entry = data.layers[row]
                    param = found.setdefault(
                        entry.name, {"name": entry.name, "shape": [int(d) for d in entry.shape]}
                    )
                    param.setdefault(key, {}).update({int(s): stack[i, row] for i, s in enumerate(steps)})
        params = []
        for param in found.values():
            body = {"name": param["name"], "shape": param["shape"]}
            for key in ("weights", "grads"):
                by_step = param.get(key, {})
                steps_sorted = sorted(by_step)
                table = np.array([by_step[s] for s in steps_sorted], dtype=np.float64).reshape(
                    len(steps_sorted), -1
                )
                if table.shape[1] != _HEAD + bins:
                    table = np.zeros((0, _HEAD + bins))
                    steps_sorted = []
                counts = np.nan_to_num(table[:, _HEAD:], nan=0.0, posinf=0.0, neginf=0.0)
                body[key] = {
                    "steps": steps_sorted,
                    "low": encode.json_values(table[:, 0]),
                    "high": encode.json_values(table[:, 1]),
                    "counts": np.rint(counts).astype(np.int64).tolist(),
                }
            params.append(body)
        module_type = recorded[layer].data.module_type
        return {"run": run, "layer": layer, "moduleType": module_type, "bins": bins, "params": params}

    def _stack(self, ctx: Any, eid: str, run: str, part: layer_index.Part) -> Any:
        points = self._queries.read(ctx, eid, run, [part.tag]).get(part.tag, [])
        return tables.table_rows(points, part.rows)

    def units(
        self, ctx: Any, eid: str, run: str, *, max_steps: int | None = None, encoding: str = "json"
    ) -> dict[str, Any]:
        """Dead and saturated fractions of every layer at every recorded step (layer x step tables), at
        most `max_steps` columns (each the maximum over its steps, so thinning never hides a dead or
        saturated spike), and each layer's first step with a fraction above 0 (over all steps). The
        first answer on a run not read yet is a sample of the steps ("sampled": true; see
        `InsightQueries.first_table`), the exact answer follows on the next request."""
        self._queries.run_layers(ctx, eid, run)
        sample = None if max_steps is None else min(max_steps, FIRST_SAMPLE)
        table, sampled = self._queries.first_table(ctx, eid, run, metadata.RecordKind.UNIT_STATS, sample)
        if table is None:
            empty = encode.matrix(np.zeros((0, 0)), encoding)
            return {"run": run, "layers": [], "steps": [], "totalSteps": 0, "dead": empty,
                    "saturated": empty, "deadSince": [], "saturatedSince": [], "channels": []}  # fmt: skip
        columns = np.flatnonzero(table.present.any(axis=0))
        starts = bucket_starts(len(columns), max_steps)
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
            every_layer = np.arange(len(table.layers))
            values = tables.field_matrix(table, field, every_layer, columns)
            thinned = values
            if len(starts) < len(columns):
                thinned = tables.field_max(table, field, every_layer, columns, starts)
            body[name] = encode.matrix(thinned, encoding)
            above = np.nan_to_num(values, nan=0.0) > 0
            first = np.where(above.any(axis=1), above.argmax(axis=1), -1)
            body[name + "Since"] = [int(table.steps[columns[j]]) if j >= 0 else None for j in first]
        channels = table.values[:, :, table.fields.index("channels")]
        body["channels"] = [_latest_count(row) for row in channels]
        if sampled:
            del body["totalSteps"]  # unknown until every step is read
            body["sampled"] = True
        return body

    def model(self, ctx: Any, eid: str, run: str) -> dict[str, Any]:
        """The latest model table of a run (a watch writes one; a later watch of the run replaces it);
        empty rows when the run has none (or none readable)."""
        self._queries.run_layers(ctx, eid, run)
        tag = metadata.tag_for(metadata.RecordKind.MODEL_TABLE)
        series = self._queries.listings.blobs(ctx, eid, run).get(tag)
        if series is None or layer_index.parse(series.plugin_content) is None:
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


def part_signature(part: layer_index.Part) -> tuple[int, float]:
    return int(part.series.max_step), float(part.series.max_wall_time)


def _latest_count(row: np.ndarray) -> int | None:
    """The latest finite value of a layer's per-step count (None when it never had one)."""
    finite = np.flatnonzero(np.isfinite(row))
    return int(row[finite[-1]]) if len(finite) else None


def _no_table(run: str) -> dict[str, Any]:
    return {"run": run, "step": None, "modelType": None, "params": None, "trainableParams": None, "rows": []}


def _owned_by(param: str, layer: str) -> bool:
    """A parameter row belongs to `layer` (with the same order): its qualified name lies under it."""
    return param.startswith(layer + ".") if layer else True
