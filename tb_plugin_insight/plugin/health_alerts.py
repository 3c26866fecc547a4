"""The transformer-health alerts of a run (/health_alerts): one list for every source of alerts.

An alert is a dict {"kind", "layer", "head" (None for layer-wide alerts), "first_step" (the first
recorded step the condition held), "value" (the measure at that step), "threshold"}, plus, where a kind
has them, "last_step", "steps" (how many recorded steps it held), "channels" (massive activations:
the channels, largest first) and "probe" (attention alerts: the probe they were measured on). A source
is a function of `AlertInput` returning its alerts, listed in SOURCES with its thresholds in THRESHOLDS:
massive activations, peak-to-RMS, and attention entropy collapse / logit growth
(plugin/attention_health.py). Thresholds come from the query (validated: 400 on a bad one).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Callable, Optional

import numpy as np

from tb_plugin_insight import metadata
from tb_plugin_insight.plugin import attention_health
from tb_plugin_insight.plugin.attention_queries import AttentionQueries
from tb_plugin_insight.plugin.health_queries import HealthQueries, massive_channels, table_peak_to_rms
from tb_plugin_insight.plugin.http import bad_request


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A query parameter of /health_alerts: a finite number in (low, high], `default` when absent."""

    name: str
    default: float
    low: float
    high: float
    doc: str


THRESHOLDS: list[Threshold] = [
    Threshold(
        "massive_ratio",
        metadata.DEFAULT_MASSIVE_RATIO,
        1.0,
        1e9,
        "a token layer's channel whose peak |a| exceeds this x the median channel peak (Sun et al. 2024)",
    ),
    Threshold(
        "peak_rms",
        100.0,
        1.0,
        1e9,
        "a layer whose max |a| exceeds this x its RMS (light-tailed values stay below ~8 at any size)",
    ),
    Threshold(
        "entropy_min",
        attention_health.ENTROPY_MIN,
        0.0,
        1.0,
        "an attention head whose normalised entropy falls below this (entropy collapse, Zhai et al. 2023)",
    ),
    Threshold(
        "logit_growth",
        attention_health.LOGIT_GROWTH,
        1.0,
        1e9,
        "an attention head whose max pre-softmax logit exceeds this x its first recorded value"
        " (Wortsman et al. 2023)",
    ),
]


def parse_thresholds(args: Mapping[str, str]) -> dict[str, float]:
    """Every threshold from the query `args` (the default when absent).

    Raises:
        InsightRequestError: 400 naming the parameter, its range and what was given.
    """
    values = {}
    for spec in THRESHOLDS:
        text = args.get(spec.name)
        if text is None or text == "":
            values[spec.name] = spec.default
            continue
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and spec.low < value <= spec.high):
            raise bad_request(
                f"{spec.name} must be a number above {spec.low:g} and at most {spec.high:g}"
                f" ({spec.doc}), got {text[:40]!r}"
            )
        values[spec.name] = value
    return values


@dataclasses.dataclass
class AlertInput:
    """What a source reads: the run, through the health queries, and the thresholds asked for."""

    health: HealthQueries
    ctx: Any
    eid: str
    run: str
    thresholds: dict[str, float]
    attention: Optional[AttentionQueries] = None  # the run's attention statistics (None: not read)


AlertSource = Callable[[AlertInput], list[dict[str, Any]]]


def _first_alerts(
    kind: str, names: list[str], steps: np.ndarray, values: np.ndarray, threshold: float
) -> list[tuple[int, dict[str, Any]]]:
    """(row, alert) for each row of `values` (layers x steps) that exceeds `threshold` at some step."""
    found = []
    with np.errstate(invalid="ignore"):
        over = values > threshold
    for i in np.flatnonzero(over.any(axis=1)):
        hits = np.flatnonzero(over[i])
        first = int(hits[0])
        alert = {
            "kind": kind,
            "layer": names[i],
            "head": None,
            "first_step": int(steps[first]),
            "value": float(values[i, first]),
            "threshold": threshold,
            "last_step": int(steps[hits[-1]]),
            "steps": len(hits),
        }
        found.append((first, alert))
    return found


def massive_alerts(inp: AlertInput) -> list[dict[str, Any]]:
    """Token layers with a channel whose peak exceeds massive_ratio x the median channel peak; value:
    the largest ratio at the first such step, channels: those above the threshold then."""
    table = inp.health.massive_table(inp.ctx, inp.eid, inp.run)
    if table is None:
        return []
    threshold = inp.thresholds["massive_ratio"]
    top = table.values[:, :, metadata.MASSIVE_FIELDS.index("topRatio0")]
    top = np.where(table.present, np.asarray(top, dtype=np.float64), np.nan)
    names = [d.layer for d in table.layers]
    alerts = []
    for first, alert in _first_alerts("massive_activations", names, table.steps, top, threshold):
        row = np.asarray(table.values[names.index(alert["layer"]), first], dtype=np.float64)
        alert["channels"] = massive_channels(row, threshold)
        alerts.append(alert)
    return alerts


def peak_rms_alerts(inp: AlertInput) -> list[dict[str, Any]]:
    """Layers whose max |a| / RMS exceeds peak_rms at some statistics step."""
    table = inp.health.stats_table(inp.ctx, inp.eid, inp.run)
    if table is None:
        return []
    rows, columns = np.arange(len(table.layers)), np.arange(len(table.steps))
    ratio = np.where(table.present, table_peak_to_rms(table, rows, columns), np.nan)
    names = [d.layer for d in table.layers]
    threshold = inp.thresholds["peak_rms"]
    return [alert for _, alert in _first_alerts("peak_to_rms", names, table.steps, ratio, threshold)]


def attention_alerts(inp: AlertInput) -> list[dict[str, Any]]:
    """Attention heads whose normalised entropy falls below entropy_min (collapse) or whose max logit
    grows past logit_growth x its first value, on every probe with attention statistics."""
    if inp.attention is None:
        return []
    return inp.attention.alerts(
        inp.ctx, inp.eid, inp.run, inp.thresholds["entropy_min"], inp.thresholds["logit_growth"]
    )


# Every source of health alerts, in the order their alerts are listed for the same first step.
SOURCES: list[AlertSource] = [massive_alerts, peak_rms_alerts, attention_alerts]


def health_alerts(
    health: HealthQueries,
    ctx: Any,
    eid: str,
    run: str,
    thresholds: dict[str, float],
    attention: Optional[AttentionQueries] = None,
) -> dict[str, Any]:
    """/health_alerts' answer: every source's alerts, by first step, the thresholds applied, and the
    health numbers the run has (`offered`: the statistics heatmap's extra choices)."""
    inp = AlertInput(health, ctx, eid, run, thresholds, attention)
    health.check_run(ctx, eid, run)
    alerts = [alert for source in SOURCES for alert in source(inp)]
    alerts.sort(key=lambda a: a["first_step"])  # stable: sources' order within a step
    return {
        "run": run,
        "thresholds": thresholds,
        "alerts": alerts,
        "offered": health.offered(ctx, eid, run),  # the health numbers the run has, for the heatmap
    }
