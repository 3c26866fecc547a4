"""Map passes on the probe batch (CAMs and input saliency): what to compute, and the uint8 maps to store."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from tb_plugin_insight import cam
from tb_plugin_insight.capture import pooling
from tb_plugin_insight.capture import probe as probe_mod
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.explain.capture import resolve_layer

__all__ = [
    "CamPlan",
    "MapRecord",
    "SaliencyPlan",
    "model_device",
    "model_dtype",
    "plan_cams",
    "plan_saliency",
    "predictions",
    "predictions_of",
    "probe_targets",
    "resolve_layer",
    "run_cams",
    "run_saliency",
]

logger = logging.getLogger(__name__)

CAM_TARGETS = ("predicted", "label")


@dataclasses.dataclass(frozen=True)
class CamPlan:
    """What watch(..., cam_every=...) records: one layer, several methods sharing one pass."""

    every: int
    layer: str
    methods: tuple[str, ...]
    target: str  # "predicted" or "label"
    auto_selected: bool


@dataclasses.dataclass(frozen=True)
class SaliencyPlan:
    """What watch(..., saliency_every=...) records: input saliency maps of the probe, one per method."""

    every: int
    methods: tuple[str, ...]
    target: str  # "predicted" or "label"
    options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict, hash=False)
    max_side: Optional[int] = None  # saliency_max_side: larger maps are average-pooled (None: full size)


@dataclasses.dataclass
class MapRecord:
    """One step's maps of a probe, ready for the summary builders."""

    maps: dict[str, np.ndarray]  # method -> (N, H, W) uint8
    predicted: Optional[np.ndarray]  # (N,) class indices
    probability: Optional[np.ndarray]  # (N,)
    # method -> (N, 2) min and max of each map before per-image scaling (for a shared scale in the tab)
    ranges: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    # Saliency maps pooled to fit saliency_max_side: the block side and the (H, W) before pooling.
    pool_factor: int = 1
    source_size: tuple[int, int] = (0, 0)


def record_from_cams(result: cam.CamResult) -> MapRecord:
    """The stored form of compute_cams' result: uint8 maps, predictions and raw ranges."""
    return MapRecord(
        maps={method: probe_mod.maps_to_uint8(maps) for method, maps in result.items()},
        predicted=None if result.predicted is None else result.predicted.cpu().numpy(),
        probability=None if result.probability is None else result.probability.float().cpu().numpy(),
        ranges={method: r.detach().double().cpu().numpy() for method, r in result.raw_range.items()},
    )


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live now (it may have moved since watch())."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> Optional[torch.dtype]:
    """The floating dtype of the model's parameters now (it may have changed since watch()), if any."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def plan_cams(
    model: nn.Module,
    probe: Probe,
    *,
    every: int,
    layer: Any,
    methods: Sequence[str] | str,
    target: str,
) -> CamPlan:
    """Validate CAM options once, at watch() time, with a dry run on one probe image.

    Raises:
        ValueError: bad `every`, unknown method, target "label" without labels, or a layer whose output
            cannot be explained (each message says what to pass instead).
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"cam_every must be a positive int (steps between CAMs), got {every!r}")
    if target not in CAM_TARGETS:
        raise ValueError(f"cam_target must be one of {', '.join(CAM_TARGETS)}, got {target!r}")
    if target == "label" and probe.labels is None:
        raise ValueError("cam_target='label' needs probe labels: pass probe=(images, labels)")
    names = tuple(cam._check_methods(methods))
    sample = probe.on(model_device(model), model_dtype(model))[:1]
    if layer is None:
        name, auto = probe_mod.find_last_spatial_layer(model, sample), True
        logger.warning(
            "Insight: CAMs explain layer %r (the last spatial layer; set cam_layer= to change)", name
        )
    else:
        name, auto = resolve_layer(model, layer)[0], False
    cam.compute_cams(model, sample, name, list(names), targets=probe_targets(target, probe, sample.device, 1))
    return CamPlan(every, name, names, target, auto)


def probe_targets(target: str, probe: Probe, device: torch.device, n: int) -> Optional[torch.Tensor]:
    """The `targets` of the first `n` probe images for a plan's target: the labels, or None (predicted)."""
    if target == "label" and probe.labels is not None:
        return probe.labels[:n].to(device)
    return None


def run_cams(model: nn.Module, probe: Probe, plan: CamPlan) -> MapRecord:
    """Compute the plan's CAMs of the whole probe (one forward, one short backward)."""
    device = model_device(model)
    images = probe.on(device, model_dtype(model))
    result = cam.compute_cams(
        model,
        images,
        plan.layer,
        list(plan.methods),
        targets=probe_targets(plan.target, probe, device, len(images)),
        upsample=False,  # stored at the layer's resolution; the browser upsamples
    )
    return record_from_cams(result)


def plan_saliency(
    model: nn.Module,
    probe: Probe,
    *,
    every: Any,
    methods: Sequence[str] | str,
    target: str,
    options: Optional[dict[str, dict[str, Any]]] = None,
    cam_layer: Optional[str] = None,
    max_side: Any = None,
) -> SaliencyPlan:
    """Validate saliency options once, at watch() time, with a dry run on one probe image.

    `guided_gradcam` needs a `target_layer`: without one in `options`, the CAM layer (or the last spatial
    layer) is used. Maps with a side above `max_side` are average-pooled before they are normalised and
    stored (capture/pooling.py; None: full size).

    Raises:
        ValueError / TypeError: bad `every` or `max_side`, unknown method, an option the method does not
            take, target "label" without labels, or a dry run that fails (each message says what to pass
            instead).
    """
    from tb_plugin_insight import saliency

    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"saliency_every must be a positive int (steps between maps), got {every!r}")
    max_side = pooling.check_max_side("saliency_max_side", max_side)
    if target not in CAM_TARGETS:
        raise ValueError(f"saliency target must be one of {', '.join(CAM_TARGETS)}, got {target!r}")
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
    sample = probe.on(model_device(model), model_dtype(model))[:1]
    if "guided_gradcam" in per_method and per_method["guided_gradcam"].get("target_layer") is None:
        per_method["guided_gradcam"]["target_layer"] = cam_layer or probe_mod.find_last_spatial_layer(
            model, sample
        )
    plan = SaliencyPlan(every, names, target, per_method, max_side)
    run_saliency(
        model, dataclasses.replace(probe, images=probe.images[:1], _on_device={}), plan, predict=False
    )
    return plan


def run_saliency(model: nn.Module, probe: Probe, plan: SaliencyPlan, *, predict: bool = True) -> MapRecord:
    """The plan's saliency maps of the whole probe, and (if `predict`) what the model predicts on it."""
    from tb_plugin_insight import saliency

    device = model_device(model)
    images = probe.on(device, model_dtype(model))
    targets = probe_targets(plan.target, probe, device, len(images))
    result = {
        m: saliency.compute_attribution(model, images, m, targets, **plan.options.get(m, {}))
        for m in plan.methods
    }
    predicted, probability = predictions(model, images) if predict else (None, None)
    return record_from_attributions(result, predicted, probability, max_side=plan.max_side)


def record_from_attributions(
    attributions: dict[str, torch.Tensor],
    predicted: Optional[np.ndarray],
    probability: Optional[np.ndarray],
    *,
    max_side: Optional[int] = None,
) -> MapRecord:
    """The stored form of saliency: uint8 maps (average-pooled to `max_side` first, if larger) and, as
    raw range, (0, the value each map was divided by) so a shared scale compares images (pixels above
    their image's 99th percentile stay clipped)."""
    from tb_plugin_insight import saliency

    maps, ranges = {}, {}
    factor, source = 1, (0, 0)
    for method, attribution in attributions.items():
        if attribution.dim() == 4:
            source = (int(attribution.shape[2]), int(attribution.shape[3]))
            factor = pooling.pool_factor(max(source), max_side)
        heat, scale = saliency.saliency_map_and_scale(attribution, max_side=max_side)
        maps[method] = probe_mod.maps_to_uint8(heat)
        scale = scale.detach().double().cpu().numpy()
        ranges[method] = np.stack([np.zeros_like(scale), scale], axis=1)
    return MapRecord(
        maps=maps,
        predicted=predicted,
        probability=probability,
        ranges=ranges,
        pool_factor=factor,
        source_size=source,
    )


def predictions(model: nn.Module, images: torch.Tensor) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Predicted class and its softmax probability per image, from one side-effect-free forward.

    (None, None) when the output is not (N, classes) scores.
    """
    from tb_plugin_insight.explain.capture import side_effect_free
    from tb_plugin_insight.explain.targets import model_output

    with side_effect_free(model, images), torch.no_grad():
        output = model_output(model(images))
    return predictions_of(output)


def predictions_of(output: torch.Tensor) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Predicted class and its softmax probability per image of a model output (None, None unless the
    output is (N, classes) scores)."""
    if output.dim() != 2:
        return None, None
    probability, predicted = output.detach().float().softmax(dim=1).max(dim=1)
    return predicted.cpu().numpy(), probability.cpu().numpy()
