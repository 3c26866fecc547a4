"""The capabilities of a watch, one `Recorder` each (base.py says what a recorder is).

`REGISTRY` is the list `WatchSession` builds from, in this order: a recorder may read what one before it
decided (saliency's guided Grad-CAM uses the CAM layer), the per-layer reducers' numbers are stored in
this order, and the probe-side recorders write their records of a step in this order.
Adding a capability: one module with a Recorder subclass, one entry here.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from tb_plugin_insight import options
from tb_plugin_insight.recorders.activations import ActivationStatsRecorder
from tb_plugin_insight.recorders.attention import AttentionRecorder
from tb_plugin_insight.recorders.base import Recorder, RecordSink, TrainingNeeds, WatchContext
from tb_plugin_insight.recorders.cams import CamRecorder
from tb_plugin_insight.recorders.feature_maps import FeatureMapsRecorder
from tb_plugin_insight.recorders.featurevis import FeatureVisRecorder
from tb_plugin_insight.recorders.gradients import GradientsRecorder
from tb_plugin_insight.recorders.health import HealthRecorder
from tb_plugin_insight.recorders.histograms import HistogramRecorder
from tb_plugin_insight.recorders.model_table import ModelTableRecorder
from tb_plugin_insight.recorders.param_histograms import ParamHistogramRecorder
from tb_plugin_insight.recorders.saliency import SaliencyRecorder
from tb_plugin_insight.recorders.token_saliency import TokenSaliencyRecorder
from tb_plugin_insight.recorders.units import UnitsRecorder

REGISTRY: tuple[type[Recorder], ...] = (
    ActivationStatsRecorder,
    UnitsRecorder,
    HistogramRecorder,
    HealthRecorder,
    GradientsRecorder,
    ParamHistogramRecorder,
    ModelTableRecorder,
    FeatureMapsRecorder,
    FeatureVisRecorder,
    CamRecorder,
    SaliencyRecorder,
    TokenSaliencyRecorder,
    AttentionRecorder,
)

__all__ = ["REGISTRY", "Recorder", "RecordSink", "TrainingNeeds", "WatchContext", "resolve_options"]


def resolve_options(keywords: Mapping[str, Any]) -> dict[str, Any]:
    """watch()'s option keywords -> each recorder's resolved options: the option groups by keyword
    (flat keywords merged in, see `options.resolve`) and the flat flags.

    Raises:
        TypeError: a keyword no recorder declares (naming the closest ones), or a group of the wrong type.
        ValueError: a flat keyword and its grouped twin that disagree, or a bad value.
    """
    groups: dict[str, type[options.OptionGroup]] = {
        r.options_keyword: r.options_group for r in REGISTRY if r.options_keyword and r.options_group
    }
    flat_names = {flat for group in groups.values() for flat in group.FLAT.values()}
    flags = {name: default for r in REGISTRY for name, default in r.flags.items()}
    known = set(groups) | flat_names | set(flags)
    for name in keywords:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise TypeError(f"watch() got an unexpected keyword argument {name!r}{hint}")
    grouped: dict[str, Any] = {}
    flat: dict[str, Any] = {}
    for name, value in keywords.items():
        if name in groups and (name not in flat_names or isinstance(value, groups[name])):
            grouped[name] = value
        elif name in flat_names:
            flat[name] = value
    resolved: dict[str, Any] = dict(options.resolve(flat, grouped, groups))
    resolved.update({name: keywords.get(name, default) for name, default in flags.items()})
    return resolved
