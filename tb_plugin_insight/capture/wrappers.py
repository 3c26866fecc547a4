"""Models wrapped by DataParallel, DistributedDataParallel or torch.compile: watch the model inside.

Layer names then lack the wrapper's prefix (`module.`, `_orig_mod.`), so a run trained with DDP and one
trained on a single device have the same layer names and stay comparable. Probe passes (CAMs, saliency)
run on the inner model too: DDP's own forward would broadcast buffers and prepare its gradient
reduction, collectives the other processes never join.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)


def _wrapper_types() -> tuple[type, ...]:
    types: list[type] = [nn.DataParallel, nn.parallel.DistributedDataParallel]
    try:
        from torch._dynamo.eval_frame import OptimizedModule

        types.append(OptimizedModule)
    except ImportError:  # a torch without dynamo
        pass
    return tuple(types)


def is_compiled(model: nn.Module) -> bool:
    return type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod")


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside any DataParallel / DDP / torch.compile wrappers (the model itself if none)."""
    wrappers = _wrapper_types()
    seen = 0
    while isinstance(model, wrappers) and seen < 8:
        model = model._orig_mod if is_compiled(model) else model.module  # type: ignore[assignment]
        seen += 1
    return model


def compile_contexts(model: nn.Module) -> list[Any]:
    """The torch.compile settings (dynamo contexts) of every compile wrapper around the model, outermost
    first; empty when the model is not compiled."""
    wrappers = _wrapper_types()
    found, seen = [], 0
    while isinstance(model, wrappers) and seen < 8:
        if is_compiled(model):
            found.append(getattr(model, "dynamo_ctx", None))
            model = model._orig_mod  # type: ignore[assignment]
        else:
            model = model.module  # type: ignore[assignment]
        seen += 1
    return found


def compiled_without_graph_breaks(model: nn.Module) -> bool:
    """True for torch.compile(..., fullgraph=True): Insight's hooks run Python that needs graph breaks,
    which such a model turns into errors in the user's forward."""
    return any(
        getattr(ctx, "fullgraph", False) or getattr(ctx, "error_on_graph_break", False)
        for ctx in compile_contexts(model)
    )


def recordable(model: nn.Module) -> bool:
    """False, with a warning that says why and what to do, for a model Insight's hooks cannot record
    (compiled with fullgraph=True); the watch then records nothing rather than breaking the forward."""
    if not compiled_without_graph_breaks(model):
        return True
    logger.warning(
        "Insight cannot record a model compiled with torch.compile(fullgraph=True): its hooks run"
        " Python that needs graph breaks. Nothing is recorded for this model. Compile it without"
        " fullgraph=True (Insight's hooks then split the graph at the watched layers), or watch it"
        " uncompiled."
    )
    return False
