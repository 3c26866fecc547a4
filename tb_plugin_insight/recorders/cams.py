"""CAM overlays of the probe batch (Grad-CAM and nine relatives) every `cam_every` steps, computed in the
shared probe pass just before that step's training forward, and `add_cam`'s one-off CAMs.

FullGrad needs no layer: with it alone and no `cam_layer`, the records' layer name is "" (the whole
model); mixed with layer methods it is recorded under their layer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional

from torch import nn

from tb_plugin_insight import metadata, records
from tb_plugin_insight.capture import cam_layer, maps
from tb_plugin_insight.capture import probe as probe_mod
from tb_plugin_insight.capture.maps import CamPlan, MapRecord
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.capture.probe_pass import SharedMaps
from tb_plugin_insight.explain import cam, layouts
from tb_plugin_insight.explain.capture import resolve_layer
from tb_plugin_insight.options import CAM
from tb_plugin_insight.recorders.base import Recorder, RecordSink, WatchContext, outcome

logger = logging.getLogger(__name__)


def plan_cams(
    model: nn.Module,
    probe: Probe,
    *,
    every: int,
    layer: Any,
    methods: Sequence[str] | str,
    target: str,
    reshape_transform: Any = None,
    layout: Optional[str] = None,
) -> CamPlan:
    """Check CAM options once, at watch() time, with a dry run on one probe image.

    Raises:
        ValueError: unknown method, target "label" without labels, or a layer whose output cannot be
            explained (each message says what to pass instead).
    """
    if target == "label" and probe.labels is None:
        raise ValueError("cam_target='label' needs probe labels: pass probe=(images, labels)")
    names = tuple(cam.check_methods(methods))
    sample = probe.on(maps.model_device(model), maps.model_dtype(model))[:1]
    reason = ""
    if layer is None and _layerless(names):
        name, auto = "", False  # fullgrad explains the whole model: its records carry no layer name
    elif layer is None:
        choice = cam_layer.choose_cam_layer(model, sample, _allowed(layout))
        name, auto, reason = choice.name, True, choice.reason
        logger.warning("Insight: CAMs explain layer %r: %s (set cam_layer= to change)", name, reason)
    else:
        name, auto = resolve_layer(model, layer)[0], False
    targets = maps.probe_targets(target, probe, sample.device, 1)
    result = cam.compute_cams(
        model, sample, name or None, list(names), targets, reshape_transform, layout=layout
    )
    if name and not auto:
        reason = given_reason(result)
    return CamPlan(every, name, names, target, auto, reason, layout, reshape_transform)


def _allowed(layout: Optional[str]) -> tuple[str, ...]:
    """The layouts the automatic choice may take: the declared one only, when there is one."""
    return cam_layer.LAYOUTS if layout is None else (layout,)


def given_reason(result: cam.CamResult) -> str:
    """The reason shown for a layer the user chose: that they did, and how its output was read."""
    read = f" (read as {result.layout_description})" if result.layout_description else ""
    return f"given as cam_layer={read}"


def _layerless(methods: Sequence[str]) -> bool:
    """Only methods that need no target layer (fullgrad)."""
    return all(m in cam.LAYERLESS_METHODS for m in methods)


def write_maps(
    sink: RecordSink,
    step: int,
    probe: Probe,
    layer: str,
    record: MapRecord,
    *,
    auto_selected: bool,
    kind: int = metadata.RecordKind.CAM,
) -> None:
    """Queue one step's CAM or saliency maps of a probe (with its images the first time they are seen)."""
    store_images = sink.images_changed(probe)
    sink.enqueue(records.maps, probe, layer, record, auto_selected, kind, store_images, step=step)


class ProbeMapsRecorder(Recorder):
    """Maps of the probe from the shared probe pass (CAMs, saliency): one plan, due every `plan.every`
    steps while a probe is set, its part of the pass written with `write_maps`."""

    kind: int = metadata.RecordKind.CAM
    stopped: str = ""  # the log message when a failure stops it

    def __init__(self, sink: RecordSink, plan: Any) -> None:
        super().__init__()
        self.sink = sink
        self.plan = plan

    def due(self, step: int) -> bool:
        return not self.failed and step % self.plan.every == 0 and self.sink.probe() is not None

    def probe_request(self) -> Any:
        return self.plan

    def layer(self) -> str:
        """The layer the maps are stored under ("" for input saliency)."""
        return ""

    def record_probe(self, step: int, model: nn.Module, shared: SharedMaps) -> None:
        probe = self.sink.probe()
        try:
            if probe is None:
                raise RuntimeError("the probe batch was removed")
            record = outcome(getattr(shared, str(self.probe_role)))
            auto = bool(getattr(self.plan, "auto_selected", False))
            write_maps(self.sink, step, probe, self.layer(), record, auto_selected=auto, kind=self.kind)
        except Exception:  # noqa: BLE001 - recording must never break the user's training
            self.stop(self.stopped, self.layer())


class CamRecorder(ProbeMapsRecorder):
    """`watch(probe=..., cam_every=..., cam_methods=...)` or `cam=CAM(...)`."""

    name = "cams"
    options_keyword = "cam"
    options_group = CAM
    probe_role = "cams"

    stopped = "Insight stopped recording CAMs of layer %r"

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        options: CAM = ctx.options["cam"]
        if ctx.probe is None or not options.every:
            return None
        plan = plan_cams(
            ctx.model,
            ctx.probe,
            every=options.every,
            layer=options.layer,
            methods=options.methods,
            target=options.target,
            reshape_transform=options.reshape_transform,
            layout=options.layout,
        )
        ctx.cam_layer = plan.layer
        return cls(ctx.sink, plan)

    def layer(self) -> str:
        return str(self.plan.layer)


def write_once(
    sink: RecordSink,
    step: int,
    tag: str,
    model: nn.Module,
    inputs: Any,
    target_layer: Any,
    method: Sequence[str] | str,
    targets: Any,
    *,
    labels: Any,
    class_names: Optional[Sequence[str]],
    reshape_transform: Any = None,
    layout: Optional[str] = None,
) -> None:
    """`InsightWriter.add_cam`: CAMs of `inputs` at one step, under the probe name `tag`."""
    layout = layouts.check_layout(layout)
    probe = probe_mod.make_probe(tag, inputs, labels, class_names=class_names)
    images = probe.on(maps.model_device(model), maps.model_dtype(model))
    layer = target_layer
    layerless = layer is None and _layerless(cam.check_methods(method))
    auto = layer is None and not layerless
    reason = ""
    if auto:
        choice = cam_layer.choose_cam_layer(model, images[:1], _allowed(layout))
        layer, reason = choice.name, choice.reason
    result = cam.compute_cams(
        model, images, layer, method, targets=targets, reshape_transform=reshape_transform, layout=layout,
        upsample=False,
    )  # fmt: skip
    layer_name = "" if layerless else resolve_layer(model, layer)[0]
    if layer_name and not auto:
        reason = given_reason(result).replace("cam_layer=", "target_layer=")
    record = maps.record_from_cams(result, reason)
    write_maps(sink, step, probe, layer_name, record, auto_selected=auto)
