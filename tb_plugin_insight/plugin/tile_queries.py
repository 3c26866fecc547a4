"""Feature maps, filters and feature visualisations: their series, scales and PNGs, via the data provider.

Maps and filters are stored the same way (summary.py): one PNG grid of 8-bit tiles per step (a blob
sequence) and a float32 (older runs: float64) [rows, columns, 2] tensor of each tile's [min, max] at the
same step. Feature visualisations are one PNG strip per step, each tile stretched on its own (no scales).
"""

from __future__ import annotations

from typing import Any, Optional

from tensorboard.data import provider as tb_provider

from tb_plugin_insight import metadata
from tb_plugin_insight.plugin.http import not_found
from tb_plugin_insight.plugin.layer_index import parse
from tb_plugin_insight.plugin.listings import CachedReader, RunListings
from tb_plugin_insight.plugin.queries import ALL_POINTS, finite_or_none, pooling_json

FEATURE_MAPS = metadata.RecordKind.FEATURE_MAPS
FILTERS = metadata.RecordKind.FILTERS
FEATURE_VIS = metadata.RecordKind.FEATURE_VIS
_NOUN = {FEATURE_MAPS: "feature maps", FILTERS: "filters", FEATURE_VIS: "feature visualisations"}


def _feature_map_json(data: metadata.PluginData, steps: list[int]) -> dict[str, Any]:
    return {
        "layer": data.layer,
        "probe": data.probe,
        "moduleType": data.module_type,
        "shape": list(data.shape),
        "order": data.order,
        "layout": data.layout,
        "channels": list(data.channels),
        "numChannels": data.num_channels,
        "userChannels": data.user_channels,
        "numImages": data.num_images,
        "height": data.height,
        "width": data.width,
        "gridSide": data.grid_side,
        "classTokens": data.class_tokens,
        "depthIndex": data.depth_index if data.layout == "volume" else None,
        **pooling_json(data),
        "bits": data.bits or 8,
        "steps": steps,
    }


def _filters_json(data: metadata.PluginData, steps: list[int]) -> dict[str, Any]:
    return {
        "layer": data.layer,
        "moduleType": data.module_type,
        "shape": list(data.shape),
        "order": data.order,
        "layout": data.layout,
        "filters": list(data.channels),
        "inputChannels": list(data.input_channels),
        "numFilters": data.num_channels,
        "height": data.height,
        "width": data.width,
        "steps": steps,
    }


def _feature_vis_json(data: metadata.PluginData, steps: list[int]) -> dict[str, Any]:
    return {
        "layer": data.layer,
        "moduleType": data.module_type,
        "shape": list(data.shape),
        "order": data.order,
        "layout": data.layout,
        "channels": list(data.channels),
        "numChannels": data.num_channels,
        "userChannels": data.user_channels,
        "numImages": data.num_images,
        "height": data.height,
        "width": data.width,
        "steps": steps,
    }


class TileQueries:
    """Reads FEATURE_MAPS / FILTERS grids and their scales of one TensorBoard instance."""

    def __init__(self, data_provider: Any, downsample: int, listings: Optional[RunListings] = None) -> None:
        self._provider = data_provider
        self._downsample = downsample if downsample > 0 else ALL_POINTS
        self._listings = listings or RunListings(data_provider)
        self._reader = CachedReader(data_provider, self._listings, self._downsample)

    def _series(self, ctx: Any, eid: str, run: str, kind: int) -> dict[str, metadata.PluginData]:
        """{tag: metadata} of the run's readable series of `kind`; 404 for a run without Insight data."""
        found: dict[str, metadata.PluginData] = {}
        readable = False
        for tag, series in self._listings.blobs(ctx, eid, run).items():
            data = parse(series.plugin_content)
            readable = readable or data is not None
            if data is not None and data.kind == kind:
                found[tag] = data
        if not found and not readable and not self._has_tensors(ctx, eid, run):
            raise not_found(f"run {run!r} has no Insight data")
        return found

    def _has_tensors(self, ctx: Any, eid: str, run: str) -> bool:
        return bool(self._listings.tensors(ctx, eid, run))

    def _blobs(self, ctx: Any, eid: str, run: str, tags: list[str]) -> dict[str, list[Any]]:
        return self._reader.blobs(ctx, eid, run, tags)

    def _steps(self, ctx: Any, eid: str, run: str, tags: list[str]) -> dict[str, list[int]]:
        blobs = self._blobs(ctx, eid, run, tags) if tags else {}
        return {tag: sorted({int(d.step) for d in blobs.get(tag, []) if d.values}) for tag in tags}

    def layers(self, ctx: Any, eid: str, run: str, probe: str) -> dict[str, Any]:
        """Every layer with feature maps (of `probe`) and every layer with filters, in model order."""
        maps = {t: d for t, d in self._series(ctx, eid, run, FEATURE_MAPS).items() if d.probe == probe}
        filters = self._series(ctx, eid, run, FILTERS)
        steps = self._steps(ctx, eid, run, sorted([*maps, *filters]))
        order = lambda item: (item[1].order, item[1].layer)  # noqa: E731
        return {
            "run": run,
            "probe": probe,
            "featureMaps": [_feature_map_json(d, steps[t]) for t, d in sorted(maps.items(), key=order)],
            "filters": [_filters_json(d, steps[t]) for t, d in sorted(filters.items(), key=order)],
        }

    def feature_vis_layers(self, ctx: Any, eid: str, run: str) -> dict[str, Any]:
        """Every layer with feature visualisations, in model order, with its recorded steps."""
        found = self._series(ctx, eid, run, FEATURE_VIS)
        steps = self._steps(ctx, eid, run, sorted(found))
        order = lambda item: (item[1].order, item[1].layer)  # noqa: E731
        return {
            "run": run,
            "featureVis": [_feature_vis_json(d, steps[t]) for t, d in sorted(found.items(), key=order)],
        }

    def _one(self, ctx: Any, eid: str, run: str, kind: int, layer: str, probe: str) -> tuple[str, Any]:
        tag = metadata.tag_for(kind, layer, probe=probe)
        data = self._series(ctx, eid, run, kind).get(tag)
        if data is None:
            raise not_found(f"run {run!r} has no {_NOUN[kind]} of layer {layer!r}")
        return tag, data

    def series(
        self, ctx: Any, eid: str, run: str, kind: int, layer: str, probe: str, step: Optional[int]
    ) -> dict[str, Any]:
        """One layer's series, and the [min, max] of every tile at `step` (default: the last step)."""
        tag, data = self._one(ctx, eid, run, kind, layer, probe)
        steps = self._steps(ctx, eid, run, [tag])[tag]
        if not steps:
            raise not_found(f"run {run!r} has no {_NOUN[kind]} of layer {layer!r} yet")
        shown = steps[-1] if step is None else step
        if shown not in steps:
            raise not_found(f"run {run!r} has no {_NOUN[kind]} of layer {layer!r} at step {shown}")
        scales = self._scales(
            ctx, eid, run, metadata.tag_for(metadata.SCALE_KINDS[kind], layer, probe=probe), shown
        )
        body = _feature_map_json(data, steps) if kind == FEATURE_MAPS else _filters_json(data, steps)
        body.update(
            run=run,
            step=shown,
            scaleMin=[[finite_or_none(v) for v in row] for row in scales[..., 0]]
            if scales is not None
            else None,
            scaleMax=[[finite_or_none(v) for v in row] for row in scales[..., 1]]
            if scales is not None
            else None,
        )
        return body

    def _scales(self, ctx: Any, eid: str, run: str, tag: str, step: int) -> Any:
        result = self._provider.read_tensors(
            ctx,
            experiment_id=eid,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=[tag]),
        )
        for datum in result.get(run, {}).get(tag, []):
            if int(datum.step) == step and datum.numpy.ndim == 3 and datum.numpy.shape[-1] == 2:
                return datum.numpy
        return None

    def image(self, ctx: Any, eid: str, run: str, kind: int, layer: str, probe: str, step: int) -> bytes:
        """The PNG grid (feature visualisations: strip) of one layer at exactly `step`."""
        tag, _ = self._one(ctx, eid, run, kind, layer, probe)
        for datum in self._blobs(ctx, eid, run, [tag]).get(tag, []):
            if int(datum.step) == step and datum.values:
                return self._provider.read_blob(ctx, blob_key=datum.values[-1].blob_key)
        raise not_found(f"run {run!r} has no {_NOUN[kind]} of layer {layer!r} at step {step}")
