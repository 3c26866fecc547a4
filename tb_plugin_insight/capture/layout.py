"""Which dimension of a module's output holds its channels (hidden units): one rule for the dead-unit
statistics (capture/units.py) and the token-layer detection of the massive activations (capture/health.py).

- Channels first, dimension 1: convolutions, batch/instance/group norms and pooling ((N, C, L),
  (N, C, H, W), ...).
- Channels last: Linear, Bilinear, LayerNorm/RMSNorm over one dimension, Embedding, MultiheadAttention,
  HuggingFace's `Conv1D` (a Linear) and norms named `...LayerNorm`/`...RMSNorm` from any library: token
  layers (N, L, C) or (L, N, C), and (N, H, W, C) feature maps of Linear layers.
- An activation (any library, capture/activation_types.py), dropout or identity keeps the layout of its
  input, so the module feeding it decides: the nearest leaf module before it in the model's registration
  order that is not such a pass-through (the Linear before a GELU in an MLP: a token layer; the Conv1d
  or BatchNorm1d before a ReLU: (N, C, L)). A container is decided the same way from its last leaf.
  Registration order is not execution order and a block may permute its output back, so a feeding
  module counts only when its size matches the output (a Linear's out_features is the last dimension,
  a Conv1d's out_channels dimension 1); the nearest few are tried, up to a module of unknown type.
- Otherwise the rank decides: (N, C) -> 1, a 3-D output is a token layer (last), 4-D and more -> 1.
Outputs with fewer than 2 dimensions have no channels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Optional

from torch import nn

from tb_plugin_insight.capture import activation_types

Side = Literal["first", "last"]

_CHANNELS_FIRST: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.LPPool1d,
    nn.LPPool2d,
)
_CHANNELS_LAST: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Bilinear,
    nn.Embedding,
    nn.EmbeddingBag,
    nn.MultiheadAttention,
)
_NORMS = (nn.LayerNorm, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))
_PASS_THROUGH: tuple[type[nn.Module], ...] = (nn.Identity, nn.modules.dropout._DropoutNd)
MAX_DECIDERS = 3  # feeding modules tried, nearest first
_SIZES = ("out_features", "out_channels", "num_features", "num_channels", "embedding_dim", "embed_dim", "nf")


def _leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def side(module: nn.Module) -> Optional[Side]:
    """Where `module`'s own type keeps its channels ("first", "last"), or None when its type does not
    say (pass-through modules and unknown ones)."""
    if isinstance(module, _CHANNELS_FIRST):
        return "first"
    if isinstance(module, _CHANNELS_LAST):
        return "last"
    if isinstance(module, _NORMS):
        return "last" if len(module.normalized_shape) == 1 else None  # over (C, H, W): not per channel
    name = type(module).__name__
    if _leaf(module) and (
        name == "Conv1D" and hasattr(module, "nf") or name.endswith(("LayerNorm", "RMSNorm"))
    ):
        return "last"  # HuggingFace's Conv1D (GPT-2's Linear), LlamaRMSNorm, T5LayerNorm, ...
    return None


def passes_through(module: nn.Module) -> bool:
    """Modules whose output keeps the layout of their input: activations, dropouts, identities."""
    if isinstance(module, (*_CHANNELS_FIRST, *_CHANNELS_LAST)):
        return False
    name = type(module).__name__.lower()
    return (
        isinstance(module, _PASS_THROUGH)
        or activation_types.is_activation(module)
        or (_leaf(module) and ("dropout" in name or "droppath" in name))
    )


def _size(module: nn.Module) -> Optional[int]:
    """The number of channels a decisive module makes (None when it does not say, e.g. pooling)."""
    if isinstance(module, _NORMS):
        return int(module.normalized_shape[-1])
    for attribute in _SIZES:
        value = getattr(module, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    weight = getattr(module, "weight", None)
    if side(module) == "last" and isinstance(weight, nn.Parameter) and weight.dim() == 1:
        return int(weight.shape[0])  # a norm from another library: one scale per channel
    return None


def deciders(
    leaves: Sequence[nn.Module], module: nn.Module, positions: Optional[Mapping[int, int]] = None
) -> tuple[nn.Module, ...]:
    """The modules whose type may decide `module`'s layout (module doc), nearest first: itself, or the
    modules feeding it (the first whose size fits the output decides); empty when none does.
    `leaves`: the model's leaf modules in registration order; `positions`: their indices there, by id
    (a module may define its own equality, or none)."""
    if side(module) is not None:
        return (module,)
    if not _leaf(module):
        inner = [m for m in module.modules() if _leaf(m)]
        if not inner:
            return ()
        module = inner[-1]
        if not passes_through(module):
            return (module,) if side(module) is not None else ()
    elif not passes_through(module):
        return ()
    if positions is None:
        positions = {id(leaf): i for i, leaf in enumerate(leaves)}
    position = positions.get(id(module), 0)
    found: list[nn.Module] = []
    for leaf in reversed(leaves[:position]):
        if passes_through(leaf):
            continue
        if side(leaf) is None or len(found) == MAX_DECIDERS:
            break  # an unknown module changes the layout in its own way
        found.append(leaf)  # e.g. GPT-2's MLP registers c_fc, c_proj, act: c_fc feeds act
    return tuple(found)


def channel_dim(candidates: Sequence[nn.Module], shape: Sequence[int]) -> Optional[int]:
    """The channel dimension of an output of `shape` whose layout `candidates` (`deciders`) decide, or
    None when it has none (fewer than 2 dimensions)."""
    return _dim([(side(m), _size(m)) for m in candidates], shape)


def _dim(facts: Sequence[tuple[Optional[Side], Optional[int]]], shape: Sequence[int]) -> Optional[int]:
    """`channel_dim` from the candidates' (side, size)."""
    ndim = len(shape)
    if ndim < 2:
        return None
    if ndim == 2:
        return 1
    for where, size in facts:
        if where == "first" and (size is None or shape[1] == size):
            return 1
        if where == "last" and (size is None or shape[-1] == size):
            return ndim - 1
    return ndim - 1 if ndim == 3 else 1


class Layouts:
    """The deciding modules of each watched layer (`deciders`), found once from the model's structure."""

    def __init__(self, model: Optional[nn.Module], modules: Iterable[nn.Module]) -> None:
        leaves = [m for m in model.modules() if _leaf(m)] if model is not None else []
        positions = {id(leaf): i for i, leaf in enumerate(leaves)}
        # by id: the watch holds the modules, and a module may define its own equality (or none)
        self._facts = {id(m): self._facts_of(deciders(leaves, m, positions)) for m in modules}

    @staticmethod
    def _facts_of(candidates: Sequence[nn.Module]) -> tuple[tuple[Optional[Side], Optional[int]], ...]:
        return tuple((side(m), _size(m)) for m in candidates)  # once: the hooks only compare numbers

    def channel_dim(self, module: nn.Module, shape: Sequence[int]) -> Optional[int]:
        """The channel dimension of `module`'s output of `shape` (module doc)."""
        facts = self._facts.get(id(module))
        if facts is None:  # not a watched layer: decided by its own type alone
            facts = self._facts_of(deciders([], module))
        return _dim(facts, shape)

    def is_token_output(self, module: nn.Module, shape: Sequence[int]) -> bool:
        """Whether an output of `shape` is a token layer: 3-D, (N, L, C) or (L, N, C), hidden units last."""
        return len(shape) == 3 and self.channel_dim(module, shape) == 2
