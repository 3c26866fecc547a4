"""Forward hooks that turn a watched model's training forwards into per-step activation records.

One pre-hook and one post-hook on the model itself delimit a forward pass and count steps (or, with manual
steps, `begin_step`/`end_step` called by a trainer integration delimit a training step, whatever forwards
run inside it); one forward hook per watched layer reduces that layer's output on its device. At the end
of a recorded forward the per-layer vectors are stacked and a copy to the host is started (one transfer),
then handed to `on_record`, which resolves it off the training thread. Structured outputs give one series
per tensor, and repeated calls of a layer add up (see outputs.py).
Hooks only read detached outputs: they never change what the model computes. With gradient options, the
same hooks drive a `grads.GradientRecorder` that watches the user's backward of the recorded steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, Protocol

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from tb_plugin_insight.capture import outputs, reduce, transfer
from tb_plugin_insight.capture.grads import GradientOptions, GradientRecorder
from tb_plugin_insight.capture.model_table import ModelTableRecorder
from tb_plugin_insight.capture.portable import portable

logger = logging.getLogger(__name__)

Mode = Literal["train", "eval", "all"]
MODES: tuple[str, ...] = ("train", "eval", "all")

# How many Insight probe passes (CAMs, saliency) are running in this thread; hooks ignore their forwards.
_insight_passes = threading.local()


@dataclasses.dataclass
class LayerInfo:
    """What the tab shows about a watched layer besides its numbers."""

    order: int
    name: str
    module_type: str
    shape: tuple[int, ...] = ()


# The row of the whole model in per-layer records that have one (the gradient noise scale).
MODEL_ROW = LayerInfo(-1, "(model)", "Model")

# (step, layers, their rows): the rows may still be on their way to the host (transfer.host_numpy).
RecordCallback = Callable[[int, Sequence[LayerInfo], transfer.HostArray], None]
StepStartCallback = Callable[[int, nn.Module], None]
# Extra per-layer reductions (capture/histogram.py, capture/units.py): step, layers, {name: rows}.
# step, layers, their rows (all reducers' numbers side by side, still on their way to the host), and
# the layout of a row: (reducer name, width) in order.
ExtrasCallback = Callable[[int, Sequence[LayerInfo], transfer.HostArray, tuple[tuple[str, int], ...]], None]
ModelTableCallback = Callable[[int, nn.Module, list[dict[str, Any]]], None]


class LayerReducer(Protocol):
    """A further reduction of a watched output, run in the same hook after the statistics.

    Returns `width` numbers (a 1-D tensor with the statistics' dtype, on the output's device); they
    travel to the host in the statistics' single transfer. It runs at the recorded steps divisible by
    its `every` (a multiple of the recorder's).
    """

    name: str
    width: int
    every: int

    def __call__(
        self, index: int, module: nn.Module, x: torch.Tensor, stats: torch.Tensor
    ) -> torch.Tensor: ...


class ActivationRecorder:
    """Hooks on one model; records every `every`-th counted forward pass.

    A forward pass counts when the model's mode matches `mode` ("train": model.training is True).
    `step` is the step the next counted forward gets; it starts at 0 and can be set. With `step_source`
    each counted forward is numbered `step_source()` instead; with `manual=True` the model's own forward
    is not hooked and `begin_step`/`end_step` delimit each step. In both, a step number seen again (the
    micro-batches of one optimizer step) is recorded once, at its first forward.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[tuple[int, str, nn.Module]],
        *,
        every: int,
        mode: Mode,
        on_record: RecordCallback,
        on_step_start: StepStartCallback | None = None,
        gradients: GradientOptions | None = None,
        on_gradient_record: RecordCallback | None = None,
        on_gradient_noise: RecordCallback | None = None,
        reducers: Sequence[LayerReducer] = (),
        on_extras: ExtrasCallback | None = None,
        on_model_table: ModelTableCallback | None = None,
        compiled: bool = False,
        step_source: Callable[[], int] | None = None,
        manual: bool = False,
    ) -> None:
        self.every = every
        self.mode = mode
        self.step = 0
        self.manual = manual
        self._step_source = step_source
        self._last_started: int | None = None  # numbered steps: the last one started (recorded once)
        self._step_open = False  # manual steps: between begin_step and end_step
        self.forwards_seen = 0  # forwards of the model (any mode); manual steps count as forwards
        self.forwards_counted = 0  # of those, the counted ones
        self.layers = [LayerInfo(order, name, type(mod).__name__) for order, name, mod in layers]
        self._on_record = on_record
        self._on_step_start = on_step_start
        self._recording = False
        self._grad_recording = False
        self.gradients: GradientRecorder | None = None
        if gradients is not None and on_gradient_record is not None:
            on_grad = on_gradient_record
            self.gradients = GradientRecorder(
                model,
                layers,
                gradients,
                lambda step, indices, array: on_grad(step, [self.layers[i] for i in indices], array),
                None if on_gradient_noise is None else self._noise_callback(on_gradient_noise),
            )
        # (layer index, output suffix) -> stats vector; suffix "" is the primary output (outputs.py)
        self._pending: dict[tuple[int, str], torch.Tensor] = {}
        self._pending_extras: dict[int, torch.Tensor] = {}  # layer index -> reducers' numbers
        self._extra_series: dict[tuple[int, str], LayerInfo] = {}
        self._failed: set[int] = set()
        self._reducers = list(reducers) if on_extras is not None else []
        self._step_reducers: list[LayerReducer] = []  # the reducers due at the forward being recorded
        self._on_extras = on_extras
        self._modules = [module for _, _, module in layers]
        self._on_model_table = on_model_table
        self._table: ModelTableRecorder | None = None  # hooks on every module during one forward
        self._handles: list[RemovableHandle] = []
        if not manual:
            self._handles += [
                model.register_forward_pre_hook(portable(self._before_forward, eager=compiled)),
                model.register_forward_hook(portable(self._after_forward, eager=compiled), always_call=True),
            ]
        for index, (_, _, module) in enumerate(layers):
            self._handles.append(
                module.register_forward_hook(portable(self._layer_hook(index), eager=compiled))
            )

    def _noise_callback(self, on_noise: RecordCallback) -> Callable[[int, Sequence[int], Any], None]:
        """The gradient noise rows of a distributed job: layer index -1 is the whole model (MODEL_ROW)."""
        return lambda step, indices, array: on_noise(
            step, [MODEL_ROW if i < 0 else self.layers[i] for i in indices], array
        )

    def remove(self) -> None:
        """Remove every hook this recorder registered (idempotent); a finished gradient record is written."""
        if self.gradients is not None:
            self.gradients.remove()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._table is not None:
            self._table.remove()
            self._table = None
        self._pending.clear()
        self._pending_extras.clear()
        self._recording = False
        self._grad_recording = False
        self._step_open = False

    @property
    def active(self) -> bool:
        return bool(self._handles)

    @property
    def _numbered(self) -> bool:
        """Steps numbered from outside (a step source or manual steps): one may repeat."""
        return self.manual or self._step_source is not None

    # --- manual steps (trainer integrations) ------------------------------------------------------------
    def begin_step(self, model: nn.Module, step: int) -> None:
        """A training step numbered `step` starts (before its first forward): the layers' forwards until
        `end_step` are its forwards. A step already begun (another micro-batch of it) records nothing."""
        if not self.manual or not self.active:
            return
        if self._step_open:
            self.end_step(model)
        self.step = step
        self.forwards_seen += 1
        self.forwards_counted += 1
        self._start(model, counts=True)
        self._step_open = True

    def end_step(self, model: nn.Module) -> None:
        """The step's forward (and backward) has run: hand its statistics on (idempotent)."""
        if not self._step_open:
            return
        self._step_open = False
        if self._table is not None:
            self._finish_table(self.step, model, None, completed=True)
        self._finish(completed=True, arm_gradients=False)

    def read_gradients(self) -> None:
        """Manual steps: read the parameters' gradients now (accumulated, unscaled, before the optimizer
        step) for the step being recorded; see `grads.GradientRecorder.read_now`."""
        if self.manual and self.gradients is not None:
            self.gradients.read_now()

    def _counts(self, model: nn.Module) -> bool:
        return self.mode == "all" or model.training == (self.mode == "train")

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Ignore forwards run by Insight itself (probe passes) while inside: in every recorder of this
        thread, so one writer's probe pass is never counted or recorded by another writer's watch."""
        _insight_passes.depth = getattr(_insight_passes, "depth", 0) + 1
        try:
            yield
        finally:
            _insight_passes.depth -= 1

    @property
    def _suspended(self) -> bool:
        return getattr(_insight_passes, "depth", 0) > 0

    def _before_forward(self, model: nn.Module, args: Any) -> None:
        if self._suspended:
            return
        self.forwards_seen += 1
        counts = self._counts(model)
        if counts and self._step_source is not None:
            self.step = self._sourced_step()
        if counts and self.gradients is not None:
            self.gradients.count_samples(args)
        self._start(model, counts, args)

    def _sourced_step(self) -> int:
        """`step_source()` as a step number; on a failure the own counter (logged once)."""
        try:
            value = self._step_source() if self._step_source is not None else self.step
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise ValueError(f"the step source returned {value!r}, not a non-negative int")
            return int(value)
        except Exception:  # noqa: BLE001 - recording must never break the user's training
            logger.exception("Insight's step source failed; counting forwards from here instead")
            self._step_source = None
            return self.step

    def _start(self, model: nn.Module, counts: bool, args: Any = ()) -> None:
        """A forward (or a manual step) starts: the probe pass, and what this step records. `args`: the
        forward's positional inputs (the model table measures the input's size; none for manual steps)."""
        fresh = counts and not (self._numbered and self.step == self._last_started)
        self._pending.clear()
        self._pending_extras.clear()
        if self.gradients is not None and (fresh or not counts):
            self.gradients.before_forward()  # the previous step's update has happened: write its record
        if fresh and self._on_step_start is not None:
            with self.suspended():
                self._on_step_start(self.step, model)  # probe passes see the weights this step uses
        if fresh and self._numbered:
            self._last_started = self.step
        self._recording = fresh and self.step % self.every == 0
        self._step_reducers = [r for r in self._reducers if self._recording and self.step % r.every == 0]
        self._grad_recording = (
            self._recording and self.gradients is not None and self.gradients.begin(self.step)
        )
        if self._recording and self._on_model_table is not None and self._table is None:
            watched = {info.name for info in self.layers}
            self._table = ModelTableRecorder(model, watched, args)  # removed at the end of this forward

    def _layer_hook(self, index: int) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._suspended or not self._recording or index in self._failed:
                return
            try:
                for suffix, tensor in outputs.named_tensors(output):
                    key = (index, suffix)
                    stats = reduce.activation_stats(outputs.describable(tensor))
                    earlier = self._pending.get(key)  # a module called again: its calls add up
                    self._pending[key] = stats if earlier is None else outputs.merge_stats(earlier, stats)
                    info = self._series_info(index, suffix)
                    if not info.shape:
                        info.shape = tuple(tensor.shape)
                    if suffix:
                        continue
                    if self._step_reducers and index not in self._pending_extras:
                        # histograms and unit fractions describe the primary output's first call
                        self._pending_extras[index] = torch.cat(
                            [
                                r(index, self._modules[index], outputs.describable(tensor), stats)
                                for r in self._step_reducers
                            ]
                        )
                    if self._grad_recording and self.gradients is not None:
                        self.gradients.watch_output(index, tensor)
            except Exception:  # noqa: BLE001 - recording must never break the user's training
                self._failed.add(index)
                logger.exception("Insight stopped recording layer %r", self.layers[index].name)

        return hook

    def _series_info(self, index: int, suffix: str) -> LayerInfo:
        """The LayerInfo of a layer's primary output, or of a further tensor of it (named layer:path)."""
        if not suffix:
            return self.layers[index]
        info = self._extra_series.get((index, suffix))
        if info is None:
            layer = self.layers[index]
            info = LayerInfo(layer.order, layer.name + suffix, layer.module_type)
            self._extra_series[(index, suffix)] = info
        return info

    def _finish_table(self, step: int, model: nn.Module, output: Any, completed: bool) -> None:
        """Remove the model-table hooks; hand the rows on (once per watch) unless the forward failed."""
        table, self._table = self._table, None
        if table is None:
            return
        rows = table.finish(output)
        if not completed or self._on_model_table is None:
            return  # the forward raised: try again at the next recorded forward
        callback, self._on_model_table = self._on_model_table, None
        try:
            callback(step, model, rows)
        except Exception:  # noqa: BLE001 - recording must never break the user's training
            logger.exception("Insight could not record the model table")

    def _after_forward(self, model: nn.Module, args: Any, output: Any) -> None:
        if self._suspended:
            return
        if self._table is not None:  # before the mode check: the hooks never outlive this forward
            self._finish_table(self.step, model, output, completed=output is not None)
        if not self._counts(model):
            return
        self.forwards_counted += 1
        self._finish(completed=output is not None, arm_gradients=True)

    def _finish(self, completed: bool, arm_gradients: bool) -> None:
        """A counted forward (or manual step) ended: hand its statistics on, in one host transfer."""
        step, recording = self.step, self._recording
        self.step += 1
        self._recording = self._grad_recording = False
        if self.gradients is not None and arm_gradients:
            self.gradients.after_forward(step, completed=completed)
        if not recording or not self._pending:
            return
        keys = sorted(self._pending, key=lambda key: (key[0], key[1] != "", key[1]))
        device = self._pending[keys[0]].device
        stacked = transfer.start_host_copy(torch.stack([self._pending[key].to(device) for key in keys]))
        self._pending.clear()
        self._on_record(step, [self._series_info(*key) for key in keys], stacked)
        if self._on_extras is not None and self._pending_extras:
            indices = sorted(self._pending_extras)
            extras = torch.stack([self._pending_extras[i].to(device) for i in indices])
            self._pending_extras.clear()
            layout = tuple((reducer.name, reducer.width) for reducer in self._step_reducers)
            self._on_extras(step, [self.layers[i] for i in indices], transfer.start_host_copy(extras), layout)
