"""Attention maps and attention health of the probe, via the data provider (no torch).

ATTENTION_MAPS records are uint8 tensors of codes q standing for probability (q / 255)^2
(proto/plugin_data.proto); they are decoded here and sent as probabilities rounded to 5 decimals.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Optional

import numpy as np

from tb_plugin_insight import metadata
from tb_plugin_insight.plugin.attention_health import attention_alerts
from tb_plugin_insight.plugin.http import not_found
from tb_plugin_insight.plugin.layer_index import parse
from tb_plugin_insight.plugin.listings import CachedReader, RunListings
from tb_plugin_insight.plugin.queries import ALL_POINTS

MAPS = metadata.RecordKind.ATTENTION_MAPS
STATS = metadata.RecordKind.ATTENTION_STATS


def _layer_json(
    data: metadata.PluginData, steps: list[int], rows: Optional[metadata.PluginData]
) -> dict[str, Any]:
    return {
        "layer": data.layer,
        "moduleType": data.module_type,
        "order": data.order,
        "shape": list(data.shape),
        "heads": data.heads,
        "numQueries": data.num_queries,
        "numKeys": data.num_keys,
        "causal": data.causal,
        "queryRule": data.query_rule,
        "queryIndex": data.query_index,
        "gridSide": data.grid_side,
        "classTokens": data.class_tokens,
        "numImages": data.num_images,
        "rows": None
        if rows is None
        else {"numSamples": rows.num_images, "queryBlocks": list(rows.query_blocks)},
        "steps": steps,
    }


ENCODINGS = ("json", "u8")


def decode(codes: np.ndarray, encoding: str = "json") -> Any:
    """Stored codes as probabilities in nested lists rounded to 5 decimals ("json"), or as they are
    stored ("u8": {"u8": base64 of the row-major uint8 codes, "shape"}; p = (q / 255)^2)."""
    if encoding == "u8":
        data = np.ascontiguousarray(codes, dtype=np.uint8)
        return {"u8": base64.b64encode(data.tobytes()).decode("ascii"), "shape": list(data.shape)}
    return np.round((codes.astype(np.float64) / 255.0) ** 2, 5).tolist()


class AttentionQueries:
    """Reads ATTENTION_MAPS and ATTENTION_STATS of one TensorBoard instance."""

    def __init__(self, data_provider: Any, downsample: int, listings: Optional[RunListings] = None) -> None:
        self._listings = listings or RunListings(data_provider)
        self._reader = CachedReader(
            data_provider, self._listings, downsample if downsample > 0 else ALL_POINTS
        )

    def _series(self, ctx: Any, eid: str, run: str, kind: int, probe: str) -> dict[str, metadata.PluginData]:
        """{tag: metadata} of the run's series of `kind` for `probe`; 404 for a run without Insight data."""
        listing = self._listings.tensors(ctx, eid, run)
        found: dict[str, metadata.PluginData] = {}
        readable = False
        for tag, series in listing.items():
            data = parse(series.plugin_content)
            readable = readable or data is not None
            if data is not None and data.kind == kind and data.probe == probe:
                found[tag] = data
        if not readable and not self._listings.blobs(ctx, eid, run):
            raise not_found(f"run {run!r} has no Insight data")
        return found

    def _data(self, ctx: Any, eid: str, run: str, tags: list[str]) -> dict[str, list[Any]]:
        return self._reader.tensors(ctx, eid, run, tags) if tags else {}

    def layers(self, ctx: Any, eid: str, run: str, probe: str) -> dict[str, Any]:
        """Every attention module with maps of `probe`, in the order of computation, with its steps."""
        series = self._series(ctx, eid, run, MAPS, probe)
        maps = {t: d for t, d in series.items() if not d.query_rows}
        rows = {d.layer: d for d in series.values() if d.query_rows}
        data = self._data(ctx, eid, run, sorted(maps))
        steps = {t: sorted({int(d.step) for d in data.get(t, [])}) for t in maps}
        ordered = sorted(maps.items(), key=lambda item: (item[1].order, item[1].layer))
        return {
            "run": run,
            "probe": probe,
            # a text probe (its tokens are stored): no probe images to draw the attention on
            "text": self._is_text(ctx, eid, run, probe),
            "layers": [_layer_json(d, steps[t], rows.get(d.layer)) for t, d in ordered],
        }

    def _is_text(self, ctx: Any, eid: str, run: str, probe: str) -> bool:
        """Whether `probe` is a text probe of the run (its tokens are stored)."""
        for series in self._listings.blobs(ctx, eid, run).values():
            data = parse(series.plugin_content)
            if data is not None and data.kind == metadata.RecordKind.PROBE_TOKENS and data.probe == probe:
                return True
        return False

    def maps(
        self, ctx: Any, eid: str, run: str, layer: str, probe: str, step: int, encoding: str = "json"
    ) -> dict[str, Any]:
        """One module's attention at exactly `step`: the chosen query's [N][heads][keys] and, when
        stored, the per-query rows [S][heads][R][keys] (probabilities, or the stored codes: `decode`)."""
        tag = metadata.tag_for(MAPS, layer, probe=probe)
        rows_tag = metadata.attention_rows_tag(layer, probe)
        series = self._series(ctx, eid, run, MAPS, probe)
        if tag not in series:
            raise not_found(f"run {run!r} has no attention of module {layer!r} for probe {probe!r}")
        tags = [tag] + ([rows_tag] if rows_tag in series else [])
        data = self._data(ctx, eid, run, tags)
        found = {t: _at_step(data.get(t, []), step) for t in tags}
        chosen, rows = found[tag], found.get(rows_tag)
        if chosen is None:
            raise not_found(f"run {run!r} has no attention of module {layer!r} at step {step}")
        return {
            "run": run,
            "layer": layer,
            "step": step,
            "maps": decode(chosen, encoding),
            "rows": None if rows is None else decode(rows, encoding),
        }

    def alerts(
        self, ctx: Any, eid: str, run: str, entropy_min: float, logit_growth: float
    ) -> list[dict[str, Any]]:
        """The attention alerts of every probe of the run with attention statistics (none: []), each
        with its probe; for the transformer-health card (/health_alerts)."""
        probes: set[str] = set()
        for series in self._listings.tensors(ctx, eid, run).values():
            data = parse(series.plugin_content)
            if data is not None and data.kind == STATS:
                probes.add(data.probe)
        found: list[dict[str, Any]] = []
        for probe in sorted(probes):
            body = self.stats(ctx, eid, run, probe, entropy_min, logit_growth)
            found.extend({**alert, "probe": probe} for alert in body["alerts"])
        return found

    def stats(
        self, ctx: Any, eid: str, run: str, probe: str, entropy_min: float, logit_growth: float
    ) -> dict[str, Any]:
        """Normalised entropy and max logit per module and head over steps, and the alerts they raise."""
        series = self._series(ctx, eid, run, STATS, probe)
        if not series:
            raise not_found(f"run {run!r} has no attention statistics for probe {probe!r}")
        steps, layers, heads, entropy, logits = _merged(series, self._data(ctx, eid, run, sorted(series)))
        alerts = attention_alerts(
            steps, layers, entropy, logits, entropy_min=entropy_min, logit_growth=logit_growth
        )
        clean = lambda table: [[[v if math.isfinite(v) else None for v in row] for row in t] for t in table]  # noqa: E731
        return {
            "run": run,
            "probe": probe,
            "steps": steps,
            "layers": [{"layer": name, "heads": h} for name, h in zip(layers, heads)],
            "entropy": clean(entropy),
            "maxLogit": clean(logits),
            "alerts": alerts,
            "thresholds": {"entropyMin": entropy_min, "logitGrowth": logit_growth},
        }


def _merged(series: dict[str, metadata.PluginData], data: dict[str, list[Any]]) -> tuple[Any, ...]:
    """Steps, module names, heads, entropy [module][head][step] and max logit of every stats tag of a
    probe (one per module list), merged by module name; NaN where a module was not recorded."""
    found: dict[str, dict[int, np.ndarray]] = {}
    heads: dict[str, int] = {}
    for tag, meta in sorted(series.items()):
        for datum in data.get(tag, []):
            table = np.asarray(datum.numpy, dtype=np.float64)
            for i, entry in enumerate(meta.layers):
                count = int(entry.shape[1]) if len(entry.shape) > 1 else 0
                heads[entry.name] = max(heads.get(entry.name, 0), count)
                if table.ndim == 3 and i < table.shape[0]:
                    found.setdefault(entry.name, {})[int(datum.step)] = table[i]
    steps = sorted({step for by_step in found.values() for step in by_step})
    names = list(heads)

    def rows(name: str, row: int) -> list[list[float]]:
        by_step = found.get(name, {})
        return [[_at(by_step.get(s), row, h) for s in steps] for h in range(heads[name])]

    return steps, names, [heads[n] for n in names], [rows(n, 0) for n in names], [rows(n, 1) for n in names]


def _at_step(data: list[Any], step: int) -> Optional[np.ndarray]:
    for datum in data:
        if int(datum.step) == step:
            return np.asarray(datum.numpy)
    return None


def _at(values: Optional[np.ndarray], row: int, head: int) -> float:
    """values[row, head] of a module's [2, heads] rows, NaN when not recorded (or fewer heads)."""
    if values is None or values.ndim != 2 or head >= values.shape[1]:
        return math.nan
    return float(values[row, head])
