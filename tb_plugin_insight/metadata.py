"""The shared vocabulary of the writer and the plugin: plugin name, schema version, tags, metadata.

Imported by both sides, so it needs only protobuf and tensorboard's protos (never torch).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tensorboard.compat.proto import summary_pb2

from tb_plugin_insight.proto import plugin_data_pb2

if TYPE_CHECKING:
    from typing_extensions import TypeAlias

PLUGIN_NAME = "insight"

# Bumped when a reader must not interpret newer records; readers skip records newer than this.
# 0: v1, one record per layer per step and kind. 1: v2, the layer tables (*_TABLE kinds, one record per
# step and kind for every layer); readers of version 1 read both.
PROTO_VERSION = 1

RecordKind = plugin_data_pb2.RecordKind
PluginData: TypeAlias = plugin_data_pb2.InsightPluginData
LayerEntry = plugin_data_pb2.LayerEntry

# Entries of the per-step activation statistics vector, in stored order (JSON/camelCase names).
STAT_FIELDS: tuple[str, ...] = (
    "mean",
    "std",
    "min",
    "max",
    "zeroFraction",
    "nanCount",
    "infCount",
    "numel",
)

# Entries of the per-step gradient statistics vector of a layer, in stored order. "grad*": the gradients
# of the layer's own parameters (all together, as the optimizer sees them after the backward); "weight*"
# and "updateRatio": its parameters and the step's update ||w_after - w_before|| / ||w_before||;
# "actGrad*": the gradient of the loss with respect to the layer's output in the recorded forward (its
# norm only: one fast pass inside the user's backward). Norms, mean |g| and max |g| are over the finite
# elements; NaN and Inf are counted.
GRAD_FIELDS: tuple[str, ...] = (
    "gradNorm",
    "gradMeanAbs",
    "gradMaxAbs",
    "gradNanCount",
    "gradInfCount",
    "gradNumel",
    "weightNorm",
    "updateRatio",
    "actGradNorm",
    "actGradNanCount",
    "actGradInfCount",
    "actGradNumel",
)

# Entries of the per-step gradient noise vector of a layer (and of the whole model) in a distributed job,
# in stored order: the unbiased estimates of |G|^2 and tr(Σ) (McCandlish et al. 2018, appendix A.1), their
# ratio B_simple at this step alone (noisy: the tab shows the ratio of their moving averages), the mean over
# the ranks of the squared norm of each rank's own gradient (batch batchSmall), the squared norm of their
# average (batch batchBig), and this rank's own squared norm. Batches are samples per optimizer step.
NOISE_FIELDS: tuple[str, ...] = (
    "gradSq",
    "traceSigma",
    "noiseScale",
    "smallBatchGradSq",
    "bigBatchGradSq",
    "rankGradSq",
    "batchSmall",
    "batchBig",
)

# Entries of a stored activation histogram before its per-bin counts (then `bins` counts): the fixed
# range [low, high] (equal-width bins) and the finite values below / above it.
HISTOGRAM_HEAD: tuple[str, ...] = ("low", "high", "underflow", "overflow")

# Entries of the per-step unit statistics vector of a layer: the fraction of channels that never
# activated (max <= 0 on the recorded batch), the fraction saturated at a bound of a bounded module
# (NaN for unbounded ones), and the number of channels (capture/units.py has the rules).
UNIT_FIELDS: tuple[str, ...] = ("deadFraction", "saturatedFraction", "channels")

# Massive activations (transformer health, capture/health.py): per token layer (output (N, L, C)) and
# statistics step, with peak_c = max |a| of channel c over the batch and tokens and m = the median of
# the peaks: how many channels have peak_c > massive_ratio x m (the ratio in the table's metadata), m,
# and the MASSIVE_TOP largest ratios peak_c / m (descending) with their channel indices c. NaN entries:
# not a token layer, or fewer channels than MASSIVE_TOP.
MASSIVE_TOP = 8
MASSIVE_FIELDS: tuple[str, ...] = (
    "massiveCount",
    "medianPeak",
    *(f"topIndex{k}" for k in range(MASSIVE_TOP)),
    *(f"topRatio{k}" for k in range(MASSIVE_TOP)),
)
DEFAULT_MASSIVE_RATIO = 100.0  # Sun et al. 2024, "Massive Activations in Large Language Models"

# Derived on reading from the activation statistics (no stored field): max |a| / RMS, with
# max |a| = max(|min|, |max|) and RMS = sqrt(mean^2 + std^2), over the finite elements.
PEAK_TO_RMS = "peakToRms"

# Entries of the vectors above that count things: stored as float32 only while float32 holds them exactly
# (below 2^24), see summary.compact_floats.
COUNT_FIELDS: frozenset[str] = frozenset(
    {
        "nanCount",
        "infCount",
        "numel",
        "gradNanCount",
        "gradInfCount",
        "gradNumel",
        "actGradNanCount",
        "actGradInfCount",
        "actGradNumel",
        "channels",
        "class",
        "massiveCount",
        *(f"topIndex{k}" for k in range(MASSIVE_TOP)),
    }
)

_TAG_PREFIX = {
    RecordKind.ACTIVATION_STATS: "insight/activation_stats/",
    RecordKind.GRADIENT_STATS: "insight/gradient_stats/",
    RecordKind.PROBE_IMAGES: "insight/probe_images/",
    RecordKind.PROBE_PREDICTIONS: "insight/probe_predictions/",
    RecordKind.CAM: "insight/cam/",
    RecordKind.SALIENCY: "insight/saliency/",
    RecordKind.ACTIVATION_HISTOGRAM: "insight/activation_histogram/",
    RecordKind.UNIT_STATS: "insight/unit_stats/",
    RecordKind.MODEL_TABLE: "insight/model_table",
    RecordKind.FEATURE_MAPS: "insight/feature_maps/",
    RecordKind.FEATURE_MAP_SCALES: "insight/feature_map_scales/",
    RecordKind.FILTERS: "insight/filters/",
    RecordKind.FILTER_SCALES: "insight/filter_scales/",
    RecordKind.ACTIVATION_STATS_TABLE: "insight/layer_table/activation_stats/",
    RecordKind.GRADIENT_STATS_TABLE: "insight/layer_table/gradient_stats/",
    RecordKind.UNIT_STATS_TABLE: "insight/layer_table/unit_stats/",
    RecordKind.ACTIVATION_HISTOGRAM_TABLE: "insight/layer_table/activation_histogram/",
    RecordKind.FEATURE_VIS: "insight/feature_vis/",
    RecordKind.PARAM_HISTOGRAM: "insight/layer_table/param_histogram/",
    RecordKind.GRAD_HISTOGRAM: "insight/layer_table/grad_histogram/",
    RecordKind.GRADIENT_NOISE_TABLE: "insight/layer_table/gradient_noise/",
    RecordKind.GRADIENT_NOISE: "insight/gradient_noise/",
    RecordKind.MASSIVE_ACTIVATIONS: "insight/massive_activations/",
    RecordKind.MASSIVE_ACTIVATIONS_TABLE: "insight/layer_table/massive_activations/",
    RecordKind.PROBE_TOKENS: "insight/probe_tokens/",
    RecordKind.TOKEN_SALIENCY: "insight/token_saliency/",
    RecordKind.ATTENTION_MAPS: "insight/attention_maps/",
    RecordKind.ATTENTION_STATS: "insight/attention_stats/",
}
# ATTENTION_MAPS per-query rows (same kind, `query_rows` set in the metadata).
ATTENTION_ROWS_PREFIX = "insight/attention_rows/"
# Rows of an ATTENTION_STATS record, per layer: [2, heads].
ATTENTION_STAT_FIELDS: tuple[str, ...] = ("entropy", "maxLogit")
# v1 per-layer kind -> the v2 kind holding every layer's rows of one step (schema v2, summary.py).
TABLE_KINDS = {
    RecordKind.ACTIVATION_STATS: RecordKind.ACTIVATION_STATS_TABLE,
    RecordKind.GRADIENT_STATS: RecordKind.GRADIENT_STATS_TABLE,
    RecordKind.UNIT_STATS: RecordKind.UNIT_STATS_TABLE,
    RecordKind.ACTIVATION_HISTOGRAM: RecordKind.ACTIVATION_HISTOGRAM_TABLE,
    RecordKind.GRADIENT_NOISE: RecordKind.GRADIENT_NOISE_TABLE,  # table rows only (distributed jobs)
    RecordKind.MASSIVE_ACTIVATIONS: RecordKind.MASSIVE_ACTIVATIONS_TABLE,  # written as tables only
}
LAYER_KINDS = {table: layer for layer, table in TABLE_KINDS.items()}
# Feature maps and filters: the blob kind and the kind of the scales tensor that goes with it.
SCALE_KINDS = {
    RecordKind.FEATURE_MAPS: RecordKind.FEATURE_MAP_SCALES,
    RecordKind.FILTERS: RecordKind.FILTER_SCALES,
}
MAP_KINDS = {"cam": RecordKind.CAM, "saliency": RecordKind.SALIENCY}

logger = logging.getLogger(__name__)


DEFAULT_PROBE = "probe"
_RANGES_PREFIX = "insight/map_ranges/"


@functools.lru_cache(maxsize=8192)  # called per layer and record; protobuf enum lookups are slow
def tag_for(kind: int, layer: str = "", method: str = "", probe: str = DEFAULT_PROBE) -> str:
    """The tag of one time series: per layer (activation and gradient stats, histograms, units,
    filters), per probe (images, predictions), per probe and method (saliency), per probe and layer
    (feature maps), per probe, method and layer (CAMs), one per run (the model table)."""
    prefix = _TAG_PREFIX[kind]
    if kind == RecordKind.CAM:
        return f"{prefix}{probe}/{method}/{layer}"
    if kind in (RecordKind.SALIENCY, RecordKind.TOKEN_SALIENCY):
        return f"{prefix}{probe}/{method}"
    if kind in (RecordKind.FEATURE_MAPS, RecordKind.FEATURE_MAP_SCALES, RecordKind.ATTENTION_MAPS):
        return f"{prefix}{probe}/{layer}"
    if kind == RecordKind.ATTENTION_STATS:
        return f"{prefix}{probe}/{layer}"  # layer: the key of the module list (layer_set_key)
    if kind in (RecordKind.PROBE_IMAGES, RecordKind.PROBE_PREDICTIONS, RecordKind.PROBE_TOKENS):
        return prefix + probe
    if kind == RecordKind.MODEL_TABLE:
        return prefix
    return prefix + layer


def layer_set_key(layers: Sequence[tuple[str, str, int, bool]]) -> str:
    """The tag suffix of a layer table: 12 hex digits of a hash of its layers' (name, module type, order,
    bounded), in row order. Constant while the watched layers are (so a run has one tag per table kind),
    new when they change (a new watch): each tag's metadata then lists exactly its rows' layers. Shapes
    are left out: a layer's shape is the one seen at the tag's first record, as in v1."""
    digest = hashlib.sha1(repr([tuple(layer) for layer in layers]).encode("utf-8"))
    return digest.hexdigest()[:12]


def create_summary_metadata(
    kind: int,
    layer: str,
    *,
    module_type: str = "",
    shape: Sequence[int] = (),
    order: int = 0,
    fields: Sequence[str] = (),
    data_class: int = summary_pb2.DATA_CLASS_TENSOR,
    **extra: object,
) -> summary_pb2.SummaryMetadata:
    """Wrap an InsightPluginData in a SummaryMetadata, with data_class set (unset means invisible).

    `extra` sets further InsightPluginData fields (method, num_images, labels, ...).
    """
    content = PluginData(
        version=PROTO_VERSION,
        kind=kind,
        layer=layer,
        module_type=module_type,
        shape=list(shape),
        order=order,
        fields=list(fields),
        **extra,
    )
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=content.SerializeToString()
        ),
        data_class=data_class,
    )


class _NewerVersionWarning:
    """Warns once per process that some records come from a newer tb-plugin-insight."""

    warned = False

    @classmethod
    def warn(cls, version: int) -> None:
        if not cls.warned:
            cls.warned = True
            logger.warning(
                "Skipping Insight records written with schema version %d (this reader knows up to %d):"
                " upgrade tb-plugin-insight to see them.",
                version,
                PROTO_VERSION,
            )


def parse_plugin_metadata(content: bytes) -> PluginData | None:
    """Decode `plugin_data.content`; None for records that are damaged or from a newer schema."""
    if not isinstance(content, bytes):
        raise TypeError(f"plugin content must be bytes, got {type(content).__name__}")
    try:
        data = PluginData.FromString(content)
    except Exception:  # noqa: BLE001 - protobuf raises DecodeError or RuntimeWarning subclasses
        logger.warning("Skipping an Insight record whose metadata cannot be decoded.")
        return None
    if data.version > PROTO_VERSION:
        _NewerVersionWarning.warn(data.version)
        return None
    return data


def ranges_tag_for(kind: int, layer: str, method: str, probe: str = DEFAULT_PROBE) -> str:
    """Tag of the raw per-image ranges that go with a map series (same kind, data class TENSOR)."""
    return _RANGES_PREFIX + tag_for(kind, layer, method, probe)[len("insight/") :]


def attention_rows_tag(layer: str, probe: str = DEFAULT_PROBE) -> str:
    """Tag of an attention module's per-query rows (ATTENTION_MAPS with `query_rows`)."""
    return f"{ATTENTION_ROWS_PREFIX}{probe}/{layer}"
