"""Massive activations of token layers, reduced on the device in the statistics' hook.

"Massive activations" (Sun et al. 2024, "Massive Activations in Large Language Models") are a few
hidden dimensions whose values are 100 to 10,000 times the typical magnitude; they appear in most large
transformers, act as fixed biases, and their growth goes with loss spikes and quantisation trouble. Per
token layer and statistics step this records, with peak_c = max |a| of channel c over the batch and
the tokens and m = the (lower) median of the peaks, the number of channels with peak_c > ratio x m and
the MASSIVE_TOP largest peak_c / m with their channel indices (metadata.MASSIVE_FIELDS).

Token layers: 3-D outputs (N, L, C) or (L, N, C) whose last dimension is the hidden one, decided by the
rule the dead-unit statistics share (capture/layout.py): every 3-D output except those that keep channels
first ((N, C, L): 1-D convolutions, pooling, batch/instance norms, and the activations fed by them).
The cost is two reading passes over the output (per-channel max and min, no temporary) and a few
operations on C numbers, all on the device: nothing waits for the host.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tb_plugin_insight import metadata
from tb_plugin_insight.capture import layout

WIDTH = len(metadata.MASSIVE_FIELDS)
TOP = metadata.MASSIVE_TOP


@torch.no_grad()
def massive_activations(x: torch.Tensor, ratio: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """metadata.MASSIVE_FIELDS of a token layer's output `x` (last dimension the hidden one), on its device.

    NaN channel peaks count as 0 (NaN values are counted by the statistics); a median peak of 0 (most
    channels all zero) gives ratios of 0: nothing is massive relative to nothing.
    """
    x = x.detach()
    if x.dim() < 2 or x.numel() == 0:
        return x.new_full((WIDTH,), math.nan, dtype=dtype)
    if not x.is_floating_point():
        x = x.float()
    dims = tuple(range(x.dim() - 1))
    # max |a| per channel as max(max a, -min a): two reading passes without a temporary, several times
    # faster on the CPU than |a| then max, or an infinity norm over the leading dimensions
    peaks = torch.maximum(x.amax(dim=dims), x.amin(dim=dims).neg()).float()
    peaks = torch.nan_to_num(peaks, nan=0.0, posinf=math.inf).abs_()  # abs: no -0.0 from max(0, -0)
    median = peaks.median()
    ratios = torch.where(median > 0, peaks / median, torch.zeros_like(peaks))
    k = min(TOP, ratios.numel())
    top, index = ratios.topk(k)
    head = torch.stack([(ratios > ratio).sum().to(median.dtype), median])
    parts = [head, index.to(median.dtype), top]
    if k < TOP:  # fewer channels than stored ratios: NaN-padded, built on the device (no sync)
        pad = median.new_full((TOP - k,), math.nan)
        parts = [head, index.to(median.dtype), pad, top, pad]
    return torch.cat(parts).to(dtype)


class MassiveReducer:
    """The per-layer reducer (capture/hooks.LayerReducer): massive activations of token layers, NaN
    for the other layers (a fixed width keeps one stacked transfer for every layer)."""

    name = "massive"
    width = WIDTH
    every = 1  # at every statistics step: one pass over the output, as the statistics make several

    def __init__(self, ratio: float, layouts: layout.Layouts) -> None:
        self.ratio = ratio
        self.layouts = layouts  # the watched model's: which outputs are token layers

    def __call__(self, index: int, module: nn.Module, x: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        if not self.layouts.is_token_output(module, x.shape):
            return stats.new_full((WIDTH,), math.nan)
        return massive_activations(x, self.ratio, stats.dtype)
