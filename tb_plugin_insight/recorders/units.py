"""Dead and saturated units: per watched layer, the fraction of channels (the hidden units of token
layers) that never fire (or sit at a bound of a bounded activation) on the training batch of each
statistics step (capture/units.py, channels from capture/layout.py)."""

from __future__ import annotations

from typing import Optional

from tb_plugin_insight import validate
from tb_plugin_insight.capture import units as units_mod
from tb_plugin_insight.capture.layout import Layouts
from tb_plugin_insight.recorders.base import Recorder, TrainingNeeds, WatchContext


class UnitsRecorder(Recorder):
    """`watch(units=True)` (the default): a per-layer reducer in the statistics' hooks."""

    name = "units"
    flags = {"units": True}

    def __init__(self, bounded: dict[str, bool], layouts: Layouts) -> None:
        super().__init__()
        self.bounded = bounded
        self.layouts = layouts

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        if not validate.flag_option("units", ctx.options["units"]):
            return None
        bounded = {name: units_mod.output_bounds(module) is not None for _, name, module in ctx.layers}
        return cls(bounded, Layouts(ctx.model, [module for _, _, module in ctx.layers]))

    def training_needs(self, needs: TrainingNeeds) -> None:
        needs.reducers.append(units_mod.UnitReducer(self.layouts))
        needs.bounded.update(self.bounded)
