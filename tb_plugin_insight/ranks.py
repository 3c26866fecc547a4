"""Which process of a distributed job writes: by default rank 0 only, optionally one run per rank.

Several processes writing one log directory would interleave their records of the same steps in one run.
The rank comes from torch.distributed when it is initialised, else from the RANK / WORLD_SIZE environment
variables torchrun sets (so a writer created before `init_process_group` knows it too).
"""

from __future__ import annotations

import os
from typing import Any

RANK_MODES = ("first", "all")


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside distributed training."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except (ImportError, RuntimeError):
        pass
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0")) if world > 1 else 0
    except ValueError:
        return 0, 1
    return rank, max(world, 1)


def check_mode(ranks: Any) -> str:
    if ranks not in RANK_MODES:
        raise ValueError(
            f"ranks must be 'first' (only rank 0 writes) or 'all' (one run per rank, in <log_dir>/rank<r>),"
            f" got {ranks!r}"
        )
    return ranks


class NullFileWriter:
    """Stands in for torch's FileWriter on processes that do not write: accepts everything, keeps nothing."""

    def __init__(self, log_dir: str) -> None:
        self._log_dir = log_dir

    def get_logdir(self) -> str:
        return self._log_dir

    def add_event(self, *args: Any, **kwargs: Any) -> None:
        pass

    add_summary = add_graph = add_onnx_graph = add_event

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def reopen(self) -> None:
        pass
