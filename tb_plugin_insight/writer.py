"""InsightWriter: a SummaryWriter that can also watch a model's layers while it trains."""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from tb_plugin_insight import crc, summary
from tb_plugin_insight.capture import hooks
from tb_plugin_insight.capture import layers as layer_selection
from tb_plugin_insight.capture.hooks import ActivationRecorder, LayerInfo, Mode
from tb_plugin_insight.capture.layers import LayerSelector


class WatchHandle:
    """What `InsightWriter.watch` returns: the watched layer names, the step counter, `remove()`."""

    def __init__(self, writer: InsightWriter, model: nn.Module, recorder: ActivationRecorder) -> None:
        self._writer = weakref.ref(writer)
        self._model = weakref.ref(model)
        self._recorder = recorder

    @property
    def layers(self) -> list[str]:
        """Qualified names of the watched layers, in model order."""
        return [info.name for info in self._recorder.layers]

    @property
    def every(self) -> int:
        return self._recorder.every

    @property
    def step(self) -> int:
        """The step the next counted forward pass will be recorded as."""
        return self._recorder.step

    @step.setter
    def step(self, value: int) -> None:
        self._recorder.step = _check_step(value)

    @property
    def active(self) -> bool:
        """False once the hooks are removed."""
        return self._recorder.active

    def remove(self) -> None:
        """Remove the hooks (same as `writer.unwatch(model)`)."""
        writer, model = self._writer(), self._model()
        if writer is not None and model is not None:
            writer.unwatch(model)
        else:
            self._recorder.remove()

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"<WatchHandle {state}, {len(self.layers)} layers, every={self.every}, step={self.step}>"


class InsightWriter(SummaryWriter):
    """`torch.utils.tensorboard.SummaryWriter` plus `watch(model)` for the Insight tab.

    The constructor and every native method (add_scalar, add_graph, ...) are SummaryWriter's, unchanged.

    Example:
        >>> writer = InsightWriter("runs/exp1")
        >>> writer.watch(model, every=10)
        >>> for step, (x, y) in enumerate(loader):
        ...     loss = criterion(model(x), y)   # every 10th training forward is recorded
        ...     writer.add_scalar("loss", loss.item(), step)
        >>> writer.close()
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        crc.install()
        self._recorders: dict[int, ActivationRecorder] = {}
        self._metadata_file_writer: object | None = None
        self._tags_with_metadata: set[str] = set()

    def watch(
        self,
        model: nn.Module,
        layers: LayerSelector = None,
        every: int = 10,
        *,
        mode: Mode = "train",
    ) -> WatchHandle:
        """Record activation statistics of `model`'s layers every `every` steps.

        Steps: Insight counts the model's forward passes in training mode (`model.train()`), from 0.
        In the usual loop (one training forward per step, `global_step` counting from 0) its steps are
        the `global_step`s you pass to `add_scalar`; eval passes in `model.eval()` are not counted.
        Set `writer.step = n` (or `handle.step = n`) to align it with any other counter.

        Args:
            model: the module to watch. Watching it again replaces the earlier watch.
            layers: None for modules with parameters plus activation modules; a list of qualified names
                (as in `model.named_modules()`); or a predicate `(name, module) -> bool`.
            every: record the steps divisible by `every` (1 records every step).
            mode: which forwards count as steps: "train" (default), "eval", or "all".

        Returns:
            A WatchHandle with the watched layer names, the step counter and `remove()`.

        Raises:
            ValueError: unknown layer names (with close matches), no layer selected, bad `every`/`mode`.
            TypeError: `model` is not an nn.Module or `layers` has the wrong type.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"watch() needs an nn.Module, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int (1 = every step), got {every!r}")
        if mode not in hooks.MODES:
            raise ValueError(f"mode must be one of {', '.join(hooks.MODES)}; got {mode!r}")
        chosen = layer_selection.select_layers(model, layers)
        self.unwatch(model)
        recorder = ActivationRecorder(
            model, chosen, every=every, mode=mode, on_record=self._record_activation_stats
        )
        self._recorders[id(model)] = recorder
        return WatchHandle(self, model, recorder)

    def unwatch(self, model: nn.Module | None = None) -> None:
        """Remove the hooks on `model` (on every watched model if None). Safe to call repeatedly."""
        keys = list(self._recorders) if model is None else [id(model)]
        for key in keys:
            recorder = self._recorders.pop(key, None)
            if recorder is not None:
                recorder.remove()

    @property
    def step(self) -> int | None:
        """The step of the next recorded forward of the most recently watched model (None if none)."""
        if not self._recorders:
            return None
        return next(reversed(self._recorders.values())).step

    @step.setter
    def step(self, value: int) -> None:
        value = _check_step(value)
        for recorder in self._recorders.values():
            recorder.step = value

    def close(self) -> None:
        """Remove every hook, then flush and close the event files."""
        self.unwatch()
        super().close()

    def _record_activation_stats(self, step: int, infos: Sequence[LayerInfo], stats: np.ndarray) -> None:
        values = []
        for info, row in zip(infos, stats):
            tag_first = self._first_time(f"act/{info.name}")
            values.append(
                summary.activation_stats_value(
                    info.name,
                    row,
                    module_type=info.module_type,
                    shape=info.shape,
                    order=info.order,
                    with_metadata=tag_first,
                )
            )
        self._write(summary.summary_of(values), step)

    def _first_time(self, key: str) -> bool:
        """True once per tag per event file: metadata is read from a tag's first value only."""
        file_writer = self._get_file_writer()
        if file_writer is not self._metadata_file_writer:
            self._metadata_file_writer = file_writer
            self._tags_with_metadata = set()
        if key in self._tags_with_metadata:
            return False
        self._tags_with_metadata.add(key)
        return True

    def _write(self, summary_proto: Any, step: int) -> None:
        """The single place that hands Insight summaries to torch's file writer."""
        self._get_file_writer().add_summary(summary_proto, global_step=step, walltime=time.time())


def _check_step(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"step must be a non-negative int, got {value!r}")
    return int(value)
