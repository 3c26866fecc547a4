"""FullGrad (Srinivas & Fleuret, NeurIPS 2019): input-gradient x input plus every bias's gradient x bias.

The full-gradient decomposition writes a ReLU network's score as the input gradient times the input plus,
for every bias b of the network, the gradient at b times b. The saliency map keeps the spatial parts:

    map = sum_c post(|x * dS/dx|_c) + sum over bias layers l: sum_c post(|b_l,c * dS/dz_l,c|)

where z_l is the output of layer l, b_l its bias broadcast over positions and `post` min-max scales one
channel of one image to [0, 1] (as `(t - min) / (max - min + 1e-7)`, the epsilon of pytorch-grad-cam) and
resizes it bilinearly to the input size. The sum is then scaled to [0, 1] per image like every CAM.

Bias layers, as in pytorch-grad-cam's `FullGrad` and the authors' code: every `nn.Conv2d` with a bias,
and every `nn.BatchNorm2d` (or `SyncBatchNorm`) with affine parameters and running statistics, whose
bias in eval mode is `beta - running_mean * gamma / sqrt(running_var + eps)`. Linear layers' biases have no
position in the image (their gradient is one number per unit), so the map leaves them out, as both
reference implementations do. A layer called several times in one forward contributes one term per call.

No target layer is needed. Cost: one forward that records gradients from the input on, and a full
backward (about 3 forwards), with every bias layer's output kept for the backward.

Side effects: none beyond those of the caller's `side_effect_free` (eval mode, RNG): gradients come from
one `torch.autograd.grad` call with respect to a copy of the input and the bias layers' outputs, so no
parameter's `.grad` is written; downstream layers get copies of the hooked outputs (so in-place operations
after a convolution cannot change them); the hooks are removed in `finally`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any, Optional

import torch
from torch import nn

from tb_plugin_insight.explain import cam_methods
from tb_plugin_insight.explain import targets as targets_mod

__all__ = ["FullGradResult", "bias_layers", "fullgrad"]

#: Added to each channel's span before dividing, as pytorch-grad-cam does (a near-constant channel stays
#: near 0 rather than being stretched to [0, 1]).
CHANNEL_EPS = 1e-7


@dataclasses.dataclass
class FullGradResult:
    """The raw FullGrad map (N, H, W) (non-negative, not yet scaled to [0, 1]), and the forward it came
    from: the explained output (detached) and the (N,) target scores."""

    raw: torch.Tensor
    output: torch.Tensor
    scores: torch.Tensor


def bias_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of the layers whose bias FullGrad uses, in `named_modules()` order."""
    return [(name, module) for name, module in model.named_modules() if _bias_of(module) is not None]


def _bias_of(module: nn.Module) -> Optional[torch.Tensor]:
    """The per-channel bias the layer adds to its output in eval mode, or None (not a bias layer)."""
    if isinstance(module, nn.Conv2d):
        return None if module.bias is None else module.bias.detach()
    if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
        mean, var = module.running_mean, module.running_var
        if module.bias is None or module.weight is None or mean is None or var is None:
            return None  # no affine shift, or batch statistics in eval mode: no fixed bias
        with torch.no_grad():
            return module.bias - mean * module.weight / torch.sqrt(var + module.eps)
    return None


class _BiasTap:
    """Forward hook on one bias layer: keeps every (N, C, h, w) output in the graph and hands downstream
    a copy, so that the gradient taken at the kept tensor is the one at the layer's own output."""

    def __init__(self) -> None:
        self.outputs: list[torch.Tensor] = []

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor) or output.dim() != 4 or not output.requires_grad:
            return None
        self.outputs.append(output)
        return output.clone()


@contextlib.contextmanager
def _tapped(layers: list[tuple[str, nn.Module]]) -> Iterator[list[_BiasTap]]:
    taps = [_BiasTap() for _ in layers]
    handles = [module.register_forward_hook(tap) for (_, module), tap in zip(layers, taps)]
    try:
        yield taps
    finally:
        for handle in handles:
            handle.remove()


def fullgrad(
    model: nn.Module, inputs: torch.Tensor, targets: targets_mod.TargetSpec = None
) -> FullGradResult:
    """The raw FullGrad maps of `inputs` (N, C, H, W). Call inside `side_effect_free(model, inputs)`.

    Raises:
        ValueError: inside `torch.inference_mode()`, or target scores that depend on neither the input nor
            any bias layer.
    """
    if torch.is_inference_mode_enabled():
        raise ValueError(
            "fullgrad cannot run inside torch.inference_mode(): call it under torch.no_grad() instead"
            " (gradients are enabled locally)"
        )
    layers = bias_layers(model)
    biases = [_bias_of(module) for _, module in layers]
    leaf = inputs.detach().clone().requires_grad_(True)
    with _tapped(layers) as taps, torch.enable_grad():
        raw = model(leaf.clone())  # the forward may change its input in place
        output = targets_mod.model_output(raw)
        scores = targets_mod.target_scores(output, targets)
        kept = [(bias, out) for bias, tap in zip(biases, taps) for out in tap.outputs]
        if not scores.requires_grad:
            raise _no_gradient()
        wrt = [leaf] + [out for _, out in kept]
        grads = torch.autograd.grad(scores.sum(), wrt, allow_unused=True)
    if all(g is None for g in grads):
        raise _no_gradient()
    size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
    terms: list[tuple[Optional[torch.Tensor], torch.Tensor]] = [(grads[0], leaf.detach())]
    terms += [(g, bias) for g, (bias, _) in zip(grads[1:], kept) if bias is not None]
    return FullGradResult(_sum_terms(terms, size, len(inputs)), output.detach(), scores.detach())


def _sum_terms(
    terms: list[tuple[Optional[torch.Tensor], torch.Tensor]], size: tuple[int, int], n: int
) -> torch.Tensor:
    """sum over terms of sum_c post(|gradient * factor|): per-channel scaling at each term's resolution,
    channels summed, then one bilinear resize per resolution (resizing is linear, so resizing the sum is
    resizing each channel)."""
    by_size: dict[tuple[int, int], torch.Tensor] = {}
    for gradient, factor in terms:
        if gradient is None:
            continue  # the scores do not depend on this output: a constant term, 0 after scaling
        g = gradient.float()
        factor = factor.float().to(g.device)
        product = (g * (factor if factor.dim() == 4 else factor[None, :, None, None])).abs()
        key = (int(product.shape[-2]), int(product.shape[-1]))
        summed = _scale_channels(product).sum(dim=1)
        by_size[key] = summed if key not in by_size else by_size[key] + summed
    total = torch.zeros(n, *size, dtype=torch.float32, device=terms[0][1].device)
    for maps in by_size.values():
        total = total + cam_methods.resize(maps, size).to(total.device)
    return total


def _scale_channels(t: torch.Tensor) -> torch.Tensor:
    """Each (h, w) channel of each image of (N, C, h, w) min-max scaled: (t - min) / (max - min + eps)."""
    flat = t.flatten(2)
    low = flat.amin(dim=2, keepdim=True)
    shifted = flat - low
    return (shifted / (shifted.amax(dim=2, keepdim=True) + CHANNEL_EPS)).view_as(t)


def _no_gradient() -> ValueError:
    return ValueError(
        "fullgrad: the target scores depend on neither the input nor any bias layer through"
        " differentiable operations (is the output detached?)"
    )
