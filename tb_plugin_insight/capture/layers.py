"""Which modules of a model to watch: the default set, explicit names, or a predicate."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Union

from torch import nn

from tb_plugin_insight.capture import activation_types

LayerSelector = Union[None, Iterable[str], Callable[[str, nn.Module], bool]]


def is_default_layer(module: nn.Module) -> bool:
    """Modules with their own parameters, plus activation modules of any library (ReLU, GELU,
    HuggingFace's GELUActivation, timm's own GELU, ...: `activation_types.is_activation`)."""
    if activation_types.is_activation(module):
        return True
    return any(True for _ in module.parameters(recurse=False))


def select_layers(model: nn.Module, layers: LayerSelector = None) -> list[tuple[int, str, nn.Module]]:
    """Return (order, qualified name, module) of the watched layers, in model order.

    Raises:
        ValueError: a name that is not a module of the model (the message lists close matches), or no
            layer selected at all.
        TypeError: `layers` is neither None, a list of names, nor a callable.
    """
    named = [(i, name, mod) for i, (name, mod) in enumerate(model.named_modules())]
    if layers is None:
        chosen = [(i, n, m) for i, n, m in named if n and is_default_layer(m)]
        if not chosen and named:  # a bare nn.Linear, say: watch the model itself
            chosen = [(0, "", model)]
    elif callable(layers):
        chosen = [(i, n, m) for i, n, m in named if layers(n, m)]
    elif isinstance(layers, str):
        raise TypeError(f"layers must be a list of names, got the string {layers!r}: use [{layers!r}]")
    else:
        chosen = _by_names(named, list(layers))
    if not chosen:
        raise ValueError(
            "no layer selected to watch; pass layers=None for the default set, or a list of names"
            f" from: {', '.join(n for _, n, _ in named[:20] if n)}"
        )
    return chosen


def _by_names(named: list[tuple[int, str, nn.Module]], names: list[str]) -> list[tuple[int, str, nn.Module]]:
    by_name = {n: (i, n, m) for i, n, m in named}
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"layer names must be strings, got {name!r}")
        if name not in by_name:
            close = difflib.get_close_matches(name, [n for n in by_name if n], n=5, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ValueError(
                f"the model has no module named {name!r}.{hint} Names are those of model.named_modules()."
            )
    wanted = set(names)
    return [entry for entry in named if entry[1] in wanted]
