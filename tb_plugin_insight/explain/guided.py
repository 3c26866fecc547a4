"""Guided backpropagation's ReLU rule, active only inside a `with guided_relus():` block.

Guided backprop (Springenberg et al., 2015) backpropagates through each ReLU as
``grad_in = max(grad_out, 0) * 1[relu_input > 0]``: the usual ReLU mask, plus only positive gradient
signal passes. Other layers backpropagate as usual.

Mechanism: a `torch.overrides.TorchFunctionMode` that, while active, answers every ReLU call with an
autograd.Function carrying that backward rule. Covered calls: `nn.ReLU` modules (their forward calls
`F.relu`, including `inplace=True`), `F.relu`, `F.relu_`, `torch.relu`, `torch.relu_`, `Tensor.relu` and
`Tensor.relu_`. Forward values are exactly those of `torch.relu`; in-place calls still modify their input
in place (the Function marks it dirty).

Why a mode rather than hooks or patched modules: nothing on the model changes (no hooks, no replaced
`forward`, `inplace` flags untouched), so there is nothing to restore and nothing to leak when a forward
raises; full backward hooks are avoided, which torch refuses on in-place ReLUs; functional ReLU calls are
covered as well as modules; and the mode stack is thread-local, so another thread using the same model
meanwhile is unaffected.

Not covered (they backpropagate as plain gradients): other activations (ReLU6, LeakyReLU, GELU,
`clamp(min=0)`, `F.threshold`), TorchScript modules and compiled graphs (their code does not go through
Python's `__torch_function__`), and work done in other threads (e.g. `nn.DataParallel` replicas).
`guided_relus().calls` counts the ReLU calls seen.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_RELU = (F.relu, torch.relu, torch.Tensor.relu)
_RELU_INPLACE = (torch.relu_, torch.Tensor.relu_)  # F.relu_ is torch.relu_


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return _guided_grad(grad, out)


class _GuidedReLUInplace(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.mark_dirty(x)
        torch.relu_(x)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return _guided_grad(grad, out)


def _guided_grad(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    # relu's own backward masks by out > 0 (equivalently input > 0); guided also drops negative grads.
    return torch.where(out > 0, grad.clamp(min=0), torch.zeros((), dtype=grad.dtype, device=grad.device))


class guided_relus(TorchFunctionMode):  # noqa: N801 - used as a context manager, named like one
    """Context manager: ReLU calls made in this thread inside the block backpropagate guided.

    The rule is attached in the forward pass, so the forward must run inside the block; the backward
    (`torch.autograd.grad`) may run after it. `calls` counts the ReLU calls seen.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _RELU or func in _RELU_INPLACE:
            self.calls += 1
            x = args[0] if args else kwargs.get("input")
            if isinstance(x, torch.Tensor) and torch.is_grad_enabled() and x.requires_grad:
                inplace = func in _RELU_INPLACE or (
                    func is F.relu and bool(args[1] if len(args) > 1 else kwargs.get("inplace", False))
                )
                return (_GuidedReLUInplace if inplace else _GuidedReLU).apply(x)
        return func(*args, **kwargs)
