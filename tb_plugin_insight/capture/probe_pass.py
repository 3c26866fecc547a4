"""The probe pass: one forward (and one backward) of the probe for every map kind due at a step.

Feature maps need a no_grad forward, CAMs a forward and a backward to the CAM layer, "gradient" saliency
a forward and a backward to the input; `run_shared` runs one forward for all of them (the only probe
path; `WatchSession` calls it before the counted forward of a step when any kind is due):

* feature maps are taken by `FeatureMapRecorder.hooked`'s hooks on that forward (detached, selected,
  pooled and quantised at once);
* the CAM layer's output is kept and a copy goes on downstream (as `explain.capture` does); CAMs get it
  and the gradient of their target scores with respect to it, then `cam.cams_from_capture` makes the maps
  (scorecam and ablationcam still add their perturbed forwards there);
* saliency methods that are one gradient of the target scores with respect to the input
  (`saliency.INPUT_GRADIENT_METHODS`) take it from the same backward; the others (guided backprop,
  SmoothGrad, integrated gradients, guided Grad-CAM) run their own passes (`compute_attribution`);
* attention probabilities of every attention module are recomputed from the same forward's q and k
  (capture/attention.py) and reduced at once by the attention plan;
* predictions come from the same logits;
* fullgrad (no target layer) runs its own forward and full backward inside `cam.cams_from_capture`,
  since it needs gradients at every bias layer's output (when it is the only CAM method, nothing is tapped).

When CAMs and saliency explain the same target, one `torch.autograd.grad` call gives both gradients;
when their targets differ ("predicted" and "label"), the same forward gets two calls, the first keeping
the graph. Without saliency, gradients are recorded from the CAM layer on only, as in `explain.capture`.

The results are those of the public functions (`compute_cams`, `compute_saliency`, tested against them):
the same eval-mode forward of the same inputs
(`side_effect_free`: every module's flag and the RNG state restored, BatchNorm statistics untouched),
gradients from `torch.autograd.grad` only (no `.backward()`, no parameter's `.grad` read or written).

Failures stay per kind: what fails in one kind's part (its hook, its scores, its gradient, its maps)
becomes that kind's error in `SharedMaps`, and the other kinds' results stand. A failure of the shared
forward itself raises: every kind due then stops (their recorders log it), training goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Optional, TypeVar, Union

import torch
from torch import nn

from tb_plugin_insight.capture import attention as attention_capture
from tb_plugin_insight.capture.attention_maps import AttentionPlan
from tb_plugin_insight.capture.feature_maps import FeatureMapRecord, FeatureMapRecorder
from tb_plugin_insight.capture.maps import (
    CamPlan,
    MapRecord,
    SaliencyPlan,
    model_device,
    model_dtype,
    predictions_of,
    probe_targets,
    record_from_attributions,
    record_from_cams,
)
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.explain import cam, saliency
from tb_plugin_insight.explain import targets as targets_mod
from tb_plugin_insight.explain.capture import (
    Captured,
    checked_activation,
    no_gradient_error,
    resolve_layer,
    side_effect_free,
    split_output,
)

FeatureMapsOutcome = Union[dict[str, FeatureMapRecord], Exception, None]
MapOutcome = Union[MapRecord, Exception, None]
T = TypeVar("T")


@dataclasses.dataclass
class SharedMaps:
    """Each kind's result of a shared pass, or the exception that stopped it (None: not asked for)."""

    feature_maps: FeatureMapsOutcome = None
    cams: MapOutcome = None
    saliency: MapOutcome = None
    # attention module name -> what the attention plan keeps of its call (or the error of that call)
    attention: Union[dict[str, Any], Exception, None] = None


def run_shared(
    model: nn.Module,
    probe: Probe,
    *,
    feature_maps: Optional[FeatureMapRecorder] = None,
    cam_plan: Optional[CamPlan] = None,
    saliency_plan: Optional[SaliencyPlan] = None,
    predict: bool = True,
    attention: Optional[AttentionPlan] = None,
) -> SharedMaps:
    """The maps of the kinds given, from one forward of the probe (see the module docstring).

    `predict`: whether the saliency record carries the predictions (the CAM record always does).
    `attention`: capture every attention computation of the forward (capture/attention.py) and keep
    what the plan keeps of each.

    Raises:
        Exception: what the shared forward (or one gradient call serving two kinds) raised.
    """
    images = probe.on(model_device(model), model_dtype(model))
    n = len(images)
    shared = _shared_methods(saliency_plan, n) if saliency_plan is not None else []
    results = SharedMaps()
    cam_name = cam_plan.layer if cam_plan is not None else None
    cam_layer = _outcome(lambda: resolve_layer(model, cam_name)) if cam_name is not None else None
    if isinstance(cam_layer, Exception):
        results.cams, cam_plan = cam_layer, None
    tap = (
        _CamTap(any(m in cam.GRADIENT_METHODS for m in cam_plan.methods))
        if cam_plan is not None and _layered(cam_plan)
        else None
    )
    with side_effect_free(model, images):
        x = images.detach().clone()  # as compute_attribution: the caller's tensor is never touched
        leaf = x.detach().requires_grad_(True) if shared else None
        with contextlib.ExitStack() as hooks:  # hooks for this forward only (not scorecam's etc.)
            taken = hooks.enter_context(feature_maps.hooked(model)) if feature_maps is not None else None
            if attention is not None:
                results.attention = hooks.enter_context(attention_capture.capturing(model, attention.keep))
            if tap is not None and isinstance(cam_layer, tuple):
                hooks.enter_context(_hooked(cam_layer[1], tap))
            with torch.set_grad_enabled(leaf is not None):
                raw = model(x.clone() if leaf is None else leaf.clone())  # a forward may change its input
        if feature_maps is not None and taken is not None:
            results.feature_maps = _outcome(lambda: feature_maps.records(taken))
        with torch.enable_grad():
            output = _outcome(lambda: targets_mod.model_output(raw))
            cam_scores = input_scores = None
            if tap is not None and cam_plan is not None and tap.gradient:
                targets = probe_targets(cam_plan.target, probe, images.device, n)
                cam_scores = _outcome(lambda: targets_mod.target_scores(_value(output), targets))
            if leaf is not None and saliency_plan is not None:
                targets = probe_targets(saliency_plan.target, probe, images.device, n)
                input_scores = _outcome(
                    lambda: saliency.input_gradient_scores(raw, targets, n, images.device)
                )
        same_target = (
            cam_plan is not None and saliency_plan is not None and cam_plan.target == saliency_plan.target
        )
        cam_grad, input_grad = _gradients(tap, cam_scores, leaf, input_scores, same_target)
        if cam_plan is not None and isinstance(cam_layer, tuple):
            name = cam_layer[0]
            results.cams = _outcome(
                lambda: _cams(model, images, name, tap, output, cam_scores, cam_grad, cam_plan, probe)
            )
    if saliency_plan is not None:
        results.saliency = _outcome(
            lambda: _saliency(model, images, output, input_grad, shared, saliency_plan, probe, predict)
        )
    return results


def _layered(plan: Optional[CamPlan]) -> bool:
    """Whether the plan has a method that explains its layer (fullgrad alone needs no tap)."""
    return plan is not None and any(m not in cam.LAYERLESS_METHODS for m in plan.methods)


def _shared_methods(plan: SaliencyPlan, n: int) -> list[str]:
    return [m for m in plan.methods if saliency.shares_input_gradient(m, plan.options.get(m, {}), n)]


def _outcome(compute: Callable[[], T]) -> Union[T, Exception]:
    """compute()'s result, or the exception it raised (which then stops one kind only)."""
    try:
        return compute()
    except Exception as err:  # noqa: BLE001 - returned, and raised again by the kind that needs it
        return err


def _value(outcome: Union[T, Exception]) -> T:
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


class _CamTap:
    """Forward hook on the CAM layer: keeps its first output (a failure is kept too, not raised inside
    the shared forward) and hands downstream a copy, so in-place ops after the layer cannot change it.

    With `gradient`, the kept tensor is what the CAM gradient is taken with respect to: the output
    itself when the forward records gradients from the input (shared with saliency), else a leaf from
    which gradient recording starts, as in `explain.capture`.
    """

    def __init__(self, gradient: bool) -> None:
        self.gradient = gradient
        self.activation: Optional[torch.Tensor] = None
        self.error: Optional[Exception] = None

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        if self.activation is not None or self.error is not None:
            return None  # a module called twice in one forward is captured at its first call
        try:
            tensor, rebuild = split_output(output)
        except ValueError as err:
            self.error = err
            return None
        if not self.gradient:
            kept = tensor.detach()
        elif tensor.requires_grad:
            kept = tensor
        else:
            torch.set_grad_enabled(True)  # restored after the forward by run_shared
            kept = tensor.detach()
            kept = (kept.clone() if kept.is_inference() else kept).requires_grad_(True)
        self.activation = kept
        return rebuild((kept if kept.requires_grad else tensor).clone())

    def checked(self, name: str) -> torch.Tensor:
        if self.error is not None:
            raise self.error
        return checked_activation(self.activation, name)


@contextlib.contextmanager
def _hooked(layer: nn.Module, tap: _CamTap) -> Iterator[None]:
    handle = layer.register_forward_hook(tap)
    try:
        yield
    finally:
        handle.remove()


def _gradients(
    tap: Optional[_CamTap],
    cam_scores: Any,
    leaf: Optional[torch.Tensor],
    input_scores: Any,
    same_target: bool,
) -> tuple[Any, Any]:
    """(d cam scores / d CAM activation, d saliency scores / d input): each a tensor, None (no
    gradient: the scores do not depend on it) or the exception that stops its kind."""
    activation = tap.activation if tap is not None else None
    want_cam = (
        activation is not None
        and activation.requires_grad
        and isinstance(cam_scores, torch.Tensor)
        and cam_scores.requires_grad
    )
    want_input = leaf is not None and isinstance(input_scores, torch.Tensor)
    if want_cam and want_input and same_target:
        assert activation is not None and leaf is not None
        # One backward for both: the same scores (same target on the same logits). A failure here is
        # common to both kinds: it raises, and both stop.
        both = torch.autograd.grad(cam_scores.sum(), [activation, leaf], allow_unused=True)
        return both[0], both[1]
    cam_grad: Any = cam_scores if isinstance(cam_scores, Exception) else None
    input_grad: Any = input_scores if isinstance(input_scores, Exception) else None
    if want_cam and activation is not None:
        cam_grad = _outcome(
            lambda: torch.autograd.grad(
                cam_scores.sum(), activation, allow_unused=True, retain_graph=want_input
            )[0]
        )
    if want_input and leaf is not None:
        input_grad = _outcome(lambda: torch.autograd.grad(input_scores.sum(), leaf, allow_unused=True)[0])
    return cam_grad, input_grad


def _cams(
    model: nn.Module,
    images: torch.Tensor,
    name: str,
    tap: Optional[_CamTap],
    output: Any,
    scores: Any,
    gradient: Any,
    plan: CamPlan,
    probe: Probe,
) -> MapRecord:
    """The CAM record of the probe, from the shared forward's capture (inside `side_effect_free`);
    fullgrad runs its own forward and backward in `cams_from_capture` (no tap when it is alone)."""
    targets = probe_targets(plan.target, probe, images.device, len(images))
    if tap is None:
        result = cam.cams_from_capture(model, images, None, None, plan.methods, targets, upsample=False)
        return record_from_cams(result, plan.layer_reason)
    activation = tap.checked(name)
    output = _value(output)
    if tap.gradient:
        scores, gradient = _value(scores), _value(gradient)
        if gradient is None or not scores.requires_grad:
            raise no_gradient_error(name)
        captured = Captured(output.detach(), activation.detach(), gradient, scores.detach())
    else:
        captured = Captured(output.detach(), activation)
    result = cam.cams_from_capture(
        model,
        images,
        name,
        captured,
        plan.methods,
        targets,
        plan.reshape_transform,
        layout=plan.layout,
        upsample=False,
    )
    return record_from_cams(result, plan.layer_reason)


def _saliency(
    model: nn.Module,
    images: torch.Tensor,
    output: Any,
    input_grad: Any,
    shared: list[str],
    plan: SaliencyPlan,
    probe: Probe,
    predict: bool,
) -> MapRecord:
    """The saliency record of the probe: shared methods from the input gradient, the others from their
    own passes, predictions from the shared logits."""
    targets = probe_targets(plan.target, probe, images.device, len(images))
    attributions = {}
    for method in plan.methods:
        if method in shared:
            attributions[method] = saliency.from_input_gradient(method, images, _value(input_grad))
        else:
            options = plan.options.get(method, {})
            attributions[method] = saliency.compute_attribution(model, images, method, targets, **options)
    predicted, probability = predictions_of(_value(output)) if predict else (None, None)
    return record_from_attributions(attributions, predicted, probability, max_side=plan.max_side)
