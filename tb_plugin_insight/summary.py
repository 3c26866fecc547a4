"""Pure builders: numpy arrays in, `Summary` protos out. No torch, no hooks, no files.

Stored layout (a promise: later versions keep reading it):

Float vectors and tables (statistics, scales, ranges, predictions) are stored as float32 when that loses
nothing that matters, else as float64, per value (`compact_floats`): float32 when every count entry
(metadata.COUNT_FIELDS) is below 2^24, so exact, and every non-zero finite value stays a normal float32
(neither overflows to Inf nor underflows to 0). Activation and gradient statistics of a model whose
parameters are float64 stay float64 (their digits matter). Records written before this rule are
float64; readers take either.

ACTIVATION_STATS, tag `insight/activation_stats/<layer>`, data class TENSOR:
    float32/float64 tensor of shape [len(metadata.STAT_FIELDS)], in that order:
    mean, std (population, ddof=0), min, max over the finite elements; fraction of elements equal to
    zero over all elements; count of NaN; count of +/-Inf; number of elements. Statistics over an
    empty set are NaN.

GRADIENT_STATS, tag `insight/gradient_stats/<layer>`, data class TENSOR:
    float32/64 tensor of shape [len(metadata.GRAD_FIELDS)], in that order: over the layer's own parameters
    together, the gradients' L2 norm, mean |g| and max |g| over the finite elements, NaN count, Inf
    count, element count; the parameters' L2 norm before the step's update and the update ratio
    ||w_after - w_before|| / ||w_before||; then the L2 norm, NaN count, Inf count and element count of
    the gradient with respect to the layer's output. NaN where there is nothing to describe (a layer
    without parameters, an update not seen). Gradients are divided by the GradScaler's scale when one
    was given to watch().

PROBE_IMAGES, tag `insight/probe_images/<probe>`, data class BLOB_SEQUENCE, written once per probe
(again only if its images change): one RGB PNG, the N probe images stacked vertically
(N*height x width); labels and class names in the metadata.

CAM, tag `insight/cam/<probe>/<method>/<layer>`, and SALIENCY, tag `insight/saliency/<probe>/<method>`,
BLOB_SEQUENCE: one grayscale PNG per recorded step, the N maps stacked vertically; pixel v means v/255
of the map's per-image [0, 1] range. CAMs are stored at the explained layer's resolution; saliency maps
at the probe's, or average-pooled to at most `saliency_max_side` (`height`/`width` in the metadata give
the stored size, `source_height`/`source_width` the probe's, `pool_factor` the block side). The tab
upsamples both over the probe images.

Raw map ranges, tag `insight/map_ranges/<cam|saliency>/<probe>/<method>[/<layer>]`, TENSOR with the
metadata kind of the maps it describes: float32/64 [N, 2] per map step, each map's min and max before it was
scaled to [0, 1] (so a viewer can put all images on one shared scale). Saliency maps are divided by their
99th percentile and clipped, so their range is (0, that percentile).

PROBE_PREDICTIONS, tag `insight/probe_predictions/<probe>`, TENSOR:
    float32/64 [N, 2] per map step: predicted class index and its softmax probability.

ACTIVATION_HISTOGRAM, tag `insight/activation_histogram/<layer>`, TENSOR:
    float32 [4 + bins] per recorded step (earlier runs: float64; readers take either): low, high (the
    layer's fixed range, equal-width bins, chosen at its first recorded step: capture/histogram.py), the
    count of finite values below low and above high, then the count of each bin (numpy.histogram's
    convention). NaN/Inf are not counted. `bins` is also in the metadata.

UNIT_STATS, tag `insight/unit_stats/<layer>`, TENSOR:
    float32/64 [len(metadata.UNIT_FIELDS)] per recorded step: fraction of dead channels, fraction of
    saturated channels (NaN unless the metadata says `bounded`), number of channels.

MODEL_TABLE, tag `insight/model_table`, BLOB_SEQUENCE, written once per watch at its first recorded
step: one UTF-8 JSON document {"modelType", "params", "trainableParams", "rows": [{"name", "type",
"depth", "params" (with children), "trainableParams", "ownParams", "watched", "output" (a shape list,
a list/dict of them, or a type name; null if the module did not run), "calls"}]} in
`model.named_modules()` order.
Layer tables (schema v2, metadata version 1; what InsightWriter writes since): ACTIVATION_STATS_TABLE,
GRADIENT_STATS_TABLE, UNIT_STATS_TABLE and ACTIVATION_HISTOGRAM_TABLE, tag
`insight/layer_table/<activation_stats|gradient_stats|unit_stats|activation_histogram>/<key>`, TENSOR:
one record per recorded step holding every watched layer, float32/64 [layers, width]: row i is what the
per-layer kind above (ACTIVATION_STATS, GRADIENT_STATS, UNIT_STATS, ACTIVATION_HISTOGRAM) stores for
`layers[i]` of the metadata (its name, module type, shape, order, and `bounded` for units), dtype chosen
for the whole table (`compact_floats`; histograms float32). The layer list lives in the tag's metadata
(so in each event file's first record of the tag, never in the per-step records): it is constant per
watch, TensorBoard keeps a tag's metadata once per series, and `key` (metadata.layer_set_key: a hash of
the list) gives a run whose watched layers change a new tag with its own list, so a row is never read
against the wrong list. Steps that record more layers no longer write more records: 50 layers x 1,000
steps is 1,000 records per kind (v1: 50,000, read one by one by TensorBoard's data provider).
The per-layer kinds above (v1, metadata version 0) are still read.

FEATURE_MAPS, tag `insight/feature_maps/<probe>/<layer>`, BLOB_SEQUENCE: one grayscale PNG per maps
step, a grid of N rows (probe images) by K columns (the stored channels, `channels` in the metadata, in
that order) of tiles `height` x `width`: the layer's resolution, or average-pooled by `pool_factor`
from `source_height` x `source_width` (maps_max_side; see capture/feature_maps.py for the layouts and
the pooling). FEATURE_MAP_SCALES, tag `insight/feature_map_scales/<probe>/<layer>`, TENSOR: float32/64
[N, K, 2] per step, each tile's [min, max]: pixel q stands for min + q / 255 * (max - min), within
(max - min) / (2 L) of the (pooled) recorded value, where the codes are the multiples of 255 / L and L
is the largest divisor of 255 not above 2^bits - 1, `bits` in the metadata (0 in records written
before it: 8 bits; capture/quantize.py).

FILTERS, tag `insight/filters/<layer>`, BLOB_SEQUENCE: one PNG per maps step, a grid of tiles kh x kw:
layout "rgb": O rows x 1 column of RGB tiles (one per filter); layout "gray": O rows (filters) x I
columns (input channels) of grayscale tiles. FILTER_SCALES, tag `insight/filter_scales/<layer>`,
TENSOR: float32/64 [O, 1 or I, 2] per step, quantised like feature maps with 8 bits (an RGB tile shares
one scale).

FEATURE_VIS, tag `insight/feature_vis/<layer>`, BLOB_SEQUENCE: one PNG per visualisation step, a strip of
1 row x K columns of tiles `height` x `width` (K = `num_images`): the input optimised to maximise the
mean activation of channel `channels[j]` (metadata, in that order) at the layer
(tb_plugin_insight.featurevis), each tile min-max stretched on its own over all its colours; layout
"rgb" (3-channel model inputs) or "gray" (1 channel, or the mean of the input channels). `num_channels`
is the layer's channel count, `user_channels` true when the channels were given by index.

PARAM_HISTOGRAM and GRAD_HISTOGRAM, tags `insight/layer_table/<param_histogram|grad_histogram>/<key>`,
TENSOR: layer tables (as above) whose rows are parameter tensors of the watched layers rather than layers:
the metadata's entry i names the parameter (`fc.weight`, `fc.bias`; qualified as in
`model.named_parameters()`), with the module type and order of the watched layer owning it and the
parameter's shape. One record per step divisible by `histogram_every` (with gradients on), float32/64
[parameters, 4 + bins]: the histogram of the parameter's values (before that step's update) and of its
accumulated gradient, [low, high, underflow, overflow, counts...] with per-step, per-row symmetric edges
[-R, R], R a power of two at least the largest finite |value| (capture/histogram.py: symmetric_histogram);
underflow/overflow are 0, NaN/Inf not counted. Tensors over 65,536 elements are binned from a strided
sample, counts scaled to the full size.

MASSIVE_ACTIVATIONS_TABLE, tag `insight/layer_table/massive_activations/<key>`, TENSOR: a layer table (as
above) written at every statistics step with `watch(health=True)` (the default), float32/64
[layers, len(metadata.MASSIVE_FIELDS)]: for a token layer (output (N, L, C)), the number of channels whose
peak |a| exceeds `massive_ratio` (metadata) x the median channel peak, that median, the indices of the
MASSIVE_TOP channels with the largest peak-to-median ratios and those ratios, descending
(capture/health.py); all NaN for other layers.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
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
    float64: bool = False,
) -> summary_pb2.Summary.Value:
    """One layer's statistics at one step; metadata is only needed on a tag's first value. float32 as
    `compact_floats` allows, or float64 when `float64` (statistics of a float64 model)."""
    return _layer_vector_value(
        metadata.RecordKind.ACTIVATION_STATS,
        layer,
        stats,
        len(metadata.STAT_FIELDS),
        module_type=module_type,
        shape=shape,
        order=order,
        fields=metadata.STAT_FIELDS,
        with_metadata=with_metadata,
        dtype=np.float64 if float64 else None,
    )


def gradient_stats_value(
    layer: str,
    stats: np.ndarray,
    *,
    module_type: str,
    shape: Sequence[int],
    order: int,
    with_metadata: bool,
    float64: bool = False,
) -> summary_pb2.Summary.Value:
    """One layer's gradient statistics at one step (metadata.GRAD_FIELDS order; dtype as
    `activation_stats_value`)."""
    return _layer_vector_value(
        metadata.RecordKind.GRADIENT_STATS,
        layer,
        stats,
        len(metadata.GRAD_FIELDS),
        module_type=module_type,
        shape=shape,
        order=order,
        fields=metadata.GRAD_FIELDS,
        with_metadata=with_metadata,
        dtype=np.float64 if float64 else None,
    )


# (name, module type, output shape, order, bounded): a layer of a layer table, in row order.
LayerRow = tuple[str, str, Sequence[int], int, bool]

TABLE_FIELDS: dict[int, tuple[str, ...]] = {
    metadata.RecordKind.ACTIVATION_STATS_TABLE: metadata.STAT_FIELDS,
    metadata.RecordKind.GRADIENT_STATS_TABLE: metadata.GRAD_FIELDS,
    metadata.RecordKind.UNIT_STATS_TABLE: metadata.UNIT_FIELDS,
    metadata.RecordKind.ACTIVATION_HISTOGRAM_TABLE: metadata.HISTOGRAM_HEAD,
    metadata.RecordKind.PARAM_HISTOGRAM: metadata.HISTOGRAM_HEAD,
    metadata.RecordKind.GRAD_HISTOGRAM: metadata.HISTOGRAM_HEAD,
    metadata.RecordKind.GRADIENT_NOISE_TABLE: metadata.NOISE_FIELDS,
    metadata.RecordKind.MASSIVE_ACTIVATIONS_TABLE: metadata.MASSIVE_FIELDS,
}
# Table kinds whose rows are histograms: HISTOGRAM_HEAD then `bins` counts.
HISTOGRAM_TABLES = frozenset(
    {
        metadata.RecordKind.ACTIVATION_HISTOGRAM_TABLE,
        metadata.RecordKind.PARAM_HISTOGRAM,
        metadata.RecordKind.GRAD_HISTOGRAM,
    }
)


@functools.lru_cache(maxsize=256)  # one key per watched layer list, asked at every recorded step
def _table_tag(kind: int, identity: tuple[tuple[str, str, int, bool], ...]) -> str:
    return metadata.tag_for(kind, metadata.layer_set_key(identity))


def layer_table_tag(kind: int, layers: Sequence[LayerRow]) -> str:
    """The tag of a layer table of `kind` over `layers` (see the module docstring)."""
    return _table_tag(kind, tuple((n, t, int(o), bool(b)) for n, t, _, o, b in layers))


def layer_table_value(
    kind: int,
    rows: np.ndarray,
    layers: Sequence[LayerRow],
    *,
    with_metadata: bool,
    float64: bool = False,
    bins: int = 0,
    massive_ratio: float = 0.0,
) -> summary_pb2.Summary.Value:
    """Every layer's row of one step as one [layers, width] tensor (a *_TABLE kind); float32 for
    histograms, float64 when `float64`, else as `compact_floats` says for the whole table.
    `massive_ratio`: MASSIVE_ACTIVATIONS_TABLE's counting ratio, kept in the metadata."""
    fields = TABLE_FIELDS[kind]
    width = len(fields) + (bins if kind in HISTOGRAM_TABLES else 0)
    if kind == metadata.RecordKind.ACTIVATION_HISTOGRAM_TABLE:
        table = np.asarray(rows, dtype=np.float32)
    elif kind in HISTOGRAM_TABLES:  # per-step edges of vanishing gradients may leave float32's range
        table = compact_floats(np.asarray(rows, dtype=np.float64), counts=range(2, width))
    elif float64:
        table = np.asarray(rows, dtype=np.float64)
    else:
        counts = [i for i, field in enumerate(fields) if field in metadata.COUNT_FIELDS]
        table = compact_floats(np.asarray(rows, dtype=np.float64), counts=counts)
    if table.shape != (len(layers), width):
        raise ValueError(f"layer table must have shape ({len(layers)}, {width}), got {table.shape}")
    value = summary_pb2.Summary.Value(tag=layer_table_tag(kind, layers), tensor=float_tensor_proto(table))
    if with_metadata:
        entries = [
            metadata.LayerEntry(name=n, module_type=t, shape=list(s), order=int(o), bounded=bool(b))
            for n, t, s, o, b in layers
        ]
        value.metadata.CopyFrom(
            metadata.create_summary_metadata(
                kind, "", fields=fields, layers=entries, bins=bins, massive_ratio=massive_ratio
            )
        )
    return value


_F32 = np.finfo(np.float32)
_EXACT_COUNT = float(1 << 24)  # every integer below it is exact in float32


def compact_floats(values: np.ndarray, counts: Sequence[int] = ()) -> np.ndarray:
    """`values` as float32 when that loses nothing that matters, else as float64 (the whole array).

    float32 holds ~7 significant digits, plenty for statistics shown on charts, at half the bytes. It
    is chosen unless an entry in a `counts` column (last axis) is 2^24 or more (counts must stay exact)
    or a non-zero finite value falls outside float32's normal range (it would become Inf, 0 or lose
    digits as a subnormal: a vanishing gradient norm of 1e-40 must not read as 0). NaN and Inf stay.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.size <= _SMALL and (array.ndim == 1 or not len(counts)):
        return array.astype(np.float32) if _small_fits(array, counts) else array
    magnitude = np.abs(array[np.isfinite(array)])
    magnitude = magnitude[magnitude != 0]
    fits = not magnitude.size or (magnitude.min() >= _F32.tiny and magnitude.max() <= _F32.max)
    if fits and len(counts) and array.size:
        column = np.abs(array[..., list(counts)])
        fits = not bool((column[np.isfinite(column)] >= _EXACT_COUNT).any())
    return array.astype(np.float32) if fits else array


_SMALL = 64  # up to this many values a plain loop beats numpy's per-call overhead (a record per layer)
_TINY, _HUGE = float(_F32.tiny), float(_F32.max)


def _small_fits(array: np.ndarray, counts: Sequence[int]) -> bool:
    """compact_floats' test for a small array (1-D when `counts` are given), as a loop over floats."""
    items = array.ravel().tolist()
    for v in items:
        m = abs(v)
        if m != 0.0 and m != float("inf") and m == m and not _TINY <= m <= _HUGE:
            return False
    return all(not abs(items[i]) >= _EXACT_COUNT or abs(items[i]) == float("inf") for i in counts)


def float_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A float32/float64 numpy array as a TensorProto (little-endian bytes, as make_tensor_proto
    writes them), built directly: the generic converter costs several times more per small record."""
    if array.dtype == np.float32:
        dtype = types_pb2.DT_FLOAT
    elif array.dtype == np.float64:
        dtype = types_pb2.DT_DOUBLE
    else:
        return tensor_util.make_tensor_proto(array)
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(n)) for n in array.shape]
    )
    content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, tensor_content=content)


def summary_of(values: Sequence[summary_pb2.Summary.Value]) -> summary_pb2.Summary:
    """Bundle values recorded at the same step into one Summary (one event on disk)."""
    return summary_pb2.Summary(value=list(values))


def _blob_value(tag: str, blob: bytes) -> summary_pb2.Summary.Value:
    """A BLOB_SEQUENCE value: a rank-1 string tensor (the Rust data server drops rank-0 ones)."""
    return summary_pb2.Summary.Value(
        tag=tag, tensor=tensor_util.make_tensor_proto(np.array([blob], dtype=object))
    )


def probe_images_value(
    probe: str,
    sprite_png: bytes,
    *,
    num_images: int,
    height: int,
    width: int,
    labels: Sequence[int] = (),
    class_names: Sequence[str] = (),
) -> summary_pb2.Summary.Value:
    """The probe batch, stored once: one RGB PNG sprite (images stacked vertically)."""
    kind = metadata.RecordKind.PROBE_IMAGES
    value = _blob_value(metadata.tag_for(kind, probe=probe), sprite_png)
    value.metadata.CopyFrom(
        metadata.create_summary_metadata(
            kind,
            "",
            data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
            probe=probe,
            num_images=num_images,
            height=height,
            width=width,
            labels=[int(label) for label in labels],
            class_names=list(class_names),
        )
    )
    return value


def map_value(
    kind: int,
    probe: str,
    layer: str,
    method: str,
    sprite_png: bytes,
    *,
    num_images: int,
    height: int,
    width: int,
    auto_selected: bool = False,
    with_metadata: bool,
    pool_factor: int = 1,
    source_height: int = 0,
    source_width: int = 0,
    layer_reason: str = "",
    layer_layout: str = "",
) -> summary_pb2.Summary.Value:
    """CAM or saliency maps of the probe at one step: one grayscale PNG sprite (0..255 = 0..1), maps of
    `height` x `width` (pooled by `pool_factor` from `source_height` x `source_width`, if > 1)."""
    value = _blob_value(metadata.tag_for(kind, layer, method, probe), sprite_png)
    if with_metadata:
        value.metadata.CopyFrom(
            metadata.create_summary_metadata(
                kind,
                layer,
                data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
                probe=probe,
                method=method,
                num_images=num_images,
                height=height,
                width=width,
                auto_selected=auto_selected,
                layer_reason=layer_reason,
                layer_layout=layer_layout,
                pool_factor=pool_factor,
                source_height=source_height,
                source_width=source_width,
            )
        )
    return value


def predictions_value(
    probe: str, predicted: np.ndarray, probability: np.ndarray, *, with_metadata: bool
) -> summary_pb2.Summary.Value:
    """Predicted class and its probability per probe image: tensor [N, 2] (see `compact_floats`)."""
    table = np.stack([np.asarray(predicted, np.float64), np.asarray(probability, np.float64)], axis=1)
    table = compact_floats(table, counts=(0,))
    kind = metadata.RecordKind.PROBE_PREDICTIONS
    tag = metadata.tag_for(kind, probe=probe)
    value = summary_pb2.Summary.Value(tag=tag, tensor=float_tensor_proto(table))
    if with_metadata:
        value.metadata.CopyFrom(
            metadata.create_summary_metadata(
                kind, "", probe=probe, num_images=len(table), fields=("class", "probability")
            )
        )
    return value


def map_ranges_value(
    kind: int, probe: str, layer: str, method: str, ranges: np.ndarray, *, with_metadata: bool
) -> summary_pb2.Summary.Value:
    """Each map's raw [min, max] before per-image scaling: tensor [N, 2] (see `compact_floats`)."""
    table = compact_floats(np.asarray(ranges, dtype=np.float64).reshape(-1, 2))
    tag = metadata.ranges_tag_for(kind, layer, method, probe)
    value = summary_pb2.Summary.Value(tag=tag, tensor=float_tensor_proto(table))
    if with_metadata:
        value.metadata.CopyFrom(
            metadata.create_summary_metadata(
                kind, layer, probe=probe, method=method, num_images=len(table), fields=("min", "max")
            )
        )
    return value


def _layer_vector_value(
    kind: int,
    layer: str,
    vector: np.ndarray,
    length: int,
    *,
    module_type: str,
    shape: Sequence[int],
    order: int,
    fields: Sequence[str],
    with_metadata: bool,
    dtype: type | None = None,
    **extra: Any,
) -> summary_pb2.Summary.Value:
    """A per-layer vector value: in `dtype`, or by default float32/float64 as `compact_floats` says."""
    if dtype is None:
        counts = [i for i, field in enumerate(fields) if field in metadata.COUNT_FIELDS]
        vector = compact_floats(np.asarray(vector, dtype=np.float64), counts=counts)
    else:
        vector = np.asarray(vector, dtype=dtype)
    if vector.shape != (length,):
        raise ValueError(f"record of layer {layer!r} must have shape ({length},), got {vector.shape}")
    value = summary_pb2.Summary.Value(tag=metadata.tag_for(kind, layer), tensor=float_tensor_proto(vector))
    if with_metadata:
        value.metadata.CopyFrom(
            metadata.create_summary_metadata(
                kind, layer, module_type=module_type, shape=shape, order=order, fields=fields, **extra
            )
        )
    return value


def tiles_value(
    kind: int,
    tag: str,
    sprite_png: bytes,
    *,
    layer: str,
    with_metadata: bool,
    **extra: Any,
) -> summary_pb2.Summary.Value:
    """FEATURE_MAPS or FILTERS at one step: one PNG grid of 8-bit tiles (metadata: layout, channels...)."""
    value = _blob_value(tag, sprite_png)
    if with_metadata:
        value.metadata.CopyFrom(
            metadata.create_summary_metadata(
                kind, layer, data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE, **extra
            )
        )
    return value


def histogram_value(
    layer: str,
    vector: np.ndarray,
    *,
    bins: int,
    module_type: str,
    shape: Sequence[int],
    order: int,
    with_metadata: bool,
) -> summary_pb2.Summary.Value:
    """One layer's histogram at one step: [low, high, underflow, overflow, counts...] as float32."""
    return _layer_vector_value(
        metadata.RecordKind.ACTIVATION_HISTOGRAM,
        layer,
        vector,
        len(metadata.HISTOGRAM_HEAD) + bins,
        module_type=module_type,
        shape=shape,
        order=order,
        fields=metadata.HISTOGRAM_HEAD,
        with_metadata=with_metadata,
        dtype=np.float32,  # counts (estimates for sampled outputs) need no more: half the bytes
        bins=bins,
    )


def unit_stats_value(
    layer: str,
    vector: np.ndarray,
    *,
    bounded: bool,
    module_type: str,
    shape: Sequence[int],
    order: int,
    with_metadata: bool,
) -> summary_pb2.Summary.Value:
    """One layer's dead/saturated fractions at one step (metadata.UNIT_FIELDS order)."""
    return _layer_vector_value(
        metadata.RecordKind.UNIT_STATS,
        layer,
        vector,
        len(metadata.UNIT_FIELDS),
        module_type=module_type,
        shape=shape,
        order=order,
        fields=metadata.UNIT_FIELDS,
        with_metadata=with_metadata,
        bounded=bounded,
    )


def model_table_value(document: dict[str, Any]) -> summary_pb2.Summary.Value:
    """The model table as one JSON blob (names are data, never markup)."""
    kind = metadata.RecordKind.MODEL_TABLE
    blob = json.dumps(document, ensure_ascii=False, allow_nan=False).encode("utf-8")
    value = _blob_value(metadata.tag_for(kind), blob)
    value.metadata.CopyFrom(
        metadata.create_summary_metadata(kind, "", data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE)
    )
    return value


def tile_scales_value(
    kind: int, tag: str, scales: np.ndarray, *, layer: str, with_metadata: bool, probe: str = ""
) -> summary_pb2.Summary.Value:
    """The [min, max] each tile of a FEATURE_MAPS / FILTERS grid was quantised from: [R, C, 2] (float32
    unless a value needs float64, see `compact_floats`)."""
    table = compact_floats(np.asarray(scales, dtype=np.float64))
    if table.ndim != 3 or table.shape[-1] != 2:
        raise ValueError(f"tile scales must have shape (rows, columns, 2), got {table.shape}")
    value = summary_pb2.Summary.Value(tag=tag, tensor=float_tensor_proto(table))
    if with_metadata:
        value.metadata.CopyFrom(
            metadata.create_summary_metadata(kind, layer, probe=probe, fields=("min", "max"))
        )
    return value


def feature_vis_value(
    layer: str,
    strip_png: bytes,
    channels: Sequence[int],
    *,
    height: int,
    width: int,
    layout: str,
    num_channels: int,
    user_channels: bool,
    module_type: str,
    shape: Sequence[int],
    order: int,
    with_metadata: bool,
) -> summary_pb2.Summary.Value:
    """One layer's feature visualisations at one step: a PNG strip of 1 x len(channels) tiles."""
    kind = metadata.RecordKind.FEATURE_VIS
    return tiles_value(
        kind,
        metadata.tag_for(kind, layer),
        strip_png,
        layer=layer,
        with_metadata=with_metadata,
        num_images=len(channels),
        height=height,
        width=width,
        layout=layout,
        channels=[int(c) for c in channels],
        num_channels=num_channels,
        user_channels=user_channels,
        module_type=module_type,
        shape=list(shape),
        order=order,
    )
