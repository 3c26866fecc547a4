"""Feature maps of the probe batch: how each layer's output is viewed, which channels, the probe pass.

Every layer output is brought to channel maps (N, C, h, w), by its layout:

* "spatial" (N, C, H, W): each channel an H x W map; outputs laid out channels last (N, H, W, C), as
  Swin's and ConvNeXt's norms and MLPs are, are read as such (`explain.layouts`, the rules of CAMs).
* "volume" (N, C, D, H, W): the H x W slice at one depth (the middle one unless chosen).
* "sequence" (N, C, L) of 1-D convolutions (and what follows them): each channel a 1 x L row, shown as
  a channel x position map.
* "tokens" (N, L, C) of transformers: each channel a 1 x L row over the tokens, shown as a token x
  channel map, or as an s x s grid when L - k is a square s * s after k leading class, distillation or
  register tokens (`explain.layouts.token_grid`).
* Outputs whose batch is not the probe's (Swin's window tensors (N * windows, tokens, C)) have no maps.
* "vector" (N, C), and outputs with a single position (1 x 1, L = 1): one 1 x C channel strip per
  image (no choice of channels: all of them, up to MAX_VECTOR).

Of the C channels, K are stored: the user's (`maps_channels`), or the `maps_k` with the highest mean
activation over the probe at the first maps step. That choice is kept for the whole run, so the step
slider compares the same channels.

Maps larger than `maps_max_side` are average-pooled on the device before they are stored (see
`pooling`): spatial and volume maps over f x f blocks, a token grid as an s x s map (class tokens kept
as they are), and 1 x L rows (sequences, tokens without a grid) along L when L exceeds maps_max_side²
(so a row never holds more pixels than a maps_max_side² map). Vector strips are never pooled: their
entries are channels, not positions. Maps are then quantised to `maps_bits` levels with a per-map
[min, max] (see `quantize`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from tb_plugin_insight import validate
from tb_plugin_insight.capture import activation_types
from tb_plugin_insight.capture import filters as filters_mod
from tb_plugin_insight.capture.outputs import primary_tensor
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.capture.quantize import check_bits, quantize
from tb_plugin_insight.explain import layouts, pooling
from tb_plugin_insight.explain.capture import side_effect_free

logger = logging.getLogger(__name__)

LAYOUTS = ("spatial", "volume", "sequence", "tokens", "vector")
MAX_VECTOR = 4096  # channels of a vector strip (the first ones) in one stored map
_ONE_D_SUFFIX = "1d"
_PASS_THROUGH = ("torch.nn.modules.activation", "torch.nn.modules.dropout")


@dataclasses.dataclass(frozen=True)
class LayerView:
    """How one layer's output is turned into channel maps (see the module docstring)."""

    layout: str
    num_channels: int
    grid_side: int = 0  # tokens: side of the square token grid, 0 if none
    class_tokens: int = 0  # tokens: leading tokens before the grid (class, distillation, register tokens)
    depth_index: int = -1  # volume: the depth slice
    order: int = 0  # position in model.named_modules()
    module_type: str = ""
    shape: tuple[int, ...] = ()  # the output shape of the dry run (one probe image)
    channels_last: bool = False  # spatial: the output is (N, H, W, C), read as (N, C, H, W)


def _square_side(n: int) -> int:
    side = math.isqrt(n)
    return side if side > 1 and side * side == n else 0


def view_of(
    module: nn.Module,
    shape: Sequence[int],
    previous: Optional[LayerView],
    depth: Optional[int],
    image: Optional[tuple[int, int]] = None,
) -> Optional[LayerView]:
    """The view of an output of `shape` from `module`; None for outputs without one (scalars, 6-D...).

    (N, C, L) counts as a sequence when the module is a 1-D one (Conv1d, BatchNorm1d, ...), or an
    activation/dropout right after a sequence layer of the same shape; otherwise as tokens (N, L, C).
    With the probe images' (H, W) as `image`, 4-D outputs laid out channels last (N, H, W, C) are read
    as such and token grids may follow up to 16 leading class/register tokens, by the rules of CAMs
    (`explain.layouts`).
    """
    if len(shape) == 2:
        return LayerView("vector", int(shape[1]))
    if len(shape) == 4:
        last = image is not None and layouts.infer_4d(tuple(shape), image, module) == "nhwc"
        c, h, w = (shape[3], shape[1], shape[2]) if last else (shape[1], shape[2], shape[3])
        if h * w == 1:
            return LayerView("vector", int(c))
        return LayerView("spatial", int(c), channels_last=last)
    if len(shape) == 5:
        d = int(shape[2]) // 2 if depth is None else depth
        if not 0 <= d < shape[2]:
            raise ValueError(
                f"maps_depth {depth} is outside the layer's {shape[2]} depth slices (0..{shape[2] - 1})"
            )
        return LayerView("volume", int(shape[1]), depth_index=d)
    if len(shape) == 3:
        one_d = type(module).__name__.endswith(_ONE_D_SUFFIX)
        follows = (
            (type(module).__module__ in _PASS_THROUGH or activation_types.is_activation(module))
            and previous is not None
            and previous.layout == "sequence"
        )
        if one_d or follows:
            return LayerView("vector" if shape[2] == 1 else "sequence", int(shape[1]))
        tokens = int(shape[1])
        if tokens == 1:
            return LayerView("vector", int(shape[2]))
        grid = layouts.token_grid(tokens, image) if image is not None else None
        if grid is not None and grid[1] == grid[2]:
            return LayerView("tokens", int(shape[2]), grid_side=grid[1], class_tokens=grid[0])
        side = _square_side(tokens)
        cls = 0
        if not side:
            side = _square_side(tokens - 1)
            cls = 1 if side else 0
        return LayerView("tokens", int(shape[2]), grid_side=side, class_tokens=cls)
    return None


def channel_maps(output: torch.Tensor, view: LayerView) -> torch.Tensor:
    """(N, C, h, w) channel maps of a layer output (a view where possible, no copy)."""
    if view.layout == "spatial":
        return output.permute(0, 3, 1, 2) if view.channels_last else output
    if view.layout == "volume":
        return output[:, :, view.depth_index]
    if view.layout == "sequence":
        return output.unsqueeze(2)
    if view.layout == "tokens":
        return output.transpose(1, 2).unsqueeze(2)
    if view.layout == "vector":
        flat = output.reshape(output.shape[0], -1)[:, :MAX_VECTOR]
        return flat.reshape(flat.shape[0], 1, 1, flat.shape[1])
    raise ValueError(f"unknown layout {view.layout!r}; expected one of {', '.join(LAYOUTS)}")


@dataclasses.dataclass(frozen=True)
class Pooling:
    """How one layer's channel maps (N, C, h, w) are pooled before storage (factor 1: not at all)."""

    factor: int = 1
    grid_side: int = 0  # tokens with a grid: the side of the stored (pooled) grid

    def apply(self, maps: torch.Tensor, view: LayerView) -> torch.Tensor:
        """The stored maps: (N, C, h', w') block means (see the module docstring)."""
        if self.factor <= 1:
            return maps
        if view.layout == "tokens" and view.grid_side:
            head = maps[..., : view.class_tokens].float()
            grid = maps[..., view.class_tokens :].reshape(*maps.shape[:2], view.grid_side, view.grid_side)
            pooled = pooling.pool_2d(grid, self.factor).flatten(start_dim=2).unsqueeze(2)
            return torch.cat([head, pooled], dim=-1)
        if maps.shape[-2] == 1:
            return pooling.pool_rows(maps, self.factor)
        return pooling.pool_2d(maps, self.factor)


def pooling_of(view: LayerView, height: int, width: int, max_side: Optional[int]) -> Pooling:
    """The pooling of a layer's h x w channel maps under `maps_max_side` (see the module docstring)."""
    if max_side is None or view.layout == "vector":
        return Pooling()
    if view.layout == "tokens" and view.grid_side:
        factor = pooling.pool_factor(view.grid_side, max_side)
        return Pooling(factor, pooling.pooled_side(view.grid_side, factor))
    if height == 1:
        return Pooling(pooling.pool_factor(width, max_side * max_side))
    return Pooling(pooling.pool_factor(max(height, width), max_side))


def most_active(maps: torch.Tensor, k: int) -> list[int]:
    """Indices of the k channels of (N, C, h, w) maps with the highest mean activation (NaN counts as 0),
    most active first; ties go to the lower index."""
    means = torch.nan_to_num(maps.detach().float(), nan=0.0, posinf=0.0, neginf=0.0).mean(dim=(0, 2, 3))
    order = torch.sort(means, descending=True, stable=True).indices
    return [int(i) for i in order[: min(k, maps.shape[1])].tolist()]


def check_channels(layer: str, indices: Any, num_channels: int) -> tuple[int, ...]:
    """The user's channel indices for `layer`, validated against its channel count.

    Raises:
        TypeError / ValueError: not a list of ints, empty, repeated or out-of-range indices; the message
            says the valid range.
    """
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence):
        raise TypeError(f"maps_channels[{layer!r}] must be a list of channel indices, got {indices!r}")
    values = list(indices)
    if not values:
        raise ValueError(
            f"maps_channels[{layer!r}] is empty: give at least one channel index, or leave the layer out"
        )
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"maps_channels[{layer!r}] must hold ints, got {value!r}")
    bad = [int(v) for v in values if not 0 <= v < num_channels]
    if bad:
        raise ValueError(
            f"maps_channels[{layer!r}] has indices {bad} outside the layer's {num_channels} channels:"
            f" use indices 0..{num_channels - 1}"
        )
    if len(set(values)) != len(values):
        raise ValueError(f"maps_channels[{layer!r}] repeats a channel index: give each channel once")
    return tuple(int(v) for v in values)


@dataclasses.dataclass
class FeatureMapRecord:
    """One layer's stored maps at one step: codes (N, K, h, w) uint8 and scales (N, K, 2) float32.

    `source_size` is the (h, w) of a map before pooling, `pooling` how it was pooled to (h, w).
    """

    codes: np.ndarray
    scales: np.ndarray
    channels: tuple[int, ...]
    view: LayerView
    user_channels: bool
    source_size: tuple[int, int] = (0, 0)
    pooling: Pooling = Pooling()
    bits: int = 8


@dataclasses.dataclass
class MapsPlan:
    """What watch(..., maps_every=...) records: validated once at watch() time."""

    every: int
    k: int
    views: dict[str, LayerView]  # layer name -> view, in model order
    user_channels: dict[str, tuple[int, ...]]
    filter_layers: tuple[str, ...]
    max_side: Optional[int] = 32  # maps_max_side (None: full resolution)
    bits: int = 6  # maps_bits


def _check_every(value: Any) -> int:
    message = f"maps_every must be a non-negative int (steps between feature maps, 0 = never), got {value!r}"
    return validate.int_option(value, message, low=0)


def _check_depth(layer_names: Sequence[str], depth: Any) -> dict[str, int]:
    if depth is None:
        return {}
    if isinstance(depth, Mapping):
        unknown = [name for name in depth if name not in layer_names]
        if unknown:
            raise ValueError(
                f"maps_depth names layers without feature maps: {unknown};"
                f" maps are recorded for: {list(layer_names)[:10]}"
            )
        items = dict(depth)
    else:
        items = {name: depth for name in layer_names}
    for name, value in items.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"maps_depth for {name!r} must be an int depth index, got {value!r}")
    return items


def output_shapes(
    model: nn.Module, sample: torch.Tensor, modules: Sequence[tuple[str, nn.Module]]
) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(name, module, output shape) of `modules` in the order they finish in one side-effect-free forward
    of `sample` (first call only; modules not called or without a tensor output are left out)."""
    seen: dict[str, tuple[int, ...]] = {}
    order: list[tuple[str, nn.Module, tuple[int, ...]]] = []

    def hook_for(name: str, module: nn.Module) -> Any:
        def hook(mod: nn.Module, args: Any, output: Any) -> None:
            tensor = primary_tensor(output)
            if name not in seen and tensor is not None:
                seen[name] = tuple(tensor.shape)
                order.append((name, module, tuple(tensor.shape)))

        return hook

    handles = [module.register_forward_hook(hook_for(name, module)) for name, module in modules]
    try:
        with side_effect_free(model, sample), torch.no_grad():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    return order


def plan_feature_maps(
    model: nn.Module,
    probe: Optional[Probe],
    *,
    every: Any,
    k: Any,
    layers: Sequence[tuple[str, nn.Module]],
    channels: Optional[Mapping[str, Sequence[int]]],
    depth: Any,
    filter_layers: Any,
    device: torch.device,
    stage_ends_only: bool = False,
    max_side: Any = 32,
    bits: Any = 6,
) -> Optional[MapsPlan]:
    """Validate feature-map and filter options with a dry run on one probe image (None: nothing to record).

    Raises:
        ValueError / TypeError: bad maps_every / maps_k / maps_max_side / maps_bits, maps_channels or
            maps_depth naming layers that have no feature maps or bad indices, filters_layers that are
            not convolutions, maps options without a probe (each message names the fix).

    With `stage_ends_only`, only the last layer of each stage keeps its maps (see `stage_ends`), plus
    the layers named in `channels`.
    """
    every = _check_every(every)
    validate.int_option(k, f"maps_k must be a positive int (channels per layer), got {k!r}")
    max_side = pooling.check_max_side("maps_max_side", max_side)
    bits = check_bits("maps_bits", bits)
    filters = filters_mod.plan_filters(model, filter_layers)
    if not every:
        return None
    if probe is None:
        if channels:
            raise ValueError(
                "maps_channels needs a probe batch: pass probe=(images, labels) or call set_probe"
            )
        # Without a probe, filters only when asked for by name (a run without a probe stays stats-only).
        if filters and filter_layers:
            return MapsPlan(every, k, {}, {}, filters, max_side, bits)
        return None
    names = [name for name, _ in layers]
    depths = _check_depth(names, depth)
    # two images when there are: outputs whose batch is not the probe's (Swin's (N * windows, ...)
    # window tensors) have no maps of the probe's images
    sample = probe.on(device)[:2]
    image = (int(sample.shape[-2]), int(sample.shape[-1]))
    shapes = [
        (name, module, (1, *shape[1:]))
        for name, module, shape in output_shapes(model, sample, layers)
        if shape and shape[0] == len(sample)
    ]
    orders = {name: i for i, (name, _) in enumerate(model.named_modules())}
    views: dict[str, LayerView] = {}
    previous: Optional[LayerView] = None
    for name, module, shape in shapes:
        try:
            view = view_of(module, shape, previous, depths.get(name), image)
        except ValueError as err:
            raise ValueError(f"layer {name!r}: {err}") from None
        previous = view
        if view is not None:
            views[name] = dataclasses.replace(
                view, order=orders.get(name, 0), module_type=type(module).__name__, shape=shape
            )
    by_order = {name: i for i, name in enumerate(names)}
    views = dict(sorted(views.items(), key=lambda item: by_order[item[0]]))
    user: dict[str, tuple[int, ...]] = {}
    for name, indices in (channels or {}).items():
        if name not in views:
            hint = (
                f"layers with feature maps: {', '.join(list(views)[:10])}"
                if views
                else "no layer has feature maps"
            )
            raise ValueError(
                f"maps_channels names {name!r}, which has no feature maps ({hint}); watch it or fix the name"
            )
        if views[name].layout == "vector":
            raise ValueError(
                f"maps_channels[{name!r}]: layer {name!r} has a vector output (N, C), shown as one strip"
                " of all its channels; leave it out of maps_channels"
            )
        user[name] = check_channels(name, indices, views[name].num_channels)
    if stage_ends_only:
        keep = set(stage_ends(views)) | set(user)
        views = {name: view for name, view in views.items() if name in keep}
    return MapsPlan(every, k, views, user, filters, max_side, bits)


def stage_ends(views: Mapping[str, LayerView]) -> list[str]:
    """The last layer of each stage: of every run of consecutive layers (in model order) whose maps
    have the same layout and size, the last one. A ResNet-18 gets one layer per resolution (the output
    of each residual stage), not its ~50 convolutions, norms and activations, which would store ~4.8 MB
    of maps per maps step instead of a few hundred KB."""
    ends: list[str] = []
    previous_key: Optional[tuple[Any, ...]] = None
    for name, view in views.items():
        key = (view.layout, tuple(view.shape[2:]) if view.layout != "tokens" else tuple(view.shape[1:2]))
        if ends and key == previous_key:
            ends[-1] = name
        else:
            ends.append(name)
        previous_key = key
    return ends


class FeatureMapRecorder:
    """Runs the probe pass of a MapsPlan and keeps each layer's channel choice for the whole run."""

    def __init__(self, plan: MapsPlan) -> None:
        self.plan = plan
        self.channels: dict[str, tuple[int, ...]] = dict(plan.user_channels)

    def run(self, model: nn.Module, images: torch.Tensor) -> dict[str, FeatureMapRecord]:
        """One side-effect-free forward of the probe under no_grad with a hook on each mapped layer."""
        if not self.plan.views:
            return {}
        with self.hooked(model) as taken, side_effect_free(model, images), torch.no_grad():
            model(images)
        return self.records(taken)

    @contextlib.contextmanager
    def hooked(self, model: nn.Module) -> Iterator[TakenMaps]:
        """Hooks on the mapped layers while inside: the first call of each, in any forward (also one
        shared with CAMs and saliency, see `probe_pass`), is selected, pooled and quantised at once, so
        later in-place ops of the model cannot change what is stored. A hook that fails keeps its error
        in the TakenMaps (raised by `records`) and lets the forward go on."""
        taken = TakenMaps()
        modules = dict(model.named_modules())
        handles = [
            modules[name].register_forward_hook(self._hook(name, view, taken))
            for name, view in self.plan.views.items()
            if name in modules
        ]
        try:
            yield taken
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, name: str, view: LayerView, taken: TakenMaps) -> Any:
        plan = self.plan

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if taken.error is not None:
                return
            try:
                tensor = primary_tensor(output)
                if name in taken.pending or tensor is None:
                    return
                maps = channel_maps(tensor.detach(), view)
                if view.layout != "vector":
                    if name not in self.channels:
                        self.channels[name] = tuple(most_active(maps, plan.k))
                    index = torch.tensor(self.channels[name], device=maps.device)
                    maps = maps.index_select(1, index)
                source = (int(maps.shape[-2]), int(maps.shape[-1]))
                pool = pooling_of(view, *source, plan.max_side)
                # Both copy now: later in-place ops of the model cannot change what is stored.
                codes, scales = quantize(pool.apply(maps, view), bits=plan.bits)
                taken.pending[name] = (codes, scales, source, pool)
            except Exception as err:  # noqa: BLE001 - raised by records(): it stops feature maps only
                taken.error = err

        return hook

    def records(self, taken: TakenMaps) -> dict[str, FeatureMapRecord]:
        """The stored form of what the hooks took (host arrays), in plan order."""
        if taken.error is not None:
            raise taken.error
        records = {}
        for name, view in self.plan.views.items():
            if name not in taken.pending:
                continue
            codes, scales, source, pool = taken.pending.pop(name)
            channels = self.channels.get(name, ()) if view.layout != "vector" else ()
            records[name] = FeatureMapRecord(
                codes.cpu().numpy(),
                scales.cpu().numpy(),
                channels,
                view,
                name in self.plan.user_channels,
                source,
                pool,
                self.plan.bits,
            )
        return records


@dataclasses.dataclass
class TakenMaps:
    """What the hooks of one probe forward took: per layer (codes, scales, source size, pooling)."""

    pending: dict[str, tuple[torch.Tensor, torch.Tensor, tuple[int, int], Pooling]] = dataclasses.field(
        default_factory=dict
    )
    error: Optional[Exception] = None
