"""One target layer's activation, and the gradient of target scores with respect to it, without side effects.

What "without side effects" means here, since this runs on the user's live model during training:

* Every module is put in eval mode for the computation and gets its own `training` flag back afterwards
  (so BatchNorm running statistics and `num_batches_tracked` are never updated, Dropout is off).
* The global RNG state (CPU, and the inputs' CUDA device) is saved and restored around the forward, so
  even a model that draws random numbers in eval mode leaves the user's random stream unchanged.
* There is no `.backward()`: the gradient comes from `torch.autograd.grad` with respect to the captured
  activation only, so parameters' `.grad` are never read or written.
* The forward runs under `torch.no_grad()` up to the target layer; its forward hook switches gradients on
  and hands the rest of the network a fresh leaf copy of the activation. Only the part of the network
  after the target layer is recorded by autograd, and the backward stops at the target layer. A gradient
  CAM therefore costs about one forward. It also works inside the caller's `torch.no_grad()`.
* Hooks are registered inside the call and removed in `finally`, also when the forward raises.
* Downstream layers get a copy of the activation, so in-place operations after the target layer (e.g.
  `ReLU(inplace=True)`) cannot change the captured values.

A module called several times in one forward is captured (and, for ablation, substituted) at its first
call only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
from collections.abc import Iterator
from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from tb_plugin_insight.explain import targets as targets_mod

LayerSpec = Union[str, nn.Module]
Substitute = Callable[[torch.Tensor], torch.Tensor]


@dataclasses.dataclass
class Captured:
    """What one forward of the model showed about the target layer.

    Attributes:
        output: the explained model output (`targets.model_output` of what the model returned), detached.
        activation: the target layer's output (its first tensor if it returned a tuple/list), detached.
        gradient: d(sum of target scores)/d(activation), same shape, or None when not requested.
        scores: the (N,) target scores, detached, or None when not requested.
    """

    output: torch.Tensor
    activation: torch.Tensor
    gradient: Optional[torch.Tensor] = None
    scores: Optional[torch.Tensor] = None


def resolve_layer(model: nn.Module, layer: LayerSpec) -> tuple[str, nn.Module]:
    """(qualified name, module) of `layer`, given as a module of `model` or its qualified name.

    Raises:
        ValueError: unknown name (the message lists close matches) or a module that is not in `model`.
        TypeError: `layer` is neither a string nor a module.
    """
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer in modules:
            return layer, modules[layer]
        names = [name for name in modules if name]
        close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
        shown = close or names[:8]
        hint = ("close matches: " if close else "layers are named like: ") + ", ".join(shown)
        raise ValueError(f"no layer named {layer!r} in {type(model).__name__}; {hint}")
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise ValueError(
            f"target_layer {type(layer).__name__} is not a submodule of the model: pass a module of this"
            " model or its qualified name from model.named_modules()"
        )
    raise TypeError(f"target_layer must be a module or its qualified name, got {type(layer).__name__}")


@contextlib.contextmanager
def side_effect_free(model: nn.Module, inputs: torch.Tensor) -> Iterator[None]:
    """Eval mode for every module and a forked RNG inside; flags and RNG state restored on exit."""
    flags = [(module, module.training) for module in model.modules()]
    devices = [inputs.device.index or 0] if inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            model.eval()
            yield
        finally:
            for module, flag in flags:
                module.training = flag


class _Tap:
    """Forward hook that keeps the layer's first output of a forward and gives downstream a copy.

    With `gradient=True` the kept tensor is a leaf that requires grad, and gradient recording is switched
    on from here to the end of the forward. With `substitute`, downstream gets `substitute(activation)`
    instead (used to ablate channels).
    """

    def __init__(self, *, gradient: bool = False, substitute: Optional[Substitute] = None) -> None:
        self.gradient = gradient
        self.substitute = substitute
        self.activation: Optional[torch.Tensor] = None

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        if self.activation is not None:
            return None  # a module called twice in one forward is captured at its first call
        tensor, rebuild = split_output(output)
        kept = tensor.detach()
        if self.gradient:
            torch.set_grad_enabled(True)
            kept = (kept.clone() if kept.is_inference() else kept).requires_grad_(True)
        self.activation = kept
        onward = self.substitute(kept) if self.substitute is not None else kept.clone()
        return rebuild(onward)


def split_output(output: Any) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
    """The tensor a layer's output stands for, and how to put a replacement back in its place."""
    if isinstance(output, torch.Tensor):
        return output, lambda t: t
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        rest = list(output[1:])
        if isinstance(output, tuple) and hasattr(output, "_fields"):  # namedtuple
            return output[0], lambda t: type(output)(t, *rest)
        return output[0], lambda t: type(output)([t, *rest])
    raise ValueError(
        f"the target layer returned {type(output).__name__}; CAMs need a layer whose output is a tensor"
        " (or a tuple/list whose first element is one): choose another layer"
    )


@contextlib.contextmanager
def _tapped(layer: nn.Module, tap: _Tap) -> Iterator[_Tap]:
    handle = layer.register_forward_hook(tap)
    grad_mode = torch.is_grad_enabled()
    try:
        yield tap
    finally:
        handle.remove()
        torch.set_grad_enabled(grad_mode)


def checked_activation(activation: Optional[torch.Tensor], name: str) -> torch.Tensor:
    """The activation a tap kept, or a clear error when the layer never ran in the forward."""
    if activation is None:
        raise ValueError(f"layer {name!r} was not called in the forward pass: choose a layer the model uses")
    return activation


def capture(
    model: nn.Module,
    inputs: torch.Tensor,
    layer: nn.Module,
    name: str,
    targets: targets_mod.TargetSpec = None,
    *,
    gradient: bool,
) -> Captured:
    """Run `model(inputs)` once, keeping `layer`'s output and, if asked, the target scores' gradient.

    Call inside `side_effect_free`. The gradient is that of the sum of the (N,) target scores, which is
    each sample's own gradient as long as samples do not interact in eval mode (true for ordinary
    networks).
    """
    if gradient and torch.is_inference_mode_enabled():
        raise ValueError(
            "gradient CAMs cannot run inside torch.inference_mode(): call them under torch.no_grad() instead"
            " (gradients are enabled locally, only from the target layer on)"
        )
    if inputs.is_inference():
        inputs = inputs.clone()
    tap = _Tap(gradient=gradient)
    with _tapped(layer, tap), torch.no_grad():
        raw = model(inputs)
        activation = checked_activation(tap.activation, name)
        if not gradient:
            return Captured(targets_mod.model_output(raw).detach(), activation)
        with torch.enable_grad():
            output = targets_mod.model_output(raw)
            scores = targets_mod.target_scores(output, targets)
            grad = None
            if scores.requires_grad:
                (grad,) = torch.autograd.grad(scores.sum(), activation, allow_unused=True)
    if grad is None:
        raise no_gradient_error(name)
    return Captured(output.detach(), activation.detach(), grad, scores.detach())


def no_gradient_error(name: str) -> ValueError:
    """The error of a gradient CAM whose target scores have no gradient at layer `name`."""
    return ValueError(
        f"the target scores do not depend on layer {name!r} through differentiable operations (is its"
        " output detached, or used under no_grad inside the model?): choose another layer, or a method"
        " without gradients (eigencam, scorecam, ablationcam)"
    )


def forward_substituted(
    model: nn.Module, inputs: torch.Tensor, layer: nn.Module, name: str, substitute: Substitute
) -> Any:
    """`model(inputs)` under no_grad with `layer`'s output replaced by `substitute(output)`."""
    tap = _Tap(substitute=substitute)
    with _tapped(layer, tap), torch.no_grad():
        raw = model(inputs)
    checked_activation(tap.activation, name)
    return raw
