"""Convolution weights as image tiles, so a user watches kernels form over training.

A Conv2d weight (O, I, kh, kw) with I == 3 becomes one RGB tile per filter (the input channels as red,
green, blue, scaled together by the filter's [min, max], as AlexNet's first-layer figure shows them);
any other weight becomes one grayscale tile per (filter, input channel), each with its own [min, max].
At most MAX_FILTERS filters and MAX_INPUTS input channels (the first ones) are stored. 1-D kernels
become 1 x k tiles, 3-D kernels their middle depth slice.

Under FSDP2 (`fully_shard`) a weight is a DTensor split along its filters (Shard(0)) across the ranks.
Gathering it whole (`full_tensor`) is a collective that every rank would have to start at the same
point, also after one rank's recorder failed; each rank instead draws the filters it holds, with their
indices in the whole layer (rank 0, the writing rank by default, records the first ones). Tiles are
scaled per filter, so a filter's tile is the one the unsharded layer gives. A weight split otherwise (a
transposed convolution's input channels, a 2-D mesh) raises ShardedFilters: the caller skips the layer.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from tb_plugin_insight.capture.quantize import quantize

MAX_FILTERS = 64
MAX_INPUTS = 16
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class ShardedFilters(ValueError):
    """A layer whose sharded weight holds no whole filters on this rank: its tiles are not recorded."""


@dataclasses.dataclass
class FilterRecord:
    """One layer's filters at one step.

    rgb: codes (O, 1, kh, kw, 3), scales (O, 1, 2). gray: codes (O, I, kh, kw), scales (O, I, 2).
    """

    layout: str  # "rgb" or "gray"
    codes: np.ndarray
    scales: np.ndarray
    filters: tuple[int, ...]
    inputs: tuple[int, ...]
    num_filters: int
    module_type: str = ""
    shape: tuple[int, ...] = ()  # the weight's shape


def first_conv(model: nn.Module) -> Optional[str]:
    """Qualified name of the model's first convolution (in named_modules order), or None."""
    for name, module in model.named_modules():
        if isinstance(module, _CONVS):
            return name
    return None


def plan_filters(model: nn.Module, names: Any) -> tuple[str, ...]:
    """The layers whose filters are recorded: the first convolution plus `names` (validated).

    Raises:
        ValueError / TypeError: unknown names (close matches listed) or modules that are not convolutions.
    """
    chosen = [first_conv(model)]
    if names is not None:
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise TypeError(f"filters_layers must be a list of layer names, got {names!r}: use [{names!r}]")
        modules = dict(model.named_modules())
        for name in names:
            if not isinstance(name, str) or name not in modules:
                close = difflib.get_close_matches(str(name), [n for n in modules if n], n=5, cutoff=0.5)
                hint = f" Did you mean: {', '.join(close)}?" if close else ""
                raise ValueError(f"filters_layers: the model has no module named {name!r}.{hint}")
            if not isinstance(modules[name], _CONVS):
                raise ValueError(
                    f"filters_layers: {name!r} is a {type(modules[name]).__name__}, not a convolution;"
                    " name Conv1d/Conv2d/Conv3d layers"
                )
            chosen.append(name)
    return tuple(dict.fromkeys(n for n in chosen if n is not None))


def kernel_tiles(weight: torch.Tensor) -> torch.Tensor:
    """(O, I, kh, kw) from a 1-D, 2-D or 3-D convolution weight (3-D: the middle depth slice)."""
    w = weight.detach()
    if w.dim() == 3:
        return w.unsqueeze(2)
    if w.dim() == 5:
        return w[:, :, w.shape[2] // 2]
    if w.dim() == 4:
        return w
    raise ValueError(f"a convolution weight has 3 to 5 dimensions, got shape {tuple(w.shape)}")


def local_rows(weight: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The rows (dim 0) of `weight` this rank holds as a plain tensor, and the index of the first: all of
    it for a plain or replicated tensor, this rank's Shard(0) chunk (torch.chunk's split) of a DTensor.

    Raises:
        ShardedFilters: a DTensor split along another dimension or over a mesh of several dimensions.
    """
    placements = getattr(weight, "placements", None)
    if placements is None:
        return weight, 0
    local = weight.to_local()  # type: ignore[attr-defined]
    if not any(p.is_shard() for p in placements):
        return local, 0
    mesh = weight.device_mesh  # type: ignore[attr-defined]
    coordinate = mesh.get_coordinate()
    if len(placements) != 1 or not placements[0].is_shard(dim=0) or not coordinate:
        raise ShardedFilters(f"its weight is split as {tuple(placements)}, not along its first dimension")
    rows = int(weight.shape[0])
    chunk = -(-rows // mesh.size())
    first = min(coordinate[0] * chunk, rows)
    if int(local.shape[0]) != min(chunk, rows - first):
        raise ShardedFilters(f"its local shard has {local.shape[0]} of {rows} rows, not a chunk of them")
    return local, first


def filter_record(module: nn.Module) -> FilterRecord:
    """The stored tiles of a convolution's current weights (under FSDP2, the filters this rank holds).

    Raises:
        ShardedFilters: the weight is sharded but not along the filters, or this rank holds none of them.
    """
    conv_weight = module.weight
    assert isinstance(conv_weight, torch.Tensor)  # plan_filters chose convolutions
    shape = tuple(conv_weight.shape)
    held, first = local_rows(conv_weight)
    weight = kernel_tiles(held)
    transposed = isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
    if transposed:
        if held is not conv_weight and int(held.shape[0]) != shape[0]:
            raise ShardedFilters("a transposed convolution's weight is split along its input channels")
        weight = weight.transpose(0, 1)  # (in, out, ...) -> (out, in, ...)
    if weight.shape[0] == 0:
        raise ShardedFilters(f"this rank's shard holds none of its {shape[0]} filters")
    num_filters = shape[1] if transposed else shape[0]
    w = weight[:MAX_FILTERS]
    filters = tuple(range(first, first + int(w.shape[0])))
    if w.shape[1] == 3:
        codes, scales = quantize(w.permute(0, 2, 3, 1).unsqueeze(1), map_dims=3)
        return FilterRecord(
            "rgb", codes.cpu().numpy(), scales.double().cpu().numpy(), filters, (0, 1, 2), num_filters,
            type(module).__name__, shape,
        )  # fmt: skip
    w = w[:, :MAX_INPUTS]
    codes, scales = quantize(w)
    inputs = tuple(range(w.shape[1]))
    return FilterRecord(
        "gray", codes.cpu().numpy(), scales.double().cpu().numpy(), filters, inputs, num_filters,
        type(module).__name__, shape,
    )  # fmt: skip
