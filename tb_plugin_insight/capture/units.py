"""Dead and saturated units: per layer and recorded step, the fraction of channels that never activated
and, for modules with bounded outputs, the fraction that sit at a bound.

Measured on the recorded training batch, in the same forward hook as the activation statistics (a probe
forward at every statistics step would cost too much), so "dead" means "dead on that batch".

- Channels (units): the channel dimension of `capture/layout.py`, shared with the token-layer detection
  of capture/health.py: dimension 1 of CNN outputs ((N, C), (N, C, L), (N, C, H, W), ...), the hidden
  dimension (the last) of token layers ((N, L, C) of a Linear, LayerNorm, Embedding, and of the GELU or
  ReLU after a Linear in a transformer's MLP). Outputs with fewer than 2 dimensions have no channels (NaN).
- Dead (only for rectifier modules: ReLU, ReLU6, LeakyReLU, PReLU, GELU, SiLU, Mish, Hardswish, ELU,
  CELU, SELU, and the same from other libraries, e.g. HuggingFace's GELUActivation or timm's GELU, see
  `activation_types`; NaN otherwise): a channel whose maximum over every other dimension is <= 0 (a unit that
  never fired). For other layers "never positive" is no sign of trouble (a logit can be negative on a
  whole batch), so watch the activation modules (the default layer set does).
- Saturated (only for Sigmoid, Tanh, Hardtanh, ReLU6, Hardsigmoid, Softsign, from any library; NaN
  otherwise): a channel with at least 99% of its elements within 1% of the output range of a bound
  (e.g. sigmoid outputs below 0.01 or above 0.99), where the module's gradient is (nearly) zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tb_plugin_insight import metadata
from tb_plugin_insight.capture import activation_types, layout

SATURATION_SHARE = 0.99  # share of a channel's elements that must sit at a bound
SATURATION_TOLERANCE = 0.01  # distance to the bound, as a fraction of the output range


def is_rectifier(module: nn.Module) -> bool:
    """Modules whose units can die: outputs <= 0 for every input of a channel means no gradient
    (recognised from any library, see `capture/activation_types.py`)."""
    return activation_types.is_rectifier(module)


def output_bounds(module: nn.Module) -> tuple[float, float] | None:
    """The (lower, upper) bounds of a module's output, or None when it is not bounded."""
    return activation_types.output_bounds(module)


@torch.no_grad()
def unit_stats(
    x: torch.Tensor,
    dim: int | None,
    bounds: tuple[float, float] | None,
    dtype: torch.dtype = torch.float64,
    *,
    rectifier: bool = True,
) -> torch.Tensor:
    """[deadFraction, saturatedFraction, channels] (metadata.UNIT_FIELDS) of output `x`, on its device.

    `dim`: the channel dimension (None: no channels, all NaN); `bounds`: the module's output bounds
    (None: saturation is NaN); `rectifier`: False leaves the dead fraction NaN.
    """
    x = x.detach()
    nan = math.nan
    if dim is None or x.numel() == 0:
        return x.new_full((len(metadata.UNIT_FIELDS),), nan, dtype=dtype)
    channels = x.shape[dim]
    out = x.new_full((len(metadata.UNIT_FIELDS),), nan, dtype=dtype)  # filled on the device: no sync
    out[2] = channels
    if not rectifier and bounds is None:
        return out  # nothing to measure: no pass over the data
    if not x.is_floating_point():
        x = x.float()
    others = tuple(d for d in range(x.dim()) if d != dim)  # reduce in place: no channel-major copy
    if rectifier:
        out[0] = (x.amax(dim=others) <= 0).sum(dtype=dtype) / channels  # a NaN max is not dead
    if bounds is not None:
        lower, upper = bounds
        tolerance = SATURATION_TOLERANCE * (upper - lower)
        at_bound = (x <= lower + tolerance) | (x >= upper - tolerance)
        share = at_bound.sum(dim=others, dtype=dtype) / (x.numel() // channels)
        out[1] = (share >= SATURATION_SHARE).sum(dtype=dtype) / channels
    return out


class UnitReducer:
    """The per-layer reducer for the recorder: dead and saturated fractions of each watched output, over
    the channels that `layouts` (the watched model's, capture/layout.py) finds."""

    name = "units"
    width = len(metadata.UNIT_FIELDS)
    every = 1  # at every recorded step: a few numbers per layer, as cheap as the statistics

    def __init__(self, layouts: layout.Layouts) -> None:
        self.layouts = layouts

    def __call__(self, index: int, module: nn.Module, x: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        dim, bounds = self.layouts.channel_dim(module, x.shape), output_bounds(module)
        return unit_stats(x, dim, bounds, stats.dtype, rectifier=is_rectifier(module))
