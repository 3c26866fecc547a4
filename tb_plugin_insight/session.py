"""One watched model: its recorders, the hooks on its training forward and backward, its probe passes.

`WatchSession.start` builds every recorder of the registry that the options ask for, collects what they
need from the training forward/backward into one `ActivationRecorder` (capture/hooks.py: one set of
hooks, one host transfer per recorded step), and, when a recorder works on the probe, runs the probe
pass before each counted forward: one shared forward (and backward) of the probe for every kind due at
that step (capture/probe_pass.py), each kind then writing its part.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Callable, Optional

import torch
from torch import nn

from tb_plugin_insight import records, steps
from tb_plugin_insight.capture import hooks
from tb_plugin_insight.capture import probe_pass as probe_pass_mod
from tb_plugin_insight.capture.grads import GradientRecorder
from tb_plugin_insight.capture.hooks import ActivationRecorder, LayerInfo, Mode
from tb_plugin_insight.capture.transfer import HostArray
from tb_plugin_insight.recorders import REGISTRY, Recorder, RecordSink, TrainingNeeds, WatchContext
from tb_plugin_insight.recorders.feature_maps import FeatureMapsRecorder
from tb_plugin_insight.recorders.featurevis import FeatureVisRecorder

logger = logging.getLogger(__name__)


class WatchSession:
    """The recorders of one `watch()` and the hooks that feed them; `remove()` takes every hook off."""

    def __init__(self, ctx: WatchContext, recorders: Sequence[Recorder]) -> None:
        self.recorders = list(recorders)
        self.sink: RecordSink = ctx.sink
        self.by_name = {recorder.name: recorder for recorder in self.recorders}
        self._probe_side = [r for r in self.recorders if r.probe_role is not None]
        self.engine: Optional[ActivationRecorder] = None
        featurevis, feature_maps = self.by_name.get("featurevis"), self.by_name.get("feature_maps")
        if isinstance(featurevis, FeatureVisRecorder) and isinstance(feature_maps, FeatureMapsRecorder):
            featurevis.maps_channels = feature_maps.maps.channels  # show the channels the maps view shows
        self._first_logged: Optional[int] = None  # the first step the user logged a scalar at
        self._warned_no_forward = False
        self._model_type = ""

    @classmethod
    def build(cls, ctx: WatchContext, only: Optional[Sequence[str]] = None) -> WatchSession:
        """Every recorder the options ask for (of those named in `only`, when given), checked (dry runs on
        the probe included); no hooks yet.

        Raises:
            ValueError / TypeError: from the recorders' checks (each names the option and the fix).
        """
        kinds = [cls_ for cls_ in REGISTRY if only is None or cls_.name in only]
        recorders = [recorder for cls_ in kinds if (recorder := cls_.build(ctx)) is not None]
        return cls(ctx, recorders)

    def attach(
        self,
        model: nn.Module,
        layers: Sequence[tuple[int, str, nn.Module]],
        *,
        every: int,
        mode: Mode,
        compiled: bool,
        step_source: Optional[Callable[[], int]] = None,
        manual: bool = False,
    ) -> None:
        """Register the hooks on `model` (one ActivationRecorder for all training-side recorders); steps
        come from its training forwards, `step_source`, or with `manual` from `begin_step`/`end_step`."""
        needs = TrainingNeeds()
        for recorder in self.recorders:
            recorder.training_needs(needs)
        self.engine = ActivationRecorder(
            model,
            layers,
            every=every,
            mode=mode,
            on_record=needs.on_record or _ignore,
            on_step_start=self._run_probe_pass if self._probe_side else None,
            gradients=needs.gradients,
            on_gradient_record=needs.on_gradient_record,
            on_gradient_noise=needs.on_gradient_noise,
            reducers=needs.reducers,
            on_extras=self._extras_callback(needs) if needs.reducers else None,
            on_model_table=needs.on_model_table,
            compiled=compiled,
            step_source=step_source,
            manual=manual,
        )
        self._model_type = type(model).__name__

    # --- what the handle and the writer read ----------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.engine is not None and self.engine.active

    @property
    def step(self) -> int:
        return self.engine.step if self.engine is not None else 0

    @step.setter
    def step(self, value: int) -> None:
        if self.engine is not None:
            self.engine.step = value

    @property
    def gradients(self) -> Optional[GradientRecorder]:
        """The gradient-flow hooks (None without gradient recording)."""
        return self.engine.gradients if self.engine is not None else None

    def remove(self) -> None:
        """Remove every hook (idempotent); a finished gradient record is still written."""
        if self.engine is not None:
            self.engine.remove()

    # --- manual steps (watch(step="manual"), the trainer integrations) --------------------------------
    def begin_step(self, model: nn.Module, step: int) -> None:
        if self.engine is not None:
            self.engine.begin_step(model, step)

    def end_step(self, model: nn.Module) -> None:
        if self.engine is not None:
            self.engine.end_step(model)

    def read_gradients(self) -> None:
        if self.engine is not None:
            self.engine.read_gradients()

    def check_logged_step(self, logged_step: Any) -> None:
        """The user logged a scalar at `logged_step`: warn once if training seems to run unwatched."""
        engine = self.engine
        if engine is None or engine.manual or self._warned_no_forward or not engine.active:
            return
        step = steps.as_step(logged_step)
        if step is None:
            return
        if self._first_logged is None:
            self._first_logged = step
        if steps.no_forward_due(step, self._first_logged, engine.every, engine.forwards_counted):
            self._warned_no_forward = True
            logger.warning(
                steps.no_forward_message(self._model_type, logged_step, engine.forwards_seen, engine.mode)
            )

    # --- the training forward -------------------------------------------------------------------------
    def _extras_callback(self, needs: TrainingNeeds) -> hooks.ExtrasCallback:
        bounded, bins, ratio = dict(needs.bounded), needs.histogram_bins, needs.massive_ratio

        def record(
            step: int, infos: Sequence[LayerInfo], extras: HostArray, layout: tuple[tuple[str, int], ...]
        ) -> None:
            self.sink.enqueue(
                records.layer_extras, tuple(infos), extras, layout, bounded, bins, ratio, step=step
            )

        return record

    # --- the probe pass -------------------------------------------------------------------------------
    def _run_probe_pass(self, step: int, model: nn.Module) -> None:
        """Before the counted forward of `step`: one shared probe pass for the kinds due, each then writes
        its part (a failure stops the kinds it hits, never training)."""
        due = [recorder for recorder in self._probe_side if recorder.due(step)]
        if not due:
            return
        with torch.inference_mode(False):  # a loop under inference_mode: probe passes still work
            requests = {recorder.probe_role: recorder.probe_request() for recorder in due}
            probe = self.sink.probe()
            shared = probe_pass_mod.SharedMaps()
            if probe is not None and any(request is not None for request in requests.values()):
                try:
                    shared = probe_pass_mod.run_shared(
                        model,
                        probe,
                        feature_maps=requests.get("feature_maps"),
                        cam_plan=requests.get("cams"),
                        saliency_plan=requests.get("saliency"),
                        predict="cams" not in requests,
                        attention=requests.get("attention"),
                    )
                except Exception as err:  # noqa: BLE001 - every kind due reports it and stops
                    shared = probe_pass_mod.SharedMaps(
                        feature_maps=err, cams=err, saliency=err, attention=err
                    )
            for recorder in due:
                recorder.record_probe(step, model, shared)


def _ignore(*args: Any) -> None:
    """A statistics callback for a watch that records none (never the case with the default registry)."""
