"""CAM and saliency maps of the probe: the plans recorders check at watch() time, and the stored form
(uint8 maps, predictions, raw ranges) of what the shared probe pass computed."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from tb_plugin_insight.capture import probe as probe_mod
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.explain import cam, pooling, saliency

__all__ = [
    "CamPlan",
    "MapRecord",
    "SaliencyPlan",
    "model_device",
    "model_dtype",
    "predictions",
    "predictions_of",
    "probe_targets",
]


@dataclasses.dataclass(frozen=True)
class CamPlan:
    """What watch(..., cam_every=...) records: one layer, several methods sharing one pass."""

    every: int
    layer: str
    methods: tuple[str, ...]
    target: str  # "predicted" or "label"
    auto_selected: bool
    layer_reason: str = ""  # why this layer: shown in the tab (capture/cam_layer.py)
    layout: Optional[str] = None  # cam_layout: declared layout of the layer output (None: inferred)
    reshape_transform: Any = dataclasses.field(default=None, compare=False)  # cam_reshape_transform


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
    # CAMs: how the layer output was read ("nchw", "nhwc", "tokens", "custom") and why that layer
    layout: str = ""
    layer_reason: str = ""


def record_from_cams(result: cam.CamResult, layer_reason: str = "") -> MapRecord:
    """The stored form of compute_cams' result: uint8 maps, predictions and raw ranges (and, for the
    tab, the layout the layer was read in and `layer_reason`)."""
    return MapRecord(
        maps={method: probe_mod.maps_to_uint8(maps) for method, maps in result.items()},
        predicted=None if result.predicted is None else result.predicted.cpu().numpy(),
        probability=None if result.probability is None else result.probability.float().cpu().numpy(),
        ranges={method: r.detach().double().cpu().numpy() for method, r in result.raw_range.items()},
        layout=result.layout,
        layer_reason=layer_reason,
    )


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live now (it may have moved since watch())."""
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> Optional[torch.dtype]:
    """The floating dtype of the model's parameters now (it may have changed since watch()), if any."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def probe_targets(target: str, probe: Probe, device: torch.device, n: int) -> Optional[torch.Tensor]:
    """The `targets` of the first `n` probe images for a plan's target: the labels, or None (predicted)."""
    if target == "label" and probe.labels is not None:
        return probe.labels[:n].to(device)
    return None


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
    maps, ranges = {}, {}
    factor, source = 1, (0, 0)
    for method, attribution in attributions.items():
        if attribution.dim() == 4:
            source = (int(attribution.shape[2]), int(attribution.shape[3]))
            factor = pooling.pool_factor(max(source), max_side)
        heat, scale = saliency.saliency_map_and_scale(attribution, max_side=max_side)
        maps[method] = probe_mod.maps_to_uint8(heat)
        divisors = scale.detach().double().cpu().numpy()
        ranges[method] = np.stack([np.zeros_like(divisors), divisors], axis=1)
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
