"""What a capability is: a `Recorder`, built once per `watch()`, that says what it needs and writes records.

A recorder owns its options (a group of `tb_plugin_insight.options`, or flat flags), its schedule (which
steps), what it needs from the training forward and backward (`TrainingNeeds`: a per-layer reducer, a
callback on the statistics, gradient options, the model table) and from the probe pass (`probe_role`),
and how its records are built (through `RecordSink.enqueue`, on the writer thread).

`WatchSession` (session.py) asks every recorder of the registry (recorders/__init__.py) in turn; adding a
capability is one module with a Recorder subclass and one registry entry.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Callable, ClassVar, Optional, Protocol

from torch import nn

from tb_plugin_insight.capture.grads import GradientOptions
from tb_plugin_insight.capture.hooks import LayerReducer, ModelTableCallback, RecordCallback
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.capture.probe_pass import SharedMaps
from tb_plugin_insight.capture.text_probe import TextProbe
from tb_plugin_insight.options import OptionGroup

logger = logging.getLogger(__name__)


class RecordSink(Protocol):
    """The writer, as recorders see it: a queue of record builders and the current probe."""

    def enqueue(self, build_fn: Callable[..., Any], *args: Any, step: int) -> None:
        """Run `build_fn(first_time, *args)` on the writer thread and write the Summary it returns."""

    def images_changed(self, probe: Probe) -> bool:
        """True once per run (and again when the probe's images change): store them with this record."""

    def probe(self) -> Optional[Probe]:
        """The probe batch now (set_probe may replace it after watch())."""

    def text_probe(self) -> Optional[TextProbe]:
        """The text probe now, if the probe is text (capture/text_probe.py); then `probe()` is None."""


@dataclasses.dataclass
class WatchContext:
    """What recorders are built from: one `watch()` call, its options checked and resolved."""

    model: nn.Module
    layers: Sequence[tuple[int, str, nn.Module]]  # the watched layers: (order, name, module)
    layers_given: bool  # watch(layers=...) was given (else the default selection)
    every: int
    options: dict[str, Any]  # option groups by keyword (options.resolve) and flat flags
    sink: RecordSink
    probe: Optional[Probe]
    cam_layer: Optional[str] = None  # set by the CAM recorder for the ones built after it
    text_probe: Optional[TextProbe] = None  # a text probe (then `probe` is None)


@dataclasses.dataclass
class TrainingNeeds:
    """What the recorders need from the hooks on the training forward and backward (capture/hooks.py)."""

    on_record: Optional[RecordCallback] = None
    gradients: Optional[GradientOptions] = None
    on_gradient_record: Optional[RecordCallback] = None
    on_gradient_noise: Optional[RecordCallback] = None  # distributed jobs: the gradient noise rows
    reducers: list[LayerReducer] = dataclasses.field(default_factory=list)
    bounded: dict[str, bool] = dataclasses.field(default_factory=dict)  # layer -> has output bounds
    histogram_bins: int = 0
    massive_ratio: float = 0.0  # the ratio massive activations are counted at (0: not recorded)
    on_model_table: Optional[ModelTableCallback] = None


class Recorder:
    """One capability of a watch. Subclasses override what they take part in."""

    name: ClassVar[str] = ""
    # For recorders working on the probe pass: which part of `SharedMaps` is theirs
    # ("feature_maps", "cams", "saliency" or "attention"); None for the training-side ones.
    probe_role: ClassVar[Optional[str]] = None
    # Its options in watch(): a group keyword and class (options.py), and flat flags with their defaults.
    options_keyword: ClassVar[Optional[str]] = None
    options_group: ClassVar[Optional[type[OptionGroup]]] = None
    flags: ClassVar[Mapping[str, Any]] = {}

    def __init__(self) -> None:
        self.failed = False

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        """The recorder for this watch, after checking its options (None: nothing to record)."""
        raise NotImplementedError

    def training_needs(self, needs: TrainingNeeds) -> None:
        """Add what this recorder needs from the training forward/backward to `needs`."""

    # --- probe pass -----------------------------------------------------------------------------------
    def due(self, step: int) -> bool:
        """Whether the probe pass before training step `step` should include this recorder."""
        return False

    def probe_request(self) -> Any:
        """What `capture.probe_pass.run_shared` needs from this recorder (its plan or recorder)."""
        return None

    def record_probe(self, step: int, model: nn.Module, shared: SharedMaps) -> None:
        """Write this recorder's part of a probe pass (each part a result, or the error that stopped it)."""

    def stop(self, message: str, *args: Any) -> None:
        """Stop this recorder after a failure, never training: log it once with the traceback."""
        self.failed = True
        logger.exception(message, *args)


def outcome(value: Any) -> Any:
    """A probe pass's result for one kind, or raise the exception that stopped that kind."""
    if isinstance(value, Exception):
        raise value
    return value
