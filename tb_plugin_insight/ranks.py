"""Which process of a distributed job writes: by default rank 0 only, optionally one run per rank.

Several processes writing one log directory would interleave their records of the same steps in one run.
The rank comes from torch.distributed when it is initialised, else from the RANK / WORLD_SIZE environment
variables torchrun sets (so a writer created before `init_process_group` knows it too).
"""

from __future__ import annotations

import os
import warnings
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


def shared_log_dir(default: str, comment: str = "") -> str:
    """The default log directory of a job that writes one run per rank, the same on every rank.

    SummaryWriter's default, runs/<date>_<host> (`default`), differs between ranks started in different
    seconds or on other nodes: the job's runs rank<r> would land in separate directories, where the
    tab cannot compare them as one family. torchrun's job id (TORCHELASTIC_RUN_ID: a fresh id of
    a single-node torchrun, `--rdzv-id` of a multi-node one) names it when set; else `default`, with a
    warning that says to pass a log_dir."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    if run_id and run_id != "none":
        return os.path.join("runs", f"job_{run_id}{comment}")
    warnings.warn(
        "InsightWriter(ranks='all') without a log_dir: each rank picks its own directory runs/<date>_<host>,"
        " which differs between ranks started in different seconds or on other nodes, so their runs may"
        " not lie side by side for the tab's Ranks view; pass the same log_dir on every rank"
        " (e.g. InsightWriter('runs/my_job', ranks='all')), or start with torchrun --rdzv-id=<job id>",
        stacklevel=3,
    )
    return default


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
