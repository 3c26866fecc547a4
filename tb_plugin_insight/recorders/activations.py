"""Activation statistics of every watched layer (mean, std, min, max, zeros, NaN/Inf) every `every` steps.

The statistics are reduced on the device in the layer hooks (capture/hooks.py, capture/reduce.py) and
reach the host in one transfer per step; this recorder turns them into one step's records.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, Callable, Optional

import torch
from torch import nn

from tb_plugin_insight import records
from tb_plugin_insight.capture import hooks
from tb_plugin_insight.capture.maps import model_dtype
from tb_plugin_insight.capture.transfer import HostArray
from tb_plugin_insight.recorders.base import Recorder, RecordSink, TrainingNeeds, WatchContext


def stats_callback(sink: RecordSink, model: nn.Module, build: Callable[..., Any]) -> hooks.RecordCallback:
    """The callback writing one step's statistics with `build`: float64 while the model computes in
    float64 (its statistics then carry digits float32 would drop), else as summary.compact_floats says.
    Checked at every record: a model may change dtype after watch()."""
    model_ref = weakref.ref(model)

    def record(step: int, infos: Sequence[hooks.LayerInfo], stats: HostArray) -> None:
        current = model_ref()
        float64 = current is not None and model_dtype(current) == torch.float64
        sink.enqueue(build, tuple(infos), stats, float64, step=step)

    return record


class ActivationStatsRecorder(Recorder):
    """Always on: the statistics are also what every other training-side record is aligned to."""

    name = "activation_stats"

    def __init__(self, sink: RecordSink, model: nn.Module) -> None:
        super().__init__()
        self.sink = sink
        self.model = weakref.ref(model)

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        return cls(ctx.sink, ctx.model)

    def training_needs(self, needs: TrainingNeeds) -> None:
        model = self.model()
        if model is not None:
            needs.on_record = stats_callback(self.sink, model, records.activation_stats)
