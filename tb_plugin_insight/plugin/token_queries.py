"""Text probes: their sequences, predictions and token saliency (PROBE_TOKENS, TOKEN_SALIENCY records).

Reads through the data provider only; the stored layout is token_records.py's. The view asks for the
list of text probes once (`probes`) and for one step at a time (`tokens`): the sequences in effect at
that step, the predictions and every method's token values (other per-token overlays, such as the
attention of a chosen query, can be added to `overlays` the same way).
"""

from __future__ import annotations

import json
from typing import Any

from tensorboard import errors as tb_errors

from tb_plugin_insight import metadata, token_records
from tb_plugin_insight.plugin import layer_index
from tb_plugin_insight.plugin.http import not_found, unreadable
from tb_plugin_insight.plugin.listings import CachedReader, LruCache, RunListings
from tb_plugin_insight.plugin.queries import ALL_POINTS

PROBE_TOKENS = metadata.RecordKind.PROBE_TOKENS
TOKEN_SALIENCY = metadata.RecordKind.TOKEN_SALIENCY
# Parsed documents kept by blob key (one small JSON document per token step).
MAX_DOCUMENTS = 4096


class TokenQueries:
    """Reads the text-probe records of one TensorBoard instance."""

    def __init__(self, data_provider: Any, downsample: int, listings: RunListings) -> None:
        self._provider = data_provider
        self._listings = listings
        self._reader = CachedReader(data_provider, listings, downsample if downsample > 0 else ALL_POINTS)
        self._documents = LruCache(MAX_DOCUMENTS)

    def _series(self, ctx: Any, eid: str, run: str) -> dict[str, metadata.PluginData]:
        found = {}
        for tag, series in self._listings.blobs(ctx, eid, run).items():
            data = layer_index.parse(series.plugin_content)
            if data is not None and data.kind in (PROBE_TOKENS, TOKEN_SALIENCY):
                found[tag] = data
        return found

    def probes(self, ctx: Any, eid: str, run: str) -> dict[str, Any]:
        """The run's text probes: sequences, length, task, steps and methods (empty list: none)."""
        series = self._series(ctx, eid, run)
        token_tags = sorted(t for t, d in series.items() if d.kind == PROBE_TOKENS)
        steps_by_tag = self._reader.blobs(ctx, eid, run, token_tags) if token_tags else {}
        probes = []
        for tag in token_tags:
            data = series[tag]
            methods = [
                {
                    "method": d.method,
                    "target": d.token_target,
                    "embeddingLayer": d.embedding_layer,
                    "steps": d.token_steps or None,
                    "baseline": d.token_baseline or None,
                }
                for d in series.values()
                if d.kind == TOKEN_SALIENCY and d.probe == data.probe
            ]
            probes.append(
                {
                    "probe": data.probe,
                    "numSequences": data.num_images,
                    "length": data.width,
                    "task": data.token_task,
                    "classNames": list(data.class_names) or None,
                    "steps": sorted({int(d.step) for d in steps_by_tag.get(tag, [])}),
                    "methods": sorted(methods, key=lambda m: m["method"]),
                }
            )
        return {"run": run, "probes": probes}

    def tokens(self, ctx: Any, eid: str, run: str, probe: str, step: int) -> dict[str, Any]:
        """One step of a text probe: the recorded step at or before `step`, its sequences, predictions
        and token saliency per method.

        Raises:
            InsightRequestError: 404 when the run has no such probe or nothing at or before `step`.
        """
        series = self._series(ctx, eid, run)
        tag = metadata.tag_for(PROBE_TOKENS, probe=probe)
        if tag not in series:
            raise not_found(f"run {run!r} has no text probe {probe!r}")
        points = sorted(self._reader.blobs(ctx, eid, run, [tag]).get(tag, []), key=lambda d: d.step)
        before = [p for p in points if int(p.step) <= step and p.values]
        if not before:
            raise not_found(f"text probe {probe!r} of run {run!r} has no record at or before step {step}")
        document = self._document(ctx, run, before[-1])
        sequences = next(
            (d for d in (self._document(ctx, run, p) for p in reversed(before)) if "tokens" in d), None
        )
        if sequences is None:
            raise not_found(f"text probe {probe!r} of run {run!r} has no stored sequences before step {step}")
        recorded = int(before[-1].step)
        n, length = len(sequences["tokens"]), len(sequences["tokens"][0]) if sequences["tokens"] else 0
        saliency = self._saliency(ctx, eid, run, series, probe, recorded, n, length)
        data = series[tag]
        return {
            "run": run,
            "probe": probe,
            "step": recorded,
            "steps": [int(p.step) for p in points],
            "task": data.token_task,
            "classNames": list(data.class_names) or None,
            **{k: sequences.get(k) for k in ("tokens", "ids", "mask", "labels", "labelNames")},
            **{
                k: document.get(k)
                for k in ("predicted", "probability", "predictedNames", "targets", "positions")
            },
            "saliency": saliency,
            "overlays": [{"kind": "saliency", "name": m} for m in sorted(saliency)],
        }

    def _saliency(
        self,
        ctx: Any,
        eid: str,
        run: str,
        series: dict[str, metadata.PluginData],
        probe: str,
        step: int,
        n: int,
        length: int,
    ) -> dict[str, list[list[float]]]:
        tags = sorted(t for t, d in series.items() if d.kind == TOKEN_SALIENCY and d.probe == probe)
        found = {}
        for tag, points in (self._reader.blobs(ctx, eid, run, tags) if tags else {}).items():
            for point in points:
                if int(point.step) == step and point.values:
                    blob = self._read_blob(ctx, run, point.values[0].blob_key)
                    try:
                        values = token_records.decode_saliency(blob, n, length)
                    except ValueError as err:
                        raise unreadable(f"run {run!r}, {tag!r} at step {step}: {err}") from None
                    found[series[tag].method] = values.astype(float).tolist()
        return found

    def _document(self, ctx: Any, run: str, point: Any) -> dict[str, Any]:
        key = point.values[0].blob_key

        def parse() -> dict[str, Any]:
            try:
                value = json.loads(self._read_blob(ctx, run, key).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise unreadable(
                    f"a text probe record of run {run!r} at step {point.step} is damaged: {err}"
                ) from None
            if not isinstance(value, dict):
                raise unreadable(f"a text probe record of run {run!r} at step {point.step} is not an object")
            return value

        return self._documents.get_or_make((run, key), parse)

    def _read_blob(self, ctx: Any, run: str, blob_key: str) -> bytes:
        try:
            return self._provider.read_blob(ctx, blob_key=blob_key)
        except tb_errors.InvalidArgumentError as err:
            raise unreadable(f"TensorBoard could not read a text probe record of run {run!r}: {err}") from err
