"""Map passes on the probe batch: which layer and methods, and the uint8 maps to store per step."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from tb_plugin_insight import cam
from tb_plugin_insight.capture import probe as probe_mod
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.explain.capture import resolve_layer

__all__ = ["CamPlan", "MapRecord", "model_device", "plan_cams", "resolve_layer", "run_cams"]

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


@dataclasses.dataclass
class MapRecord:
    """One step's maps of a probe, ready for the summary builders."""

    maps: dict[str, np.ndarray]  # method -> (N, H, W) uint8
    predicted: Optional[np.ndarray]  # (N,) class indices
    probability: Optional[np.ndarray]  # (N,)


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live now (it may have moved since watch())."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


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
    sample = probe.on(model_device(model))[:1]
    if layer is None:
        name, auto = probe_mod.find_last_spatial_layer(model, sample), True
        logger.warning(
            "Insight: CAMs explain layer %r (the last spatial layer; set cam_layer= to change)", name
        )
    else:
        name, auto = resolve_layer(model, layer)[0], False
    cam.compute_cams(model, sample, name, list(names), targets=_targets(target, probe, sample.device, 1))
    return CamPlan(every, name, names, target, auto)


def _targets(target: str, probe: Probe, device: torch.device, n: int) -> Optional[torch.Tensor]:
    if target == "label" and probe.labels is not None:
        return probe.labels[:n].to(device)
    return None


def run_cams(model: nn.Module, probe: Probe, plan: CamPlan) -> MapRecord:
    """Compute the plan's CAMs of the whole probe (one forward, one short backward)."""
    device = model_device(model)
    images = probe.on(device)
    result = cam.compute_cams(
        model,
        images,
        plan.layer,
        list(plan.methods),
        targets=_targets(plan.target, probe, device, len(images)),
        upsample=False,  # stored at the layer's resolution; the browser upsamples
    )
    return MapRecord(
        maps={method: probe_mod.maps_to_uint8(maps) for method, maps in result.items()},
        predicted=None if result.predicted is None else result.predicted.cpu().numpy(),
        probability=None if result.probability is None else result.probability.float().cpu().numpy(),
    )
