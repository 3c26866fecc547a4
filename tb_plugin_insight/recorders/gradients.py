"""Gradient flow from the user's own backward: per watched layer the parameter-gradient and
output-gradient statistics and the update ratio at the recorded steps (capture/grads.py reads them)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from tb_plugin_insight import records
from tb_plugin_insight.capture import grads as grads_mod
from tb_plugin_insight.options import Gradients
from tb_plugin_insight.recorders.activations import stats_callback
from tb_plugin_insight.recorders.base import Recorder, TrainingNeeds, WatchContext


class GradientsRecorder(Recorder):
    """`watch(grads=True)` (the default) or `gradients=Gradients(...)`."""

    name = "gradients"
    options_keyword = "gradients"
    options_group = Gradients

    def __init__(self, ctx: WatchContext, options: grads_mod.GradientOptions) -> None:
        super().__init__()
        self.options = options
        self.on_record = stats_callback(ctx.sink, ctx.model, records.gradient_stats)
        self.on_noise = stats_callback(ctx.sink, ctx.model, records.gradient_noise)

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        group: Gradients = ctx.options["gradients"]
        if not group.enabled:
            return None
        options = grads_mod.check_options(group.accumulation, group.scaler, group.update_ratio)
        return cls(ctx, dataclasses.replace(options, across_ranks=group.across_ranks))

    def training_needs(self, needs: TrainingNeeds) -> None:
        needs.gradients = self.options
        needs.on_gradient_record = self.on_record
        needs.on_gradient_noise = self.on_noise
