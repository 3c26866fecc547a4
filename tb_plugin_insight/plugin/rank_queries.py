"""Queries of the rank comparison: a family's runs `<name>/rank<r>` side by side (plugin/rank_families.py).

Each rank's run is read as one table per kind (the v2 layer tables: one read per run and kind, never one
per layer), through `InsightQueries.table_once` so that a family of many ranks does not evict every other
run's cached table; the aligned family (plugin/rank_spread.RankStack) is kept instead, keyed by the
rank runs' listings (new data on any rank: a new stack).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tb_plugin_insight import metadata
from tb_plugin_insight.plugin import encode, rank_spread, tables
from tb_plugin_insight.plugin.http import not_found
from tb_plugin_insight.plugin.listings import LruCache
from tb_plugin_insight.plugin.queries import InsightQueries, bucket_starts, finite_or_none
from tb_plugin_insight.plugin.rank_families import Family, families

KINDS: dict[str, int] = {
    "activation": metadata.RecordKind.ACTIVATION_STATS,
    "gradient": metadata.RecordKind.GRADIENT_STATS,
}
FIELDS: dict[str, tuple[str, ...]] = {name: tables.fields_for(kind) for name, kind in KINDS.items()}
MAX_STACKS = 4  # aligned families kept (ranks x layers x steps x fields float32 each)
MAX_ALERTS = 1000  # alerts listed; `totalAlerts` counts them all


class RankQueries:
    """Reads the rank families of one TensorBoard instance through the statistics queries."""

    def __init__(self, queries: InsightQueries) -> None:
        self._queries = queries
        self._stacks = LruCache(MAX_STACKS)
        self._alerts = LruCache(64)

    def families(self, ctx: Any, eid: str) -> dict[str, Any]:
        """Every family of two or more ranks, with each rank's run, last step and layer count."""
        runs = {r["run"]: r for r in self._queries.runs(ctx, eid)["runs"]}
        return {
            "families": [
                {
                    "family": f.name,
                    "ranks": list(f.ranks),
                    "runs": list(f.runs),
                    "maxSteps": [runs[run]["maxStep"] for run in f.runs],
                    "numLayers": [runs[run]["numLayers"] for run in f.runs],
                }
                for f in families(runs)
            ]
        }

    def _family(self, ctx: Any, eid: str, name: str) -> Family:
        for family in families(r["run"] for r in self._queries.runs(ctx, eid)["runs"]):
            if family.name == name:
                return family
        raise not_found(
            f"no rank family {name!r}: a family is two or more runs <name>/rank<r>, as"
            " InsightWriter(ranks='all') writes them (see /rank_families)"
        )

    def _keys(self, ctx: Any, eid: str, family: Family, kind: int) -> tuple[Any, ...]:
        return tuple(self._queries.table_key(ctx, eid, run, kind) for run in family.runs)

    def _stack(self, ctx: Any, eid: str, family: Family, kind: int) -> rank_spread.RankStack:
        def make() -> rank_spread.RankStack:
            read = [self._queries.table_once(ctx, eid, run, kind) for run in family.runs]
            return rank_spread.stack(family.ranks, family.runs, read, tables.fields_for(kind))

        return self._stacks.get_or_make(("stack", eid, kind, self._keys(ctx, eid, family, kind)), make)

    def spread(
        self,
        ctx: Any,
        eid: str,
        name: str,
        kind: str,
        stat: str,
        *,
        max_steps: int | None = None,
        encoding: str = "json",
    ) -> dict[str, Any]:
        """Layer x step matrices of `stat` across the family's ranks: min, median, max (at each
        column's last step), the largest deviation of any rank and the relative spread (each the
        maximum over a thinned column's steps, so thinning never hides a departure)."""
        family = self._family(ctx, eid, name)
        found = self._stack(ctx, eid, family, KINDS[kind])
        s = rank_spread.spread(found.field(stat))
        n = len(found.steps)
        starts = bucket_starts(n, max_steps)
        ends = np.append(starts[1:], n) - 1 if n else starts
        with np.errstate(invalid="ignore"):
            worst = np.fmax.reduce(s.deviation, axis=0)
        relative = rank_spread.relative_spread(s)
        if len(starts) < n:
            worst = np.fmax.reduceat(worst, starts, axis=1)
            relative = np.fmax.reduceat(relative, starts, axis=1)
        return {
            **_family_json(name, found, kind),
            "stat": stat,
            "layers": [{"name": n, "moduleType": t} for n, t in zip(found.layers, found.module_types)],
            "steps": found.steps[ends].tolist(),
            "totalSteps": n,
            "low": encode.matrix(s.low[:, ends], encoding),
            "median": encode.matrix(s.median[:, ends], encoding),
            "high": encode.matrix(s.high[:, ends], encoding),
            "deviation": encode.matrix(worst, encoding),
            "relativeSpread": encode.matrix(relative, encoding),
        }

    def layer(self, ctx: Any, eid: str, name: str, kind: str, stat: str, layer: str) -> dict[str, Any]:
        """One layer's `stat` on every rank at every step any rank recorded it, with the median and
        each rank's deviation."""
        family = self._family(ctx, eid, name)
        found = self._stack(ctx, eid, family, KINDS[kind])
        if layer not in found.layers:
            raise not_found(f"rank family {name!r} has no {kind} statistics of layer {layer!r}")
        i = found.layers.index(layer)
        x = found.field(stat)[:, i : i + 1, :]
        columns = np.flatnonzero((~np.isnan(x[:, 0, :])).any(axis=0))
        s = rank_spread.spread(x[:, :, columns])
        return {
            **_family_json(name, found, kind),
            "stat": stat,
            "layer": layer,
            "moduleType": found.module_types[i],
            "steps": found.steps[columns].tolist(),
            "values": encode.json_values(x[:, 0, columns]),
            "median": encode.json_values(s.median[0]),
            "deviation": encode.json_values(s.deviation[:, 0, :]),
        }

    def alerts(
        self, ctx: Any, eid: str, name: str, threshold: float, sustain: int, limit: int | None = MAX_ALERTS
    ) -> dict[str, Any]:
        """The ranks that depart from the others (rank_spread.departures) in any checked statistic of
        activations and gradients, first step first (the first `limit`; None: all); and per rank a
        summary."""
        family = self._family(ctx, eid, name)
        keys = tuple(self._keys(ctx, eid, family, kind) for kind in KINDS.values())
        key = ("alerts", eid, keys, threshold, sustain)
        body = self._alerts.get_or_make(key, lambda: self._find_alerts(ctx, eid, family, threshold, sustain))
        return {**body, "alerts": body["alerts"][:limit]}

    def _find_alerts(
        self, ctx: Any, eid: str, family: Family, threshold: float, sustain: int
    ) -> dict[str, Any]:
        found: list[dict[str, Any]] = []
        last_steps: tuple[int | None, ...] = ()
        for kind_name, kind in KINDS.items():
            stack = self._stack(ctx, eid, family, kind)
            last_steps = tuple(_later(a, b) for a, b in zip(stack.last_steps, last_steps or stack.last_steps))
            for stat in rank_spread.ALERT_FIELDS[kind]:
                values = stack.field(stat)
                s = rank_spread.spread(values)
                for d in rank_spread.departures(s.deviation, threshold, sustain):
                    found.append(_alert_json(stack, kind_name, stat, values, s, d))
        found.sort(key=lambda a: (a["firstStep"], a["rank"], -(a["deviation"] or 0.0)))
        ranks = []
        for rank, run in zip(family.ranks, family.runs):
            mine = [a for a in found if a["rank"] == rank]
            if mine:
                first = min(a["firstStep"] for a in mine)
                stats = sorted({f"{a['kind']}:{a['stat']}" for a in mine})
                ranks.append({"rank": rank, "run": run, "alerts": len(mine), "firstStep": first,
                              "layers": len({a["layer"] for a in mine}), "stats": stats})  # fmt: skip
        return {
            "family": family.name,
            "ranks": list(family.ranks),
            "runs": list(family.runs),
            "lastSteps": list(last_steps),
            "threshold": threshold,
            "sustain": sustain,
            "named": len(family.ranks) >= rank_spread.MIN_RANKS,
            "checked": {name: list(rank_spread.ALERT_FIELDS[kind]) for name, kind in KINDS.items()},
            "departingRanks": ranks,
            "totalAlerts": len(found),
            "alerts": found,
        }


def _later(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _family_json(name: str, stack: rank_spread.RankStack, kind: str) -> dict[str, Any]:
    return {
        "family": name,
        "kind": kind,
        "ranks": list(stack.ranks),
        "runs": list(stack.runs),
        "lastSteps": list(stack.last_steps),
    }


def _alert_json(
    stack: rank_spread.RankStack,
    kind: str,
    stat: str,
    values: np.ndarray,
    s: rank_spread.Spread,
    d: rank_spread.Departure,
) -> dict[str, Any]:
    """One departure: which rank, layer and statistic, from which step, and its numbers there."""
    return {
        "rank": stack.ranks[d.rank],
        "run": stack.runs[d.rank],
        "kind": kind,
        "layer": stack.layers[d.layer],
        "moduleType": stack.module_types[d.layer],
        "stat": stat,
        "firstStep": int(stack.steps[d.first]),
        "lastStep": int(stack.steps[d.last]),
        "steps": d.count,
        "value": finite_or_none(values[d.rank, d.layer, d.first]),
        "median": finite_or_none(s.median[d.layer, d.first]),
        "deviation": finite_or_none(s.deviation[d.rank, d.layer, d.first]),
    }
