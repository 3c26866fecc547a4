"""Input saliency maps of the probe batch every `saliency_every` steps (shared probe pass), and
`add_saliency`'s one-off maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from torch import nn

from tb_plugin_insight import metadata
from tb_plugin_insight.capture import maps
from tb_plugin_insight.capture import probe as probe_mod
from tb_plugin_insight.capture.maps import SaliencyPlan
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.explain import saliency
from tb_plugin_insight.options import CAM, Saliency
from tb_plugin_insight.recorders.base import Recorder, RecordSink, WatchContext
from tb_plugin_insight.recorders.cams import ProbeMapsRecorder, write_maps


def plan_saliency(
    model: nn.Module,
    probe: Probe,
    *,
    every: int,
    methods: Sequence[str] | str,
    target: str,
    options: Optional[Mapping[str, Mapping[str, Any]]] = None,
    cam_layer: Optional[str] = None,
    max_side: Optional[int] = None,
    cam_reshape_transform: Any = None,
) -> SaliencyPlan:
    """Check saliency options once, at watch() time, with a dry run on one probe image.

    `guided_gradcam` needs a `target_layer`: without one in `options`, the CAM layer (or the layer CAMs
    would choose) is used, with the CAM's `reshape_transform` when it is the CAM layer. Maps with a side
    above `max_side` are average-pooled before they are normalised and stored (explain/pooling.py; None:
    full size).

    Raises:
        ValueError / TypeError: unknown method, an option the method does not take, target "label"
            without labels, or a dry run that fails (each message says what to pass instead).
    """
    if target == "label" and probe.labels is None:
        raise ValueError("a 'label' saliency target needs probe labels: pass probe=(images, labels)")
    names = tuple(dict.fromkeys([methods] if isinstance(methods, str) else list(methods)))
    if not names:
        raise ValueError(f"give at least one saliency method, from {', '.join(saliency.METHODS)}")
    for name in names:
        if name not in saliency.METHODS:
            raise ValueError(f"unknown saliency method {name!r}: choose from {', '.join(saliency.METHODS)}")
    per_method = {m: dict((options or {}).get(m, {})) for m in names}
    unknown = sorted(set(options or {}) - set(names))
    if unknown:
        raise ValueError(f"saliency_options for method(s) {', '.join(unknown)} not in saliency_methods")
    sample = probe.on(maps.model_device(model), maps.model_dtype(model))[:1]
    guided = per_method.get("guided_gradcam")
    if guided is not None and guided.get("target_layer") is None:
        guided["target_layer"] = cam_layer or probe_mod.find_last_spatial_layer(model, sample)
        if cam_layer and cam_reshape_transform is not None and guided.get("reshape_transform") is None:
            guided["reshape_transform"] = cam_reshape_transform
    plan = SaliencyPlan(every, names, target, per_method, max_side)
    targets = maps.probe_targets(target, probe, sample.device, 1)
    dry_run = {m: saliency.compute_attribution(model, sample, m, targets, **per_method[m]) for m in names}
    maps.record_from_attributions(dry_run, None, None, max_side=max_side)  # on the first image only
    return plan


class SaliencyRecorder(ProbeMapsRecorder):
    """`watch(probe=..., saliency_every=..., saliency_methods=...)` or `saliency=Saliency(...)`."""

    name = "saliency"
    options_keyword = "saliency"
    options_group = Saliency
    probe_role = "saliency"

    kind = metadata.RecordKind.SALIENCY
    stopped = "Insight stopped recording saliency maps%s"  # the layer is "": input saliency

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        options: Saliency = ctx.options["saliency"]
        if not options.enabled:
            return None
        if ctx.probe is None and ctx.text_probe is not None:
            raise ValueError(
                "saliency_every/saliency_methods make image saliency maps, but the probe is text: use"
                " token_saliency_methods= (grad_x_input, integrated_gradients) and token_saliency_every="
            )
        if ctx.probe is None:
            raise ValueError(
                "saliency maps need a probe batch: pass probe=(images, labels) or call set_probe"
            )
        cam_options: CAM = ctx.options["cam"]
        plan = plan_saliency(
            ctx.model,
            ctx.probe,
            every=options.every if options.every is not None else (cam_options.every or 100),
            methods=options.methods or ("gradient",),
            target=options.target or cam_options.target,
            options=options.options,
            cam_layer=ctx.cam_layer,
            max_side=options.max_side,
            cam_reshape_transform=cam_options.reshape_transform,
        )
        return cls(ctx.sink, plan)


def write_once(
    sink: RecordSink,
    step: int,
    tag: str,
    model: nn.Module,
    inputs: Any,
    method: Sequence[str] | str,
    targets: Any,
    *,
    labels: Any,
    class_names: Optional[Sequence[str]],
    options: dict[str, Any],
) -> None:
    """`InsightWriter.add_saliency`: saliency maps of `inputs` at one step, under the probe name `tag`."""
    probe = probe_mod.make_probe(tag, inputs, labels, class_names=class_names)
    images = probe.on(maps.model_device(model), maps.model_dtype(model))
    methods = [method] if isinstance(method, str) else list(dict.fromkeys(method))
    result = {m: saliency.compute_attribution(model, images, m, targets, **options) for m in methods}
    record = maps.record_from_attributions(result, *maps.predictions(model, images))
    write_maps(sink, step, probe, "", record, auto_selected=False, kind=metadata.RecordKind.SALIENCY)
