"""Pure query implementations: data_provider reads in, JSON-ready dicts out. No werkzeug here.

Every read goes through TensorBoard's `data_provider`, so the Rust data server, `--load_fast=false`
and remote log directories behave the same.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

from tensorboard.data import provider as tb_provider

from tb_plugin_insight import metadata
from tb_plugin_insight.plugin.http import not_found

# What to ask of the provider when the user keeps everything (sampling hint 0 / unset).
ALL_POINTS = 1_000_000_000


@functools.lru_cache(maxsize=65536)
def _parse(content: bytes) -> metadata.PluginData | None:
    return metadata.parse_plugin_metadata(content)


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _layer_json(data: metadata.PluginData, max_step: int) -> dict[str, Any]:
    return {
        "name": data.layer,
        "moduleType": data.module_type,
        "shape": list(data.shape),
        "order": data.order,
        "maxStep": int(max_step),
    }


class InsightQueries:
    """Reads Insight records of one TensorBoard instance (one data provider)."""

    def __init__(self, data_provider: Any, downsample: int) -> None:
        self._provider = data_provider
        self._downsample = downsample if downsample > 0 else ALL_POINTS

    def _stats_series(
        self, ctx: Any, eid: str, runs: Iterable[str] | None = None
    ) -> dict[str, dict[str, tuple[metadata.PluginData, Any]]]:
        """{run: {layer: (metadata, time series)}} of activation-stats tags readable by this version."""
        run_filter = tb_provider.RunTagFilter(runs=list(runs)) if runs is not None else None
        listing = self._provider.list_tensors(
            ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME, run_tag_filter=run_filter
        )
        result: dict[str, dict[str, tuple[metadata.PluginData, Any]]] = {}
        for run, tags in listing.items():
            for tag, series in tags.items():
                data = _parse(series.plugin_content)
                if data is None or data.kind != metadata.RecordKind.ACTIVATION_STATS:
                    continue
                if tag != metadata.tag_for(data.kind, data.layer):
                    continue
                result.setdefault(run, {})[data.layer] = (data, series)
        return result

    def _run_layers(self, ctx: Any, eid: str, run: str) -> dict[str, tuple[Any, Any]]:
        layers = self._stats_series(ctx, eid, [run]).get(run)
        if not layers:
            raise not_found(f"run {run!r} has no Insight data")
        return layers

    def runs(self, ctx: Any, eid: str) -> dict[str, Any]:
        listing = self._stats_series(ctx, eid)
        runs = [
            {
                "run": run,
                "numLayers": len(layers),
                "maxStep": int(max(series.max_step for _, series in layers.values())),
            }
            for run, layers in sorted(listing.items())
        ]
        return {"runs": runs}

    def layers(self, ctx: Any, eid: str, run: str) -> dict[str, Any]:
        layers = self._run_layers(ctx, eid, run)
        ordered = sorted(layers.values(), key=lambda item: (item[0].order, item[0].layer))
        return {
            "run": run,
            "stats": list(metadata.STAT_FIELDS),
            "layers": [_layer_json(data, series.max_step) for data, series in ordered],
        }

    def _read(self, ctx: Any, eid: str, run: str, tags: list[str]) -> dict[str, list[Any]]:
        result = self._provider.read_tensors(
            ctx,
            experiment_id=eid,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=tags),
        )
        return result.get(run, {})

    def stats_heatmap(self, ctx: Any, eid: str, run: str, stat: str) -> dict[str, Any]:
        layers = self._run_layers(ctx, eid, run)
        ordered = sorted(layers.values(), key=lambda item: (item[0].order, item[0].layer))
        tags = [metadata.tag_for(data.kind, data.layer) for data, _ in ordered]
        data_by_tag = self._read(ctx, eid, run, tags)
        column = metadata.STAT_FIELDS.index(stat)
        per_layer: list[dict[int, float | None]] = []
        all_steps: set[int] = set()
        for tag in tags:
            values = {}
            for datum in data_by_tag.get(tag, []):
                vector = datum.numpy.reshape(-1)
                if vector.shape[0] > column:
                    values[int(datum.step)] = _finite_or_none(vector[column])
            per_layer.append(values)
            all_steps.update(values)
        steps = sorted(all_steps)
        return {
            "run": run,
            "stat": stat,
            "layers": [data.layer for data, _ in ordered],
            "steps": steps,
            "values": [[values.get(step) for step in steps] for values in per_layer],
        }

    def layer_stats(self, ctx: Any, eid: str, run: str, layer: str) -> dict[str, Any]:
        layers = self._run_layers(ctx, eid, run)
        if layer not in layers:
            raise not_found(f"run {run!r} has no layer {layer!r}")
        data, _ = layers[layer]
        tag = metadata.tag_for(data.kind, data.layer)
        points = sorted(self._read(ctx, eid, run, [tag]).get(tag, []), key=lambda d: d.step)
        fields = list(data.fields) or list(metadata.STAT_FIELDS)
        columns: dict[str, list[float | None]] = {name: [] for name in metadata.STAT_FIELDS}
        for datum in points:
            vector = datum.numpy.reshape(-1)
            for name in metadata.STAT_FIELDS:
                index = fields.index(name) if name in fields else -1
                ok = 0 <= index < vector.shape[0]
                columns[name].append(_finite_or_none(vector[index]) if ok else None)
        return {
            "run": run,
            "layer": layer,
            "moduleType": data.module_type,
            "shape": list(data.shape),
            "steps": [int(d.step) for d in points],
            "wallTimes": [float(d.wall_time) for d in points],
            "stats": columns,
        }
