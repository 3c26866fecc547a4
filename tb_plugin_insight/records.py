"""Record builders run on the writer thread: host arrays in, one `Summary` per recorded step out.

Each builder has the signature `build(first_time, *args) -> Summary`, the form `InsightWriter._enqueue`
takes. `first_time(tag)` is True for a tag's first value in the current event file (its metadata goes
there). Device arrays arrive as `transfer.HostArray` and are resolved here, so any wait for a
device-to-host copy happens off the training thread. PNG encoding also happens here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tensorboard.compat.proto import summary_pb2

from tb_plugin_insight import metadata, summary
from tb_plugin_insight.capture.hooks import LayerInfo
from tb_plugin_insight.capture.maps import MapRecord
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.capture.transfer import HostArray, host_numpy
from tb_plugin_insight.render import png

FirstTime = Callable[[str], bool]


def activation_stats(
    first_time: FirstTime, infos: Sequence[LayerInfo], stats: HostArray
) -> summary_pb2.Summary:
    """Every recorded layer's activation statistics at one step (one row of `stats` per layer)."""
    kind = metadata.RecordKind.ACTIVATION_STATS
    rows = host_numpy(stats)
    return summary.summary_of(
        [
            summary.activation_stats_value(
                info.name,
                row,
                module_type=info.module_type,
                shape=info.shape,
                order=info.order,
                with_metadata=first_time(metadata.tag_for(kind, info.name)),
            )
            for info, row in zip(infos, rows)
        ]
    )


def gradient_stats(
    first_time: FirstTime, infos: Sequence[LayerInfo], stats: HostArray
) -> summary_pb2.Summary:
    """Every recorded layer's gradient statistics at one step (metadata.GRAD_FIELDS rows)."""
    kind = metadata.RecordKind.GRADIENT_STATS
    rows = host_numpy(stats)
    return summary.summary_of(
        [
            summary.gradient_stats_value(
                info.name,
                row,
                module_type=info.module_type,
                shape=info.shape,
                order=info.order,
                with_metadata=first_time(metadata.tag_for(kind, info.name)),
            )
            for info, row in zip(infos, rows)
        ]
    )


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
        values.append(
            summary.probe_images_value(
                probe.name,
                png.sprite(probe.display),
                num_images=n,
                height=probe.display.shape[1],
                width=probe.display.shape[2],
                labels=[] if probe.labels is None else probe.labels.tolist(),
                class_names=probe.class_names,
            )
        )
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
                with_metadata=first_time(tag),
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
) -> summary_pb2.Summary:
    """Every recorded layer's further reductions at one step: dead/saturated unit fractions and the
    activation histogram. A row of `extras` holds the reducers' numbers side by side, as `layout` says."""
    rows = host_numpy(extras)
    blocks, start = {}, 0
    for name, width in layout:
        blocks[name] = rows[:, start : start + width]
        start += width
    values = []
    for row, info in enumerate(infos):
        common = {"module_type": info.module_type, "shape": info.shape, "order": info.order}
        if "units" in blocks:
            tag = metadata.tag_for(metadata.RecordKind.UNIT_STATS, info.name)
            values.append(
                summary.unit_stats_value(
                    info.name,
                    blocks["units"][row],
                    bounded=bounded.get(info.name, False),
                    with_metadata=first_time(tag),
                    **common,
                )
            )
        if "histogram" in blocks:
            tag = metadata.tag_for(metadata.RecordKind.ACTIVATION_HISTOGRAM, info.name)
            values.append(
                summary.histogram_value(
                    info.name,
                    blocks["histogram"][row],
                    bins=bins,
                    with_metadata=first_time(tag),
                    **common,
                )
            )
    return summary.summary_of(values)


def model_table(first_time: FirstTime, document: dict[str, Any]) -> summary_pb2.Summary:
    """The model table (one row per module), written once per watch."""
    return summary.summary_of([summary.model_table_value(document)])
