"""Feature maps of the probe (the most active channels, kept for the run) and the filters of the first
convolution every `maps_every` steps (capture/feature_maps.py, capture/filters.py)."""

from __future__ import annotations

import logging
from typing import Optional

from torch import nn

from tb_plugin_insight import records
from tb_plugin_insight.capture import feature_maps as fmaps
from tb_plugin_insight.capture import filters as filters_mod
from tb_plugin_insight.capture import layers as layer_selection
from tb_plugin_insight.capture import maps
from tb_plugin_insight.capture.probe_pass import SharedMaps
from tb_plugin_insight.options import FeatureMaps
from tb_plugin_insight.recorders.base import Recorder, RecordSink, WatchContext, outcome

logger = logging.getLogger(__name__)


class FeatureMapsRecorder(Recorder):
    """`watch(probe=..., maps_every=...)` or `feature_maps=FeatureMaps(...)`; filters also without a probe
    when `filters_layers` is given."""

    name = "feature_maps"
    options_keyword = "feature_maps"
    options_group = FeatureMaps
    probe_role = "feature_maps"

    def __init__(self, sink: RecordSink, recorder: fmaps.FeatureMapRecorder) -> None:
        super().__init__()
        self.sink = sink
        self.maps = recorder
        self.skipped: set[str] = set()  # filter layers whose sharding hides them from this rank (warned)

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        options: FeatureMaps = ctx.options["feature_maps"]
        chosen = (
            ctx.layers if options.layers is None else layer_selection.select_layers(ctx.model, options.layers)
        )
        plan = fmaps.plan_feature_maps(
            ctx.model,
            ctx.probe,
            every=options.every,
            k=options.k,
            layers=[(name, module) for _, name, module in chosen],
            channels=options.channels,
            depth=options.depth,
            filter_layers=options.filters_layers,
            device=maps.model_device(ctx.model),
            stage_ends_only=options.layers is None and not ctx.layers_given,
            max_side=options.max_side,
            bits=options.bits,
        )
        return cls(ctx.sink, fmaps.FeatureMapRecorder(plan)) if plan else None

    def due(self, step: int) -> bool:
        return not self.failed and step % self.maps.plan.every == 0

    def probe_request(self) -> Optional[fmaps.FeatureMapRecorder]:
        """The recorder whose hooks take the maps in the shared forward (None: filters only)."""
        return self.maps if self.maps.plan.views and self.sink.probe() is not None else None

    def _filters(self, modules: dict[str, nn.Module]) -> dict[str, filters_mod.FilterRecord]:
        """Each planned layer's tiles; a layer whose sharded weight this rank cannot draw is skipped, with
        one warning naming it."""
        out = {}
        for name in self.maps.plan.filter_layers:
            if name in self.skipped:
                continue
            try:
                out[name] = filters_mod.filter_record(modules[name])
            except filters_mod.ShardedFilters as error:
                self.skipped.add(name)
                logger.warning("Insight: no filter tiles for layer %r on this rank: %s", name, error)
        return out

    def record_probe(self, step: int, model: nn.Module, shared: SharedMaps) -> None:
        try:
            feature_maps: dict[str, fmaps.FeatureMapRecord] = {}
            if self.probe_request() is not None:
                feature_maps = outcome(shared.feature_maps) or {}
            modules = dict(model.named_modules())
            weights = self._filters(modules)
            if not feature_maps and not weights:
                return
            orders = {name: i for i, name in enumerate(modules)}
            probe = self.sink.probe()
            store_images = bool(feature_maps) and probe is not None and self.sink.images_changed(probe)
            self.sink.enqueue(
                records.feature_maps, probe, feature_maps, weights, orders, store_images, step=step
            )
        except Exception:  # noqa: BLE001 - recording must never break the user's training
            self.stop("Insight stopped recording feature maps and filters")
