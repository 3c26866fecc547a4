"""Run families of a distributed job: the runs `<name>/rank<r>` that `InsightWriter(ranks="all")` writes.

A family is two or more runs whose names differ only in a final `rank<r>` component. The runs of a job
written straight into the logdir (`tensorboard --logdir <log_dir>`) are `rank0`, `rank1`, ...: their
family is named "." (TensorBoard's name for the logdir itself). The tab's Ranks view mirrors this rule
(frontend/src/views/ranks/math.ts) to know whether to show itself.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

RANK_RUN = re.compile(r"^(?:(?P<prefix>.+)/)?rank(?P<rank>[0-9]{1,6})$")
ROOT = "."  # the family of runs rank<r> at the top of the logdir


@dataclasses.dataclass(frozen=True)
class Family:
    """One job's per-rank runs, by rank (`runs[i]` is rank `ranks[i]`)."""

    name: str
    ranks: tuple[int, ...]
    runs: tuple[str, ...]


def rank_of(run: str) -> tuple[str, int] | None:
    """(family name, rank) of a per-rank run name, None for any other run."""
    found = RANK_RUN.match(run)
    if found is None:
        return None
    return found.group("prefix") or ROOT, int(found.group("rank"))


def families(runs: Iterable[str]) -> list[Family]:
    """The families among these run names (two ranks or more), by name; a rank spelled twice
    (`rank1`, `rank01`) keeps its first run."""
    found: dict[str, dict[int, str]] = {}
    for run in runs:
        parsed = rank_of(run)
        if parsed is not None:
            found.setdefault(parsed[0], {}).setdefault(parsed[1], run)
    return [
        Family(name, tuple(sorted(by_rank)), tuple(by_rank[r] for r in sorted(by_rank)))
        for name, by_rank in sorted(found.items())
        if len(by_rank) >= 2
    ]
