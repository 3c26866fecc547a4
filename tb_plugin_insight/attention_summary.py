"""Record builder of attention (run on the writer thread): one step's attention of the probe in, one
`Summary` out. Layouts are those of proto/plugin_data.proto (ATTENTION_MAPS, ATTENTION_STATS)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Union

import numpy as np
from tensorboard.compat.proto import summary_pb2
from tensorboard.util import tensor_util

from tb_plugin_insight import metadata, records, summary
from tb_plugin_insight.capture.attention_maps import LayerAttention
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.capture.text_probe import TextProbe
from tb_plugin_insight.explain.attention import grid_of

FirstTime = Callable[[str], bool]
Kind = metadata.RecordKind


def attention(
    first_time: FirstTime,
    probe: Union[Probe, TextProbe],
    layers: Sequence[LayerAttention],
    store_images: bool,
) -> summary_pb2.Summary:
    """Every attention module's chosen-query maps and per-query rows, the health table, and the probe
    images when `store_images` (first time, or after they changed: the view draws attention on them;
    a text probe's tokens are stored by the token-saliency records under the same probe name)."""
    values = [records.probe_images(probe)] if store_images and isinstance(probe, Probe) else []
    for layer in layers:
        values.append(_maps_value(first_time, probe.name, layer, rows=False))
        if layer.rows is not None:
            values.append(_maps_value(first_time, probe.name, layer, rows=True))
    values.append(_stats_value(first_time, probe.name, layers))
    return summary.summary_of(values)


def _maps_value(
    first_time: FirstTime, probe: str, layer: LayerAttention, *, rows: bool
) -> summary_pb2.Summary.Value:
    if rows:
        tag, array = metadata.attention_rows_tag(layer.name, probe), layer.rows
    else:
        tag, array = metadata.tag_for(Kind.ATTENTION_MAPS, layer.name, probe=probe), layer.chosen
    value = summary_pb2.Summary.Value(
        tag=tag, tensor=tensor_util.make_tensor_proto(np.asarray(array, np.uint8))
    )
    if first_time(tag):
        class_tokens, side = grid_of(layer.num_keys)
        value.metadata.CopyFrom(
            metadata.create_summary_metadata(
                Kind.ATTENTION_MAPS,
                layer.name,
                module_type=layer.module_type,
                shape=(layer.samples, layer.heads, layer.num_queries, layer.num_keys),
                order=layer.order,
                probe=probe,
                query_rule=layer.rule,
                query_index=layer.index,
                query_rows=rows,
                query_blocks=list(layer.blocks) if rows else [],
                heads=layer.heads,
                causal=layer.causal,
                num_keys=layer.num_keys,
                num_queries=layer.num_queries,
                grid_side=side,
                class_tokens=class_tokens,
                num_images=int(np.asarray(array).shape[0]),
            )
        )
    return value


def _stats_value(
    first_time: FirstTime, probe: str, layers: Sequence[LayerAttention]
) -> summary_pb2.Summary.Value:
    """[layers, 2, max heads] float32: normalised entropy and max logit per head (NaN padding), under
    a tag keyed by the module list (a watch of other modules gets its own tag and list)."""
    width = max((layer.heads for layer in layers), default=0)
    table = np.full((len(layers), 2, width), np.nan, dtype=np.float32)
    for i, layer in enumerate(layers):
        table[i, 0, : layer.heads] = layer.entropy
        table[i, 1, : layer.heads] = layer.max_logit
    key = metadata.layer_set_key([(layer.name, layer.module_type, layer.order, False) for layer in layers])
    tag = metadata.tag_for(Kind.ATTENTION_STATS, key, probe=probe)
    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(table))
    if first_time(tag):
        entries = [
            metadata.LayerEntry(
                name=layer.name,
                module_type=layer.module_type,
                shape=[layer.samples, layer.heads, layer.num_queries, layer.num_keys],
                order=layer.order,
            )
            for layer in layers
        ]
        value.metadata.CopyFrom(
            metadata.create_summary_metadata(
                Kind.ATTENTION_STATS, "", probe=probe, fields=metadata.ATTENTION_STAT_FIELDS, layers=entries
            )
        )
    return value
