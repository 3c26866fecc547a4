"""Gradient statistics of a distributed job: whole parameters after the cross-rank reduction, and the
gradient noise scale from the ranks' own gradients.

Under DDP each parameter's `.grad` holds the rank's local gradient until the end of the backward, where
DDP writes the all-reduced average into it; under FSDP2 (`fully_shard`) `.grad` is a DTensor holding
only this rank's shard of the reduced gradient. The recorder therefore reads `.grad` just before the
optimizer step (a global optimizer step pre-hook, or the trainer's `gradients_ready()`), where both are
final, and reduces what each rank holds with one collective per recorded step:

* sharded parameters (DTensor with a Shard placement): the local parts (sums of squares and of |g|,
  max |g|, NaN/Inf/element counts, ||w||^2, ||Δw||^2) add up (the max is the larger) across ranks;
* replicated parameters (DDP, or a Replicate DTensor): every rank holds the same values, kept as read;
* the gradient into each layer's output comes from the rank's own batch: its sums add up across ranks
  and are divided by the world size (W^2 for squares), as the averaged loss of the whole batch has it;
* the gradient noise scale (McCandlish et al. 2018, appendix A.1): each rank's squared norm of its own
  gradient |G_small|^2 (read by a post-accumulate-grad hook on the tensor autograd accumulates the
  rank's gradient into: the parameter under DDP, FSDP2's unsharded parameter) and the squared norm of
  the averaged gradient |G_big|^2 give the unbiased estimates
  |G|^2 = (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small) and
  tr(Σ) = (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big), with B_small the samples of one rank and
  B_big those of all ranks in the optimizer step (|G_small|^2 averaged over the ranks).

All of it travels in one packed float64 vector, gathered from every rank (`all_gather_into_tensor`:
sums and maxima from the same collective). Every rank joins it at the same points (the recorded steps
are counted from the same forwards on every rank), whatever it read; a rank whose recording failed says
so in the vector and every rank stops recording gradients together, so no rank is left waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import nn

logger = logging.getLogger(__name__)

# Raw per-layer parameter columns: the 6 reduce.GRAD_PARTS, then ||w||^2 and ||Δw||^2.
PARAM_COLUMNS = 8
ACT_COLUMNS = 6  # reduce.GRAD_PARTS of the gradient into the layer's output
MAX_COLUMN = 2  # max |g|: combined by the maximum, every other column by the sum


def world() -> Optional[tuple[int, int]]:
    """(rank, world size) when torch.distributed runs with more than one process, else None."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return dist.get_rank(), dist.get_world_size()
    except (ImportError, RuntimeError):
        pass
    return None


def is_sharded(t: torch.Tensor) -> bool:
    """True for a DTensor split across ranks (a Shard placement): its local parts add up across ranks."""
    placements = getattr(t, "placements", None)
    return placements is not None and any(p.is_shard() for p in placements)


def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's part of `t` as a plain tensor (the local shard of a DTensor, `t` itself otherwise)."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) and getattr(t, "placements", None) is not None else t


def rank_gradient_tensors(model: nn.Module, params: Sequence[nn.Parameter]) -> list[Optional[torch.Tensor]]:
    """For each parameter, the tensor autograd accumulates this rank's own (not yet reduced) gradient into:
    the parameter itself, or for a parameter FSDP2 shards its unsharded parameter (None when FSDP2 has not
    built it yet: before the first forward). Looked up at each recorded step (FSDP2 builds them lazily)."""
    unsharded: dict[int, torch.Tensor] = {}
    for module in model.modules():
        get_state = getattr(module, "_get_fsdp_state", None)
        if not callable(get_state):
            continue
        try:
            group = get_state()._fsdp_param_group
            for fsdp_param in group.fsdp_params if group is not None else ():
                full = getattr(fsdp_param, "_unsharded_param", None)
                if full is not None:
                    unsharded[id(fsdp_param.sharded_param)] = full
        except AttributeError:  # another torch's FSDP2 internals: no noise scale for these parameters
            logger.debug("Insight: FSDP2 internals not found on %s", type(module).__name__)
    return [unsharded.get(id(p)) if is_sharded(p) else p for p in params]


def uses_fsdp(model: nn.Module) -> bool:
    """True when FSDP2 manages some module: its forward (probe passes included) starts collectives."""
    return any(callable(getattr(m, "_get_fsdp_state", None)) for m in model.modules())


def gather(vector: torch.Tensor) -> torch.Tensor:
    """(world, len) of every rank's `vector` (same length on every rank), in one collective."""
    import torch.distributed as dist

    size = dist.get_world_size()
    out = torch.empty(size * vector.numel(), dtype=vector.dtype, device=vector.device)
    gather_into = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # renamed in 2.13
    gather_into(out, vector.contiguous())
    return out.view(size, vector.numel())


def collective_device(params: Sequence[torch.Tensor]) -> torch.device:
    """Where the packed vector travels: the accelerator for NCCL-like backends, else the CPU (gloo)."""
    import torch.distributed as dist

    backend = str(dist.get_backend()).lower()
    for p in params:
        if p.device.type != "cpu" and ("nccl" in backend or "xccl" in backend or "hccl" in backend):
            return local(p).device
    return torch.device("cpu")


def combine_sums(gathered: torch.Tensor) -> torch.Tensor:
    """Rows (ranks) of raw per-layer columns combined: sums add, the max |g| column takes the maximum.
    `gathered`: (world, layers, columns)."""
    total = gathered.sum(dim=0)
    total[:, MAX_COLUMN] = gathered[:, :, MAX_COLUMN].amax(dim=0)
    return total


def noise_components(
    small_sq: torch.Tensor, big_sq: torch.Tensor, b_small: torch.Tensor, b_big: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unbiased (|G|^2, tr(Σ)) from the mean squared norm of the ranks' own gradients `small_sq` (batch
    `b_small` each) and the squared norm of their average `big_sq` (batch `b_big`); NaN without batches."""
    g_sq = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
    trace = (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big)
    return g_sq, trace


def first_batch_size(args: Any) -> int:
    """The leading dimension of the first tensor among a forward's positional inputs (0 when none)."""
    stack = list(args) if isinstance(args, (tuple, list)) else [args]
    while stack:
        item = stack.pop(0)
        if isinstance(item, torch.Tensor):
            return int(item.shape[0]) if item.dim() > 0 else 0
        if isinstance(item, (tuple, list)):
            stack = list(item) + stack
        elif isinstance(item, dict):
            stack = list(item.values()) + stack
    return 0


def kept_on_silent_rank(model: nn.Module, grads_across_ranks: bool) -> Optional[tuple[str, ...]]:
    """The recorders a rank that does not write (`ranks="first"`) keeps, so that it joins every collective
    the writing rank starts: none outside distributed training, the gradients (their reductions) in a
    job, and all of them (None) under FSDP2, whose forward itself gathers parameters (probe passes too)."""
    if world() is None:
        return ()
    if uses_fsdp(model):
        return None
    return ("gradients",) if grads_across_ranks else ()


# Seconds a rank waits, once per watch (at its first cross-rank reduction), for every other rank to have
# called `watch` too. In a training loop the ranks are in step by then (DDP and FSDP2 synchronise each
# backward), so the wait is short when they all watch; when one does not, the others fall back to their
# own gradients after this pause instead of waiting forever in a collective.
HANDSHAKE_SECONDS = 20.0
_watches = [0]  # watches made by this process: the n-th watch of every rank shares a handshake key


class Handshake:
    """Each rank's watch announces itself in the process group's key-value store; `everyone()` says
    whether every rank did (True when the store cannot be used: the reduction then goes ahead)."""

    def __init__(self) -> None:
        import torch.distributed as dist

        _watches[0] += 1
        self._prefix = f"tb_plugin_insight/watch{_watches[0]}"
        self._world = dist.get_world_size()
        self._store: Any = None
        try:
            from torch.distributed import distributed_c10d

            self._store = distributed_c10d._get_default_store()
            self._store.set(f"{self._prefix}/{dist.get_rank()}", "1")
        except Exception:  # noqa: BLE001 - another torch's internals: assume every rank watches
            self._store = None
            logger.debug("Insight: no process-group store for the watch handshake", exc_info=True)

    def everyone(self) -> bool:
        if self._store is None:
            return True
        import datetime

        keys = [f"{self._prefix}/{r}" for r in range(self._world)]
        try:
            self._store.wait(keys, datetime.timedelta(seconds=HANDSHAKE_SECONDS))
        except Exception:  # noqa: BLE001 - a timeout: some rank never called watch
            return False
        return True
