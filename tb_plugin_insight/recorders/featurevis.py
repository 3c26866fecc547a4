"""Feature visualisations every `featurevis_every` steps: per layer, the input each chosen channel responds
to most (explain/featurevis.py), optimised just before that step's training forward, so a user sees what
a channel learned and when.

It takes part in the probe pass's schedule (`due`, `record_probe`) but needs no probe forward: the
probe, when there is one, only sets the images' size and value range and picks the channels.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from tb_plugin_insight import records
from tb_plugin_insight.capture import cam_layer, maps
from tb_plugin_insight.capture import feature_maps as fmaps
from tb_plugin_insight.capture import probe as probe_mod
from tb_plugin_insight.capture.probe_pass import SharedMaps
from tb_plugin_insight.explain import featurevis
from tb_plugin_insight.explain.capture import resolve_layer
from tb_plugin_insight.options import FeatureVis
from tb_plugin_insight.recorders.base import Recorder, RecordSink, WatchContext

logger = logging.getLogger(__name__)

SEED = 0  # the same seed at every step: the images change only because the model does
DEFAULT_SIZE = 32  # image side without a probe


@dataclasses.dataclass
class VisLayer:
    """One visualised layer: its name, output shape, and the user's channels (None: chosen at run time)."""

    name: str
    order: int
    module_type: str
    shape: tuple[int, ...]
    user_channels: Optional[tuple[int, ...]]


@dataclasses.dataclass
class FeatureVisPlan:
    """What a watch visualises, checked at watch() time."""

    every: int
    k: int
    layers: list[VisLayer]
    image_channels: int
    size: tuple[int, int]
    steps: int
    input_range: tuple[torch.Tensor, torch.Tensor]  # per input channel, (1, C, 1, 1) each


def plan_featurevis(
    model: nn.Module, probe: Optional[probe_mod.Probe], options: FeatureVis
) -> FeatureVisPlan:
    """Check the options against the model with one forward of a sample and a one-step dry run.

    Raises:
        ValueError / TypeError: unknown layers, layers without an (N, C, ...) output, channel indices out
            of range (each message names the option).
    """
    if probe is not None:
        sample = probe.on(maps.model_device(model), maps.model_dtype(model))[:1]
        low = probe.images.amin(dim=(0, 2, 3)).reshape(1, -1, 1, 1).float()
        high = probe.images.amax(dim=(0, 2, 3)).reshape(1, -1, 1, 1).float()
    else:
        c = featurevis.input_channels(model)
        side = options.size or DEFAULT_SIZE
        sample = torch.zeros(1, c, side, side, device=maps.model_device(model), dtype=maps.model_dtype(model))
        low, high = torch.zeros(1, c, 1, 1), torch.ones(1, c, 1, 1)
    c, height, width = sample.shape[1:]
    size = (options.size, options.size) if options.size else (int(height), int(width))
    given = options.layers
    if given is None and isinstance(options.channels, Mapping):
        given = list(options.channels)  # {layer: [indices]} names the layers
    names = _layer_names(model, given, sample)
    modules = dict(model.named_modules())
    orders = {name: i for i, name in enumerate(modules)}
    shapes = {
        name: shape for name, _, shape in fmaps.output_shapes(model, sample, [(n, modules[n]) for n in names])
    }
    layers = []
    for name in names:
        shape = shapes.get(name)
        if shape is None or len(shape) < 2:
            raise ValueError(
                f"featurevis_layers: layer {name!r} has no (N, C, ...) tensor output in a forward of the"
                " probe: choose a layer with channels"
            )
        user = _user_channels(options.channels, name, shape[1])
        layers.append(VisLayer(name, orders[name], type(modules[name]).__name__, shape, user))
        featurevis.visualize(model, name, [user[0] if user else 0], size=size, steps=1, seed=SEED,
                             image_channels=int(c), input_range=(low, high))  # fmt: skip
    k = options.channels if isinstance(options.channels, int) else 0
    return FeatureVisPlan(options.every, k, layers, int(c), size, options.steps, (low, high))


def _layer_names(model: nn.Module, layers: Any, sample: torch.Tensor) -> list[str]:
    if layers is None:
        name = cam_layer.choose_cam_layer(model, sample, allowed=("nchw",)).name
        logger.warning(
            "Insight: feature visualisations of layer %r (the last spatial layer; set featurevis_layers=)",
            name,
        )
        return [name]
    chosen = [layers] if isinstance(layers, (str, nn.Module)) else layers
    if not isinstance(chosen, Sequence) or not chosen:
        raise TypeError(f"featurevis_layers must be a layer name or a list of them, got {layers!r}")
    try:
        return list(dict.fromkeys(resolve_layer(model, layer)[0] for layer in chosen))
    except (ValueError, TypeError) as err:
        raise type(err)(f"featurevis_layers: {err}") from None


def _user_channels(channels: Any, layer: str, num_channels: int) -> Optional[tuple[int, ...]]:
    """The channels given for `layer` (None when they are to be chosen: an int k)."""
    if isinstance(channels, int):
        return None
    if isinstance(channels, Mapping):
        if layer not in channels:
            raise ValueError(
                f"featurevis_channels has no entry for layer {layer!r} of featurevis_layers: give its"
                " channels, or an int k for every layer"
            )
        channels = channels[layer]
    try:
        indices = featurevis.check_channels(channels)
    except (ValueError, TypeError) as err:
        raise type(err)(f"featurevis_channels for layer {layer!r}: {err}") from None
    bad = [i for i in indices if i >= num_channels]
    if bad:
        raise ValueError(
            f"featurevis_channels: indices {bad} are outside layer {layer!r}'s {num_channels} channels:"
            f" use 0..{num_channels - 1}"
        )
    return indices


class FeatureVisRecorder(Recorder):
    """`watch(featurevis_every=..., featurevis_layers=..., featurevis_channels=...)` or
    `featurevis=FeatureVis(...)`."""

    name = "featurevis"
    options_keyword = "featurevis"
    options_group = FeatureVis
    probe_role = "featurevis"

    def __init__(self, sink: RecordSink, plan: FeatureVisPlan) -> None:
        super().__init__()
        self.sink = sink
        self.plan = plan
        self.channels: dict[str, tuple[int, ...]] = {
            layer.name: layer.user_channels for layer in plan.layers if layer.user_channels
        }
        # The feature-maps view's chosen channels per layer (the same dict its recorder fills), set by
        # WatchSession when both record.
        self.maps_channels: Mapping[str, tuple[int, ...]] = {}

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        options: FeatureVis = ctx.options["featurevis"]
        if not options.every:
            return None
        return cls(ctx.sink, plan_featurevis(ctx.model, ctx.probe, options))

    def due(self, step: int) -> bool:
        return not self.failed and step % self.plan.every == 0

    def record_probe(self, step: int, model: nn.Module, shared: SharedMaps) -> None:
        try:
            images = {}
            for layer in self.plan.layers:
                channels = self._channels_of(model, layer)
                result = featurevis.visualize(
                    model, layer.name, channels, size=self.plan.size, steps=self.plan.steps, seed=SEED,
                    image_channels=self.plan.image_channels, input_range=self.plan.input_range,
                )  # fmt: skip
                images[layer.name] = (to_uint8(result), channels)
            self.sink.enqueue(records.feature_vis, images, self.plan.layers, step=step)
        except Exception:  # noqa: BLE001 - recording must never break the user's training
            self.stop("Insight stopped recording feature visualisations")

    def _channels_of(self, model: nn.Module, layer: VisLayer) -> tuple[int, ...]:
        """The layer's channels, fixed at its first visualisation: the user's, the feature-maps view's
        first k, or the k most active on the probe (0..k-1 without one)."""
        if layer.name not in self.channels:
            k = self.plan.k
            shown = self.maps_channels.get(layer.name)
            probe = self.sink.probe()
            if shown:
                chosen = tuple(shown[:k])
            elif probe is not None:
                images = probe.on(maps.model_device(model), maps.model_dtype(model))
                means = featurevis.channel_activations(model, layer.name, images, range(layer.shape[1]))
                chosen = tuple(fmaps.most_active(means[:, :, None, None], k))
            else:
                chosen = tuple(range(min(k, layer.shape[1])))
            self.channels[layer.name] = chosen
        return self.channels[layer.name]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(K, h, w, 3) RGB for 3-channel inputs, else (K, h, w) grayscale (1 channel, or the mean of the
    channels), each image min-max stretched over all its channels to 0..255."""
    x = images.detach().float()
    x = x if x.shape[1] == 3 else x.mean(dim=1, keepdim=True)
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    scaled = ((x - lo) / (hi - lo).clamp_min(1e-12) * 255).round().clamp(0, 255).to(torch.uint8)
    out = scaled.permute(0, 2, 3, 1).cpu().numpy()
    return np.ascontiguousarray(out if out.shape[-1] == 3 else out[..., 0])
