"""`WatchHandle`: what `InsightWriter.watch` returns, to read what is watched and to stop watching."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from torch import nn

from tb_plugin_insight.session import WatchSession

if TYPE_CHECKING:
    from tb_plugin_insight.writer import InsightWriter


class WatchHandle:
    """What `InsightWriter.watch` returns: the watched layer names, the step counter, `remove()`."""

    def __init__(self, writer: InsightWriter, model: nn.Module, session: WatchSession) -> None:
        self._writer = weakref.ref(writer)
        self._model = weakref.ref(model)
        self._session = session

    def _plan(self, name: str) -> Any:
        recorder = self._session.by_name.get(name)
        return getattr(recorder, "plan", None)

    @property
    def cam_layer(self) -> Optional[str]:
        """The layer CAMs explain (chosen automatically unless cam_layer= was given), or None."""
        plan = self._plan("cams")
        return plan.layer if plan else None

    @property
    def cam_layer_reason(self) -> str:
        """Why CAMs explain that layer (the rule of the automatic choice, or "given as cam_layer=")."""
        plan = self._plan("cams")
        return str(getattr(plan, "layer_reason", "")) if plan else ""

    @property
    def cam_methods(self) -> tuple[str, ...]:
        plan = self._plan("cams")
        return plan.methods if plan else ()

    @property
    def saliency_methods(self) -> tuple[str, ...]:
        plan = self._plan("saliency")
        return plan.methods if plan else ()

    @property
    def grads(self) -> bool:
        """True when gradient flow is recorded (watch(grads=True), the default)."""
        return self._session.gradients is not None

    @property
    def layers(self) -> list[str]:
        """Qualified names of the watched layers, in model order."""
        engine = self._session.engine
        return [info.name for info in engine.layers] if engine is not None else []

    @property
    def every(self) -> int:
        engine = self._session.engine
        return engine.every if engine is not None else 0

    @property
    def step(self) -> int:
        """The step the next counted forward pass will be recorded as."""
        return self._session.step

    @step.setter
    def step(self, value: int) -> None:
        self._session.step = check_step(value)

    def begin_step(self, step: int) -> None:
        """With `watch(step="manual")`: training step `step` starts (call before its first forward; the
        probe pass of a due step runs here). Calling it again with the same step records nothing more."""
        engine = self._session.engine
        if engine is not None and not engine.manual:
            raise RuntimeError("begin_step() marks steps of a watch(model, step='manual') only")
        model = self._model()
        if model is not None:
            self._session.begin_step(model, check_step(step))

    def gradients_ready(self) -> None:
        """With `watch(step="manual")`: read the parameter gradients of the step now (call where they are
        final: accumulated and unscaled, just before the optimizer step)."""
        self._session.read_gradients()

    def end_step(self) -> None:
        """With `watch(step="manual")`: the step's forward (and backward) has run; safe to repeat."""
        model = self._model()
        if model is not None:
            self._session.end_step(model)

    @property
    def active(self) -> bool:
        """False once the hooks are removed."""
        return self._session.active

    def remove(self) -> None:
        """Remove the hooks (same as `writer.unwatch(model)`)."""
        writer, model = self._writer(), self._model()
        if writer is not None and model is not None:
            writer.unwatch(model)
        else:
            self._session.remove()

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"<WatchHandle {state}, {len(self.layers)} layers, every={self.every}, step={self.step}>"


def check_step(value: Any) -> int:
    """A step number: a non-negative int (numpy's too)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"step must be a non-negative int, got {value!r}")
    return int(value)
