"""Activation modules recognised by what they are, from any library: torch.nn's, HuggingFace's
(`GELUActivation`, `NewGELUActivation`, `QuickGELUActivation`, ...), timm's own (`GELU`, `Sigmoid`,
`HardSwishMe`, ...) and a user's.

A module is an activation when it is one of torch.nn's activation modules, or when it has no child
modules and its class name is an activation function's name with the affixes libraries put around it
(`New`/`Quick`/`Fast`/`Accurate`/`Pytorch` before, `Activation`/`Act`/`Me`/`Jit`/`Tanh`/`Squared` after,
in any case): `QuickGELUActivation` is GELU, `ConvReLU` (a block with children) is not, nor is
`PixelUnshuffle`. Its family then decides what dead-unit statistics apply (`capture/units.py`):

* rectifiers (ReLU, GELU, SiLU/Swish, Mish, ELU, ... and their variants): a unit is dead when its
  output is <= 0 for the whole batch;
* bounded ones (Sigmoid, Tanh, their hard versions, ReLU6, Softsign): saturation at a bound.
"""

from __future__ import annotations

import re
from typing import Optional

from torch import nn

_TORCH_ACTIVATIONS = "torch.nn.modules.activation"

# name (lowercase) -> family; longest first so "hardsigmoid" wins over "sigmoid"
_FAMILIES: dict[str, str] = dict(
    sorted(
        {
            "relu": "rectifier",
            "leakyrelu": "rectifier",
            "prelu": "rectifier",
            "rrelu": "rectifier",
            "gelu": "rectifier",
            "silu": "rectifier",
            "swish": "rectifier",
            "hardswish": "rectifier",
            "mish": "rectifier",
            "hardmish": "rectifier",
            "elu": "rectifier",
            "celu": "rectifier",
            "selu": "rectifier",
            "relu6": "bounded",
            "sigmoid": "bounded",
            "hardsigmoid": "bounded",
            "tanh": "bounded",
            "hardtanh": "bounded",
            "softsign": "bounded",
            "softplus": "other",
            "logsigmoid": "other",
            "tanhshrink": "other",
            "softmax": "other",
            "logsoftmax": "other",
            "xielu": "other",
            "laplace": "other",
        }.items(),
        key=lambda item: -len(item[0]),
    )
)
_PREFIXES = ("", "new", "quick", "fast", "accurate", "pytorch", "approx", "approximate", "clipped")
_SUFFIXES = re.compile(r"^(activation|act|me|jit|tanh|squared|fn|function|module|layer|approx|\d+d)*$")
_BOUNDS: dict[str, tuple[float, float]] = {
    "relu6": (0.0, 6.0),
    "sigmoid": (0.0, 1.0),
    "hardsigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "hardtanh": (-1.0, 1.0),
    "softsign": (-1.0, 1.0),
}


def activation_name(module: nn.Module) -> Optional[str]:
    """The activation function a module applies ("gelu", "sigmoid", ...), or None if it is no activation
    (see the module docstring)."""
    name = type(module).__name__.lower()
    if type(module).__module__ != _TORCH_ACTIVATIONS and any(True for _ in module.children()):
        return None
    for prefix in _PREFIXES:
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        for function in _FAMILIES:
            if rest.startswith(function) and _SUFFIXES.match(rest[len(function) :]):
                return function
    return None


def is_activation(module: nn.Module) -> bool:
    """torch.nn's activation modules (also Softmax, MultiheadAttention) and those recognised by name."""
    return type(module).__module__ == _TORCH_ACTIVATIONS or activation_name(module) is not None


def is_rectifier(module: nn.Module) -> bool:
    """Modules whose units can die: outputs <= 0 for every input of a channel means no gradient."""
    name = activation_name(module)
    return name is not None and (_FAMILIES[name] == "rectifier" or name == "relu6")


def output_bounds(module: nn.Module) -> Optional[tuple[float, float]]:
    """The (lower, upper) bounds of an activation's output, or None when it is not bounded."""
    if isinstance(module, nn.Hardtanh):  # also ReLU6, with its own bounds
        return float(module.min_val), float(module.max_val)
    name = activation_name(module)
    return _BOUNDS.get(name) if name is not None else None
