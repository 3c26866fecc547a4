"""Pure builders: numpy arrays in, `Summary` protos out. No torch, no hooks, no files.

Stored layout (a promise: later versions keep reading it):

ACTIVATION_STATS, tag `insight/activation_stats/<layer>`, data class TENSOR:
    float64 tensor of shape [len(metadata.STAT_FIELDS)], in that order:
    mean, std (population, ddof=0), min, max over the finite elements; fraction of elements equal to
    zero over all elements; count of NaN; count of +/-Inf; number of elements. Statistics over an
    empty set are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tensorboard.compat.proto import summary_pb2
from tensorboard.util import tensor_util

from tb_plugin_insight import metadata


def activation_stats_value(
    layer: str,
    stats: np.ndarray,
    *,
    module_type: str,
    shape: Sequence[int],
    order: int,
    with_metadata: bool,
) -> summary_pb2.Summary.Value:
    """One layer's statistics at one step; metadata is only needed on a tag's first value."""
    stats = np.asarray(stats, dtype=np.float64)
    if stats.shape != (len(metadata.STAT_FIELDS),):
        raise ValueError(
            f"stats for layer {layer!r} must have shape ({len(metadata.STAT_FIELDS)},), got {stats.shape}"
        )
    kind = metadata.RecordKind.ACTIVATION_STATS
    value = summary_pb2.Summary.Value(
        tag=metadata.tag_for(kind, layer), tensor=tensor_util.make_tensor_proto(stats)
    )
    if with_metadata:
        value.metadata.CopyFrom(
            metadata.create_summary_metadata(
                kind,
                layer,
                module_type=module_type,
                shape=shape,
                order=order,
                fields=metadata.STAT_FIELDS,
            )
        )
    return value


def summary_of(values: Sequence[summary_pb2.Summary.Value]) -> summary_pb2.Summary:
    """Bundle values recorded at the same step into one Summary (one event on disk)."""
    return summary_pb2.Summary(value=list(values))
