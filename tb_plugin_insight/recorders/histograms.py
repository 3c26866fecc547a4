"""Activation histograms of every watched layer every `histogram_every` steps, taken on the device in
the statistics' hooks with edges fixed at each layer's first histogram (capture/histogram.py)."""

from __future__ import annotations

from typing import Optional

from tb_plugin_insight.capture import histogram as histogram_mod
from tb_plugin_insight.options import Histograms
from tb_plugin_insight.recorders.base import Recorder, TrainingNeeds, WatchContext


class HistogramRecorder(Recorder):
    """`watch(histograms=True)` (the default) or `histograms=Histograms(bins=..., every=...)`."""

    name = "histograms"
    options_keyword = "histograms"
    options_group = Histograms

    def __init__(self, bins: int, every: int) -> None:
        super().__init__()
        self.bins = bins
        self.every = every

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        options: Histograms = ctx.options["histograms"]
        if not options.enabled:
            return None
        return cls(options.bins, histogram_mod.choose_every(options.every, ctx.every))

    def training_needs(self, needs: TrainingNeeds) -> None:
        needs.reducers.append(histogram_mod.HistogramReducer(self.bins, self.every))
        needs.histogram_bins = self.bins
