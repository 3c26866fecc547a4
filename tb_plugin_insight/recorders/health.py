"""Transformer health at every statistics step: massive activations of the token layers
(capture/health.py), reduced in the statistics' hook and stored as one layer table per step.

The other health number, the peak-to-RMS ratio of every layer, costs nothing here: the plugin derives it
from the activation statistics (metadata.PEAK_TO_RMS).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

from tb_plugin_insight import metadata, validate
from tb_plugin_insight.capture.health import MassiveReducer
from tb_plugin_insight.capture.layout import Layouts
from tb_plugin_insight.recorders.base import Recorder, TrainingNeeds, WatchContext


def ratio_option(value: Any) -> float:
    """`watch(massive_ratio=...)`: a finite number above 1.

    Raises:
        ValueError: naming the option and its fix.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 1
    ):
        raise ValueError(
            f"massive_ratio must be a finite number above 1 (a channel counts as massive when its peak"
            f" exceeds massive_ratio x the median channel peak; default {metadata.DEFAULT_MASSIVE_RATIO:g}),"
            f" got {value!r}"
        )
    return float(value)


class HealthRecorder(Recorder):
    """`watch(health=True)` (the default): massive activations; `massive_ratio` sets the count's ratio."""

    name = "health"
    flags = {"health": True, "massive_ratio": metadata.DEFAULT_MASSIVE_RATIO}

    def __init__(self, ratio: float, layouts: Layouts) -> None:
        super().__init__()
        self.ratio = ratio
        self.layouts = layouts

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        ratio = ratio_option(ctx.options["massive_ratio"])
        if not validate.flag_option("health", ctx.options["health"]):
            return None
        return cls(ratio, Layouts(ctx.model, [module for _, _, module in ctx.layers]))

    def training_needs(self, needs: TrainingNeeds) -> None:
        needs.reducers.append(MassiveReducer(self.ratio, self.layouts))
        needs.massive_ratio = self.ratio
