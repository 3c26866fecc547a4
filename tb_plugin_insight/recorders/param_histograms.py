"""Weight and gradient histograms of every watched layer's parameter tensors every `histogram_every`
steps, taken on the device in gradient flow's parameter hooks (capture/grads.py) with per-step edges
(capture/histogram.py, symmetric_histogram), one host transfer per step for all parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Optional

from tb_plugin_insight import records
from tb_plugin_insight.capture import grads as grads_mod
from tb_plugin_insight.capture import histogram as histogram_mod
from tb_plugin_insight.capture.transfer import HostArray
from tb_plugin_insight.options import Gradients, Histograms
from tb_plugin_insight.recorders.base import Recorder, RecordSink, TrainingNeeds, WatchContext


class ParamHistogramRecorder(Recorder):
    """On with histograms, `Histograms(params=True)` (the default) and gradients; options of both groups."""

    name = "param_histograms"

    def __init__(self, sink: RecordSink, bins: int, every: int) -> None:
        super().__init__()
        self.sink = sink
        self.bins = bins
        self.every = every

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        hist: Histograms = ctx.options["histograms"]
        grads: Gradients = ctx.options["gradients"]
        if not (hist.enabled and hist.params and grads.enabled):
            return None
        return cls(ctx.sink, hist.bins, histogram_mod.choose_every(hist.every, ctx.every))

    def training_needs(self, needs: TrainingNeeds) -> None:
        if needs.gradients is None:  # registered after GradientsRecorder: its options are set by now
            return
        spec = grads_mod.ParamHistogramOptions(self.bins, self.every, self._record)
        needs.gradients = dataclasses.replace(needs.gradients, param_histograms=spec)

    def _record(self, step: int, entries: Sequence[grads_mod.ParamEntry], hists: HostArray) -> None:
        self.sink.enqueue(records.param_histograms, tuple(entries), hists, self.bins, step=step)
