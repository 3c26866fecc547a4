"""Record builders run on the writer thread: host arrays in, one `Summary` per recorded step out.

Each builder has the signature `build(first_time, *args) -> Summary`, the form `InsightWriter._enqueue`
takes. `first_time(tag)` is True for a tag's first value in the current event file (its metadata goes
there). Device arrays arrive as `transfer.HostArray` and are resolved here, so any wait for a
device-to-host copy happens off the training thread. PNG encoding also happens here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tensorboard.compat.proto import summary_pb2

from tb_plugin_insight import metadata, summary
from tb_plugin_insight.capture import feature_maps as fmaps
from tb_plugin_insight.capture import filters as filters_mod
from tb_plugin_insight.capture.hooks import LayerInfo
from tb_plugin_insight.capture.maps import MapRecord
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.capture.transfer import HostArray, host_numpy
from tb_plugin_insight.render import png

FirstTime = Callable[[str], bool]


def activation_stats(
    first_time: FirstTime, infos: Sequence[LayerInfo], stats: HostArray, float64: bool = False
) -> summary_pb2.Summary:
    """Every recorded layer's activation statistics at one step (one row of `stats` per layer), as one
    layer table (summary.py); `float64` keeps float64 whatever the values (see summary.compact_floats)."""
    return _table(first_time, metadata.RecordKind.ACTIVATION_STATS_TABLE, infos, stats, float64)


def gradient_stats(
    first_time: FirstTime, infos: Sequence[LayerInfo], stats: HostArray, float64: bool = False
) -> summary_pb2.Summary:
    """Every recorded layer's gradient statistics at one step (metadata.GRAD_FIELDS rows), one table."""
    return _table(first_time, metadata.RecordKind.GRADIENT_STATS_TABLE, infos, stats, float64)


def gradient_noise(
    first_time: FirstTime, infos: Sequence[LayerInfo], rows: HostArray, float64: bool = False
) -> summary_pb2.Summary:
    """The gradient noise rows of one step of a distributed job (metadata.NOISE_FIELDS), one table."""
    return _table(first_time, metadata.RecordKind.GRADIENT_NOISE_TABLE, infos, rows, float64)


def _layer_rows(infos: Sequence[LayerInfo], bounded: dict[str, bool] | None = None) -> list[summary.LayerRow]:
    flags = bounded or {}
    return [(i.name, i.module_type, i.shape, i.order, flags.get(i.name, False)) for i in infos]


def _table(
    first_time: FirstTime, kind: int, infos: Sequence[LayerInfo], stats: HostArray, float64: bool
) -> summary_pb2.Summary:
    """One value holding every layer's row, with the metadata (the layer list) on its tag's first value."""
    layers = _layer_rows(infos)
    tag = summary.layer_table_tag(kind, layers)
    value = summary.layer_table_value(
        kind, host_numpy(stats), layers, with_metadata=first_time(tag), float64=float64
    )
    return summary.summary_of([value])


def maps(
    first_time: FirstTime,
    probe: Probe,
    layer: str,
    record: MapRecord,
    auto_selected: bool,
    kind: int,
    store_images: bool,
) -> summary_pb2.Summary:
    """One step's CAM or saliency maps of a probe (PNG sprites), their raw ranges, the predictions, and
    the probe images themselves when `store_images` (first time, or after they changed)."""
    n, h, w = next(iter(record.maps.values())).shape
    values = []
    if store_images:
        values.append(probe_images(probe))
    for method, array in record.maps.items():
        tag = metadata.tag_for(kind, layer, method, probe.name)
        values.append(
            summary.map_value(
                kind,
                probe.name,
                layer,
                method,
                png.sprite(array),
                num_images=n,
                height=h,
                width=w,
                auto_selected=auto_selected,
                layer_reason=record.layer_reason,
                layer_layout=record.layout,
                with_metadata=first_time(tag),
                pool_factor=record.pool_factor,
                source_height=record.source_size[0],
                source_width=record.source_size[1],
            )
        )
        if method in record.ranges:
            ranges_tag = metadata.ranges_tag_for(kind, layer, method, probe.name)
            values.append(
                summary.map_ranges_value(
                    kind,
                    probe.name,
                    layer,
                    method,
                    record.ranges[method],
                    with_metadata=first_time(ranges_tag),
                )
            )
    if record.predicted is not None and record.probability is not None:
        tag = metadata.tag_for(metadata.RecordKind.PROBE_PREDICTIONS, probe=probe.name)
        values.append(
            summary.predictions_value(
                probe.name, record.predicted, record.probability, with_metadata=first_time(tag)
            )
        )
    return summary.summary_of(values)


def prebuilt(first_time: FirstTime, summary_proto: summary_pb2.Summary) -> summary_pb2.Summary:
    """A Summary built elsewhere, written in order with the other records."""
    return summary_proto


def layer_extras(
    first_time: FirstTime,
    infos: Sequence[LayerInfo],
    extras: HostArray,
    layout: tuple[tuple[str, int], ...],
    bounded: dict[str, bool],
    bins: int,
    massive_ratio: float = 0.0,
) -> summary_pb2.Summary:
    """Every recorded layer's further reductions at one step: dead/saturated unit fractions, the
    activation histogram and massive activations (counted at `massive_ratio`), one layer table each. A
    row of `extras` holds the reducers' numbers side by side, as `layout` says."""
    rows = host_numpy(extras)
    blocks, start = {}, 0
    for name, width in layout:
        blocks[name] = rows[:, start : start + width]
        start += width
    values = []
    if "units" in blocks:
        kind = metadata.RecordKind.UNIT_STATS_TABLE
        layers = _layer_rows(infos, bounded)
        tag = summary.layer_table_tag(kind, layers)
        values.append(summary.layer_table_value(kind, blocks["units"], layers, with_metadata=first_time(tag)))
    if "histogram" in blocks:
        kind = metadata.RecordKind.ACTIVATION_HISTOGRAM_TABLE
        layers = _layer_rows(infos)
        tag = summary.layer_table_tag(kind, layers)
        values.append(
            summary.layer_table_value(
                kind, blocks["histogram"], layers, with_metadata=first_time(tag), bins=bins
            )
        )
    if "massive" in blocks and not np.isnan(blocks["massive"]).all():  # none is a token layer: nothing
        kind = metadata.RecordKind.MASSIVE_ACTIVATIONS_TABLE
        layers = _layer_rows(infos)
        tag = summary.layer_table_tag(kind, layers)
        values.append(
            summary.layer_table_value(
                kind, blocks["massive"], layers, with_metadata=first_time(tag), massive_ratio=massive_ratio
            )
        )
    return summary.summary_of(values)


def param_histograms(
    first_time: FirstTime,
    entries: Sequence[tuple[str, str, tuple[int, ...], int]],
    hists: HostArray,
    bins: int,
) -> summary_pb2.Summary:
    """The weight and gradient histograms of every watched parameter at one step: two layer tables
    (PARAM_HISTOGRAM, GRAD_HISTOGRAM) whose rows are the parameters (`entries`: name, owning layer's
    module type, parameter shape, owning layer's order); `hists` is (parameters, 2, 4 + bins)."""
    array = host_numpy(hists)
    rows: list[summary.LayerRow] = [
        (name, mtype, shape, order, False) for name, mtype, shape, order in entries
    ]
    values = []
    for column, kind in enumerate((metadata.RecordKind.PARAM_HISTOGRAM, metadata.RecordKind.GRAD_HISTOGRAM)):
        tag = summary.layer_table_tag(kind, rows)
        values.append(
            summary.layer_table_value(kind, array[:, column], rows, with_metadata=first_time(tag), bins=bins)
        )
    return summary.summary_of(values)


def model_table(first_time: FirstTime, document: dict[str, Any]) -> summary_pb2.Summary:
    """The model table (one row per module), written once per watch."""
    return summary.summary_of([summary.model_table_value(document)])


def probe_images(probe: Probe) -> summary_pb2.Summary.Value:
    """The probe's display images as one RGB PNG sprite (stored once per run, or again after a change)."""
    return summary.probe_images_value(
        probe.name,
        png.sprite(probe.display),
        num_images=len(probe.display),
        height=probe.display.shape[1],
        width=probe.display.shape[2],
        labels=[] if probe.labels is None else probe.labels.tolist(),
        class_names=probe.class_names,
    )


def feature_maps(
    first_time: FirstTime,
    probe: Probe | None,
    maps_by_layer: dict[str, fmaps.FeatureMapRecord],
    weights: dict[str, filters_mod.FilterRecord],
    orders: dict[str, int],
    store_images: bool,
) -> summary_pb2.Summary:
    """One maps step: each layer's feature maps of the probe and each recorded convolution's filters,
    as PNG grids of 8-bit codes with their [min, max] scales (and the probe images when `store_images`)."""
    probe_name = probe.name if probe is not None else metadata.DEFAULT_PROBE
    values = [probe_images(probe)] if store_images and probe is not None else []
    kind, scale_kind = metadata.RecordKind.FEATURE_MAPS, metadata.RecordKind.FEATURE_MAP_SCALES
    for layer, record in maps_by_layer.items():
        n, _, h, w = record.codes.shape
        tag = metadata.tag_for(kind, layer, probe=probe_name)
        view = record.view
        values.append(
            summary.tiles_value(
                kind,
                tag,
                png.grid(record.codes),
                layer=layer,
                with_metadata=first_time(tag),
                probe=probe_name,
                num_images=n,
                height=h,
                width=w,
                layout=view.layout,
                channels=list(record.channels),
                num_channels=view.num_channels,
                grid_side=record.pooling.grid_side or view.grid_side,
                class_tokens=view.class_tokens,
                depth_index=max(view.depth_index, 0),
                user_channels=record.user_channels,
                order=view.order,
                module_type=view.module_type,
                shape=view.shape,
                pool_factor=record.pooling.factor,
                source_height=record.source_size[0],
                source_width=record.source_size[1],
                bits=record.bits,
            )
        )
        scale_tag = metadata.tag_for(scale_kind, layer, probe=probe_name)
        values.append(
            summary.tile_scales_value(
                scale_kind,
                scale_tag,
                record.scales,
                layer=layer,
                probe=probe_name,
                with_metadata=first_time(scale_tag),
            )
        )
    kind, scale_kind = metadata.RecordKind.FILTERS, metadata.RecordKind.FILTER_SCALES
    for layer, weight in weights.items():
        rows, _, h, w = weight.codes.shape[:4]
        tag = metadata.tag_for(kind, layer)
        values.append(
            summary.tiles_value(
                kind,
                tag,
                png.grid(weight.codes),
                layer=layer,
                with_metadata=first_time(tag),
                num_images=rows,
                height=h,
                width=w,
                layout=weight.layout,
                channels=list(weight.filters),
                input_channels=list(weight.inputs),
                num_channels=weight.num_filters,
                order=orders.get(layer, 0),
                module_type=weight.module_type,
                shape=weight.shape,
            )
        )
        scale_tag = metadata.tag_for(scale_kind, layer)
        values.append(
            summary.tile_scales_value(
                scale_kind, scale_tag, weight.scales, layer=layer, with_metadata=first_time(scale_tag)
            )
        )
    return summary.summary_of(values)


def feature_vis(
    first_time: FirstTime, images: dict[str, tuple[Any, tuple[int, ...]]], layers: Sequence[Any]
) -> summary_pb2.Summary:
    """One visualisation step: per layer, the channels' optimised inputs as one PNG strip.

    `images` maps a layer to its (K, h, w[, 3]) uint8 tiles and their channels; `layers` are the plan's
    `VisLayer`s (name, order, module type, output shape, user channels)."""
    values = []
    for layer in layers:
        if layer.name not in images:
            continue
        tiles, channels = images[layer.name]
        if tiles.ndim not in (3, 4) or len(channels) != tiles.shape[0]:
            raise ValueError(
                f"{len(channels)} feature visualisations must be (K, h, w[, 3]), got {tiles.shape}"
            )
        tag = metadata.tag_for(metadata.RecordKind.FEATURE_VIS, layer.name)
        values.append(
            summary.feature_vis_value(
                layer.name,
                png.grid(tiles[None]),
                channels,
                height=int(tiles.shape[1]),
                width=int(tiles.shape[2]),
                layout="rgb" if tiles.ndim == 4 else "gray",
                num_channels=int(layer.shape[1]),
                user_channels=layer.user_channels is not None,
                module_type=layer.module_type,
                shape=layer.shape,
                order=layer.order,
                with_metadata=first_time(tag),
            )
        )
    return summary.summary_of(values)
