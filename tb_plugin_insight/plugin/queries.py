"""Pure query implementations: data_provider reads in, JSON-ready dicts out. No werkzeug here.

Every read goes through TensorBoard's `data_provider`, so the Rust data server, `--load_fast=false`
and remote log directories behave the same.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

import numpy as np
from tensorboard import errors as tb_errors
from tensorboard.data import provider as tb_provider

from tb_plugin_insight import metadata
from tb_plugin_insight.plugin import encode, layer_index, tables
from tb_plugin_insight.plugin.http import not_found, unreadable
from tb_plugin_insight.plugin.listings import MAX_LISTINGS, CachedReader, LruCache, RunListings

# Seconds a /runs answer is reused (listing every run's tags is the slowest read of a large logdir).
RUNS_TTL = 2.0
# A /runs listing that took longer (seconds) is refreshed in the background once older than RUNS_TTL:
# the request gets the previous answer at once, a later one the new answer.
SLOW_LISTING = 0.5
# Seconds before that background listing starts: it is seen only on the tab's next request anyway, and
# it costs the data server a second or more of CPU, which the requests of a view just opened need.
REFRESH_DELAY = 3.0

logger = logging.getLogger(__name__)

# What to ask of the provider when the user keeps everything (sampling hint 0 / unset).
ALL_POINTS = 1_000_000_000
# Steps in the first answer of a heatmap on a run not read yet (`max_steps` if fewer): reading 100 of
# 1,000 steps costs a tenth of reading them all, and the full read follows at once.
FIRST_SAMPLE = 100
# ... of one layer's charts (a line over the steps wants more points than a heatmap column count):
# 500 of a 300-layer x 10,000-step run's steps are a twentieth of its read.
LAYER_SAMPLE = 500
# One-layer tables kept (`layer_table`): a few KB each, for the layers clicked before a run's table is read.
MAX_SINGLE_LAYER_TABLES = 64


def finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def pooling_json(data: metadata.PluginData) -> dict[str, int]:
    """How stored maps were pooled: the block side (1: not) and the size before (the stored size when
    not pooled, or in records written before pooling existed)."""
    pooled = data.pool_factor > 1
    return {
        "poolFactor": data.pool_factor if pooled else 1,
        "sourceHeight": data.source_height if pooled else data.height,
        "sourceWidth": data.source_width if pooled else data.width,
    }


def _layer_json(data: metadata.PluginData, max_step: int) -> dict[str, Any]:
    return {
        "name": data.layer,
        "moduleType": data.module_type,
        "shape": list(data.shape),
        "order": data.order,
        "maxStep": int(max_step),
    }


class InsightQueries:
    """Reads Insight records of one TensorBoard instance (one data provider)."""

    def __init__(self, data_provider: Any, downsample: int, listings: RunListings | None = None) -> None:
        self._provider = data_provider
        self._downsample = downsample if downsample > 0 else ALL_POINTS
        self.listings = listings or RunListings(data_provider)
        self._tables = LruCache(tables.MAX_TABLES)
        self._samples = LruCache(tables.MAX_TABLES)  # first answers from a sample of the steps
        self._single = LruCache(MAX_SINGLE_LAYER_TABLES)  # one layer's table while its run's is unread
        self._read_before = LruCache(MAX_LISTINGS)  # (eid, run, kind) whose table was read
        self.results = LruCache()
        # eid -> (listed at, body, seconds the listing took)
        self._runs_cache: dict[str, tuple[float, dict[str, Any], float]] = {}
        self._runs_lock = threading.Lock()
        self._refreshing: set[str] = set()

    @property
    def provider(self) -> Any:
        """The data provider every read goes through."""
        return self._provider

    @property
    def downsample(self) -> int:
        """What reads ask of the provider (ALL_POINTS when the user keeps everything)."""
        return self._downsample

    def layer_sources(
        self,
        ctx: Any,
        eid: str,
        runs: Iterable[str] | None = None,
        kind: int = metadata.RecordKind.ACTIVATION_STATS,
    ) -> dict[str, dict[str, layer_index.LayerSource]]:
        """{run: {layer: source}} of the per-layer `kind`'s layers readable by this version, from v1
        tags and v2 layer tables alike (named runs: from their cached listings)."""
        if runs is None:
            listing = self._provider.list_tensors(ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME)
        else:
            listing = {run: self.listings.tensors(ctx, eid, run) for run in runs}
        result = {}
        for run, tags in listing.items():
            sources = layer_index.layer_sources(tags, kind)
            if sources:
                result[run] = sources
        return result

    def run_layers(self, ctx: Any, eid: str, run: str) -> dict[str, layer_index.LayerSource]:
        """The run's stats layers; {} for a run with only probes/maps; 404 for a run without Insight data."""
        layers = self.layer_sources(ctx, eid, [run]).get(run)
        if layers:
            return layers
        blobs = self.listings.blobs(ctx, eid, run)
        if any(layer_index.parse(series.plugin_content) is not None for series in blobs.values()):
            return {}
        raise not_found(f"run {run!r} has no Insight data")

    def runs(self, ctx: Any, eid: str) -> dict[str, Any]:
        """Every run with Insight data: layer statistics, or only probes and maps (e.g. add_cam).

        Listing every tag of every run costs ~1-3 s for 100 runs x 200 tags, so the answer is reused for
        RUNS_TTL seconds (TensorBoard itself reloads data every 5 s by default); after that, a listing
        that took SLOW_LISTING or more is refreshed in the background (REFRESH_DELAY seconds later)
        while the previous answer is served (the tab asks again on TensorBoard's next reload)."""
        cached = self._runs_cache.get(eid)
        if cached is not None:
            listed_at, body, cost = cached
            if self.listings.clock() - listed_at < RUNS_TTL:
                return body
            if cost >= SLOW_LISTING:
                self._refresh_runs(ctx, eid)
                return body
        return self._timed_list_runs(ctx, eid)

    def _timed_list_runs(self, ctx: Any, eid: str) -> dict[str, Any]:
        start = self.listings.clock()
        began = time.perf_counter()
        body = self._list_runs(ctx, eid)
        self._runs_cache[eid] = (start, body, time.perf_counter() - began)
        return body

    def _refresh_runs(self, ctx: Any, eid: str) -> None:
        """List the runs again on a background thread (one at a time per experiment)."""
        with self._runs_lock:
            if eid in self._refreshing:
                return
            self._refreshing.add(eid)

        def refresh() -> None:
            try:
                self._timed_list_runs(ctx, eid)
            except Exception:  # noqa: BLE001 - a failed refresh keeps the previous answer; the next retries
                logger.exception("Insight: listing the runs failed")
            finally:
                with self._runs_lock:
                    self._refreshing.discard(eid)

        timer = threading.Timer(REFRESH_DELAY, refresh)
        timer.name = "insight-runs-refresh"
        timer.daemon = True
        timer.start()

    def _list_runs(self, ctx: Any, eid: str) -> dict[str, Any]:
        listing = self.layer_sources(ctx, eid)
        max_steps = {run: max(s.max_step for s in layers.values()) for run, layers in listing.items()}
        blobs = self._provider.list_blob_sequences(ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME)
        for run, tags in blobs.items():
            readable = [s.max_step for s in tags.values() if layer_index.parse(s.plugin_content) is not None]
            if readable:
                max_steps[run] = max(max_steps.get(run, 0), *readable)
        runs = [
            {"run": run, "numLayers": len(listing.get(run, {})), "maxStep": int(step)}
            for run, step in sorted(max_steps.items())
        ]
        return {"runs": runs}

    def layers(self, ctx: Any, eid: str, run: str) -> dict[str, Any]:
        layers = self.run_layers(ctx, eid, run)
        ordered = sorted(layers.values(), key=lambda s: (s.data.order, s.data.layer))
        return {
            "run": run,
            "stats": list(metadata.STAT_FIELDS),
            "layers": [_layer_json(s.data, s.max_step) for s in ordered],
        }

    def read(
        self, ctx: Any, eid: str, run: str, tags: list[str], downsample: int | None = None
    ) -> dict[str, list[Any]]:
        result = self._provider.read_tensors(
            ctx,
            experiment_id=eid,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=downsample or self._downsample,
            run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=tags),
        )
        return result.get(run, {})

    def _ordered(
        self, ctx: Any, eid: str, run: str, kind: int
    ) -> tuple[list[layer_index.LayerSource], tuple[Any, ...]]:
        """The run's layers of `kind` in model order, and the cache key of their table."""
        layers = self.layer_sources(ctx, eid, [run], kind=kind).get(run, {})
        ordered = sorted(layers.values(), key=lambda s: (s.data.order, s.data.layer))
        signature = tuple((s.data.layer, s.signature()) for s in ordered)
        return ordered, (eid, run, kind, self._downsample, signature)

    def _build(
        self,
        ctx: Any,
        eid: str,
        run: str,
        kind: int,
        ordered: list[layer_index.LayerSource],
        downsample: int | None = None,
    ) -> tables.SeriesTable:
        data = self.read(ctx, eid, run, layer_index.tags_of(ordered), downsample)
        return tables.build_table(ordered, data, tables.fields_for(kind))

    def table(self, ctx: Any, eid: str, run: str, kind: int) -> tables.SeriesTable | None:
        """The run's (layers x steps x fields) table of `kind`, from the cache while nothing changed."""
        ordered, key = self._ordered(ctx, eid, run, kind)
        if not ordered:
            return None
        table = self._tables.get_or_make(key, lambda: self._build(ctx, eid, run, kind, ordered))
        self._read_before.put((eid, run, kind), True)
        return table

    def table_key(self, ctx: Any, eid: str, run: str, kind: int) -> tuple[Any, ...]:
        """What the run's table of `kind` depends on: new data, a new key."""
        return self._ordered(ctx, eid, run, kind)[1]

    def table_once(self, ctx: Any, eid: str, run: str, kind: int) -> tables.SeriesTable | None:
        """The run's table of `kind`: the cached one, else read without keeping it. For queries that
        combine many runs (a rank family), which would otherwise evict every other run's table."""
        ordered, key = self._ordered(ctx, eid, run, kind)
        if not ordered:
            return None
        cached = self._tables.get(key)
        return cached if cached is not None else self._build(ctx, eid, run, kind, ordered)

    def layer_table(
        self, ctx: Any, eid: str, run: str, kind: int, layer: str
    ) -> tuple[tables.SeriesTable | None, bool]:
        """(table, sampled): a table with `layer`'s rows. The run's table when it is cached; else, from
        v1 records, `layer` read alone, exact, also while the run's table is being read in the
        background (a 50th of a 50-layer run's read); else (layer tables: reading one layer is reading
        every layer) the run's first table, a sample of LAYER_SAMPLE steps on a run not read yet (see
        `first_table`). None when the run has no such layer of `kind`."""
        ordered, key = self._ordered(ctx, eid, run, kind)
        full = self._tables.get(key) if ordered else None
        if full is not None:
            return full, False
        one = [s for s in ordered if s.data.layer == layer]
        if not one:
            return None, False
        if not one[0].is_v1:
            return self.first_table(ctx, eid, run, kind, LAYER_SAMPLE)
        return self._single.get_or_make((key, layer), lambda: self._build(ctx, eid, run, kind, one)), False

    def first_table(
        self, ctx: Any, eid: str, run: str, kind: int, sample: int | None
    ) -> tuple[tables.SeriesTable | None, bool]:
        """(table, sampled): the run's table of `kind`; or, while nothing read it yet, the table of at
        most `sample` of its steps (the data provider's own `downsample`: a tenth of a full read's cost
        for 100 of 1,000 steps), the full table then being read in the background (sampled=True).
        A sample that holds every record (fewer than `sample` per layer) is the table itself. Only
        the first read of a run is sampled: when new data arrives, the tab keeps showing the previous
        answer until the full table is read (no flicker between sampled and exact columns)."""
        ordered, key = self._ordered(ctx, eid, run, kind)
        if not ordered:
            return None, False
        first = self._read_before.get((eid, run, kind)) is None
        if not first or sample is None or sample >= self._downsample or self._tables.get(key) is not None:
            return self.table(ctx, eid, run, kind), False
        sampled = self._samples.get_or_make(
            (key, sample), lambda: self._build(ctx, eid, run, kind, ordered, sample)
        )
        if int(sampled.present.sum(axis=1).max(initial=0)) < sample:
            self._tables.put(key, sampled)
            return sampled, False
        self._read_before.put((eid, run, kind), True)  # the next request waits for the full table
        self._read_in_background(ctx, eid, run, kind)
        return sampled, True

    def _read_in_background(self, ctx: Any, eid: str, run: str, kind: int) -> None:
        """Read the run's full table on a thread; a request for it meanwhile waits for that read."""

        def read() -> None:
            try:
                self.table(ctx, eid, run, kind)
            except Exception:  # noqa: BLE001 - the next request reads it again and reports the error
                logger.exception("Insight: reading the table of run %r failed", run)

        threading.Thread(target=read, name="insight-table", daemon=True).start()

    def stats_heatmap(
        self,
        ctx: Any,
        eid: str,
        run: str,
        stat: str,
        *,
        max_steps: int | None = None,
        encoding: str = "json",
    ) -> dict[str, Any]:
        """The layer x step matrix of `stat`, at most `max_steps` columns. The first answer on a run not
        read yet is a sample of FIRST_SAMPLE of its steps ("sampled": true, the data provider's own
        downsample, never for NaN/Inf counts, which must see every step); the full table is read in
        the background meanwhile, and the next request gets the exact columns."""
        sample = None if _is_count(stat) or max_steps is None else min(max_steps, FIRST_SAMPLE)
        table, sampled = self.first_table(ctx, eid, run, metadata.RecordKind.ACTIVATION_STATS, sample)
        if table is None:
            self.run_layers(ctx, eid, run)  # 404 unless the run has other Insight data
            values: Any = encode.matrix(np.zeros((0, 0)), encoding)
            return {"run": run, "stat": stat, "layers": [], "steps": [], "totalSteps": 0, "values": values}
        rows = np.arange(len(table.layers))
        columns = np.arange(len(table.steps))
        steps, by_field = _thin(table, rows, columns, [stat], max_steps, encoding)
        body = {
            "run": run,
            "stat": stat,
            "layers": [d.layer for d in table.layers],
            "steps": steps,
            "totalSteps": len(columns),
            "values": by_field[stat],
        }
        if sampled:
            del body["totalSteps"]  # unknown until every step is read
            body["sampled"] = True
        return body

    def layer_stats(self, ctx: Any, eid: str, run: str, layer: str) -> dict[str, Any]:
        table, sampled = self.layer_table(ctx, eid, run, metadata.RecordKind.ACTIVATION_STATS, layer)
        i = -1 if table is None else table.layer_index(layer)
        if table is None or i < 0:
            self.run_layers(ctx, eid, run)  # 404 unless the run has Insight data
            raise not_found(f"run {run!r} has no layer {layer!r}")
        data = table.layers[i]
        at = table.present[i]
        rows = table.values[i, at]
        body = {
            "run": run,
            "layer": layer,
            "moduleType": data.module_type,
            "shape": list(data.shape),
            "steps": table.steps[at].tolist(),
            "wallTimes": table.wall_times[i, at].tolist(),
            "stats": {name: encode.json_values(rows[:, k]) for k, name in enumerate(table.fields)},
        }
        if sampled:
            body["sampled"] = True
        return body

    def gradients(
        self,
        ctx: Any,
        eid: str,
        run: str,
        fields: list[str],
        *,
        layer: str | None = None,
        step: int | None = None,
        max_steps: int | None = None,
        encoding: str = "json",
        kind: int = metadata.RecordKind.GRADIENT_STATS,
    ) -> dict[str, Any]:
        """Gradient statistics, `values[field][layer][step]`: every layer at every recorded step, or
        only `layer`; only the recorded step at or before `step`; at most `max_steps` columns (see
        `bucket_starts`). `totalSteps` counts the recorded steps before any selection. `encoding`
        "f32": each field's matrix as encode.f32_matrix. `kind` GRADIENT_NOISE: the gradient noise rows
        of a distributed job instead (metadata.NOISE_FIELDS; layer "(model)": all layers together)."""
        sampled = False
        if layer is not None:
            table, sampled = self.layer_table(ctx, eid, run, kind, layer)
            if table is None and self._ordered(ctx, eid, run, kind)[0]:
                raise not_found(f"run {run!r} has no gradient statistics of layer {layer!r}")
        elif step is None and max_steps is not None:
            table, sampled = self.first_table(ctx, eid, run, kind, min(max_steps, FIRST_SAMPLE))
        else:
            table = self.table(ctx, eid, run, kind)
        if table is None:
            self.run_layers(ctx, eid, run)  # 404 unless the run has Insight data at all
            if layer is not None:
                raise not_found(f"run {run!r} has no gradient statistics of layer {layer!r}")
            empty = {f: encode.matrix(np.zeros((0, 0)), encoding) for f in fields}
            return {"run": run, "fields": fields, "layers": [], "steps": [], "totalSteps": 0, "values": empty}
        rows = np.arange(len(table.layers))
        if layer is not None:
            rows = rows[[d.layer == layer for d in table.layers]]
            if not len(rows):
                raise not_found(f"run {run!r} has no gradient statistics of layer {layer!r}")
        columns = np.flatnonzero(table.present[rows].any(axis=0))
        total = len(columns)
        if step is not None:
            columns = columns[table.steps[columns] <= step][-1:]
        steps, values = _thin(table, rows, columns, fields, max_steps, encoding)
        body = {
            "run": run,
            "fields": fields,
            "layers": [
                {"name": d.layer, "moduleType": d.module_type, "shape": list(d.shape), "order": d.order}
                for d in (table.layers[i] for i in rows)
            ],
            "steps": steps,
            "totalSteps": total,
            "values": values,
        }
        if sampled:
            del body["totalSteps"]  # unknown until every step is read
            body["sampled"] = True
        return body


def _blob_error_message(run: str, err: Exception) -> str:
    if '"' in run or "\\" in run:
        # TensorBoard's Rust data server builds blob keys as JSON and cannot parse back an escaped string.
        return (
            f"TensorBoard's data server cannot read stored images of run {run!r}: its name contains a"
            " double quote or a backslash (a TensorBoard limitation). Rename the run's directory, or"
            " start TensorBoard with --load_fast=false."
        )
    return f"TensorBoard could not read this image of run {run!r}: {err}"


def _thin(
    table: tables.SeriesTable,
    rows: np.ndarray,
    columns: np.ndarray,
    fields: list[str],
    max_steps: int | None,
    encoding: str = "json",
) -> tuple[list[int], dict[str, Any]]:
    """(steps, {field: values[row][column]}) of the chosen rows and step columns, at most `max_steps`
    columns (see `bucket_starts`), each field's matrix in `encoding` (encode.matrix)."""
    starts = bucket_starts(len(columns), max_steps)
    ends = np.append(starts[1:], len(columns)) - 1 if len(columns) else starts
    shown = columns[ends]
    values: dict[str, Any] = {}
    for field in fields:
        if _is_count(field) and len(starts) < len(columns):
            column = tables.field_max(table, field, rows, columns, starts)
        else:
            column = tables.field_matrix(table, field, rows, shown)
        values[field] = encode.matrix(column, encoding)
    return table.steps[shown].tolist(), values


def _is_count(field: str) -> bool:
    """NaN/Inf counts: a thinned column shows their maximum over its steps (never a sample)."""
    return field.endswith(("nanCount", "infCount", "NanCount", "InfCount"))


def bucket_starts(n: int, max_steps: int | None) -> np.ndarray:
    """Where each column starts when `n` consecutive recorded steps become at most `max_steps` columns.

    A column shows its last step's values, except NaN/Inf counts, which are the column's maximum,
    so thinning never hides a NaN or Inf."""
    if max_steps is None or n <= max_steps:
        return np.arange(n)
    return np.array([k * n // max_steps for k in range(max_steps)])


_MAP_KIND_NAMES = {metadata.RecordKind.CAM: "cam", metadata.RecordKind.SALIENCY: "saliency"}


class MapQueries:
    """Reads probe images, CAM/saliency map sprites and predictions (blob sequences and tensors)."""

    def __init__(self, data_provider: Any, downsample: int, listings: RunListings | None = None) -> None:
        self._provider = data_provider
        self._downsample = downsample if downsample > 0 else ALL_POINTS
        self._listings = listings or RunListings(data_provider)
        self._reader = CachedReader(data_provider, self._listings, self._downsample)

    def _blob_series(self, ctx: Any, eid: str, run: str) -> dict[str, metadata.PluginData]:
        """{tag: metadata} of this run's readable blob-sequence records (probe images and maps)."""
        found = {}
        for tag, series in self._listings.blobs(ctx, eid, run).items():
            data = layer_index.parse(series.plugin_content)
            if data is not None and data.kind in (metadata.RecordKind.PROBE_IMAGES, *_MAP_KIND_NAMES):
                found[tag] = data
        return found

    def _read_blobs(self, ctx: Any, eid: str, run: str, tags: list[str]) -> dict[str, list[Any]]:
        return self._reader.blobs(ctx, eid, run, tags)

    def _read_tensors(self, ctx: Any, eid: str, run: str, tags: list[str]) -> dict[str, list[Any]]:
        return self._reader.tensors(ctx, eid, run, tags)

    def _read_blob(self, ctx: Any, run: str, blob_key: str) -> bytes:
        """The stored bytes, or a 422 saying why TensorBoard could not read them."""
        try:
            return self._provider.read_blob(ctx, blob_key=blob_key)
        except tb_errors.InvalidArgumentError as err:
            raise unreadable(_blob_error_message(run, err)) from err

    def _probe_tag(self, ctx: Any, eid: str, run: str, probe: str) -> tuple[str, metadata.PluginData]:
        tag = metadata.tag_for(metadata.RecordKind.PROBE_IMAGES, probe=probe)
        data = self._blob_series(ctx, eid, run).get(tag)
        if data is None:
            raise not_found(f"run {run!r} has no probe {probe!r}")
        return tag, data

    def _latest_blob(self, ctx: Any, eid: str, run: str, tag: str) -> Any:
        data = sorted(self._read_blobs(ctx, eid, run, [tag]).get(tag, []), key=lambda d: d.step)
        if not data or not data[-1].values:
            raise not_found(f"run {run!r} has no data under {tag!r}")
        return data[-1]

    def probe(self, ctx: Any, eid: str, run: str, probe: str) -> dict[str, Any]:
        tag, data = self._probe_tag(ctx, eid, run, probe)
        latest = self._latest_blob(ctx, eid, run, tag)
        return {
            "run": run,
            "probe": probe,
            "numImages": data.num_images,
            "height": data.height,
            "width": data.width,
            "step": int(latest.step),
            "labels": list(data.labels) or None,
            "classNames": list(data.class_names) or None,
            "imageUrl": "probe_image?" + urllib.parse.urlencode({"run": run, "probe": probe}),
        }

    def probe_image(self, ctx: Any, eid: str, run: str, probe: str) -> bytes:
        tag, _ = self._probe_tag(ctx, eid, run, probe)
        latest = self._latest_blob(ctx, eid, run, tag)
        return self._read_blob(ctx, run, latest.values[0].blob_key)

    def maps(self, ctx: Any, eid: str, run: str) -> dict[str, Any]:
        series_meta = {t: d for t, d in self._blob_series(ctx, eid, run).items() if d.kind in _MAP_KIND_NAMES}
        steps_by_tag = self._read_blobs(ctx, eid, run, sorted(series_meta)) if series_meta else {}
        ranges = self._ranges(ctx, eid, run, series_meta.values())
        series = []
        for tag, data in series_meta.items():
            steps = sorted({int(d.step) for d in steps_by_tag.get(tag, [])})
            entry = {
                "kind": _MAP_KIND_NAMES[data.kind],
                "probe": data.probe,
                "layer": data.layer,
                "method": data.method,
                "auto": data.auto_selected,
                "height": data.height,
                "width": data.width,
                **pooling_json(data),
                "numImages": data.num_images,
                "steps": steps,
            }
            if data.layer_reason or data.layer_layout:  # CAMs recorded since these were stored
                entry.update({"layerReason": data.layer_reason, "layerLayout": data.layer_layout})
            by_step = ranges.get(metadata.ranges_tag_for(data.kind, data.layer, data.method, data.probe), {})
            if steps and all(step in by_step for step in steps):
                entry["rawMin"] = [[finite_or_none(v) for v in by_step[step][:, 0]] for step in steps]
                entry["rawMax"] = [[finite_or_none(v) for v in by_step[step][:, 1]] for step in steps]
            series.append(entry)
        series.sort(key=lambda s: (s["kind"], s["probe"], s["layer"], s["method"]))
        return {"run": run, "series": series}

    def _ranges(
        self, ctx: Any, eid: str, run: str, series: Iterable[metadata.PluginData]
    ) -> dict[str, dict[int, Any]]:
        """{ranges tag: {step: (N, 2) array}} for the given map series (one read for all of them)."""
        tags = [metadata.ranges_tag_for(d.kind, d.layer, d.method, d.probe) for d in series]
        if not tags:
            return {}
        return {
            tag: {int(d.step): d.numpy.reshape(-1, 2) for d in data}
            for tag, data in self._read_tensors(ctx, eid, run, sorted(tags)).items()
        }

    def map_image(
        self, ctx: Any, eid: str, run: str, kind: str, probe: str, layer: str, method: str, step: int
    ) -> bytes:
        tag = metadata.tag_for(metadata.MAP_KINDS[kind], layer, method, probe)
        if tag not in self._blob_series(ctx, eid, run):
            raise not_found(f"run {run!r} has no {kind} maps of method {method!r} for layer {layer!r}")
        for datum in self._read_blobs(ctx, eid, run, [tag]).get(tag, []):
            if int(datum.step) == step and datum.values:
                return self._read_blob(ctx, run, datum.values[-1].blob_key)
        raise not_found(f"no {kind} maps of method {method!r} for layer {layer!r} at step {step}")

    def predictions(self, ctx: Any, eid: str, run: str, probe: str) -> dict[str, Any]:
        self._probe_tag(ctx, eid, run, probe)
        tag = metadata.tag_for(metadata.RecordKind.PROBE_PREDICTIONS, probe=probe)
        points = sorted(self._read_tensors(ctx, eid, run, [tag]).get(tag, []), key=lambda d: d.step)
        per_step = [d.numpy.reshape(-1, 2) for d in points]
        return {
            "run": run,
            "probe": probe,
            "steps": [int(d.step) for d in points],
            "predicted": [[int(v) for v in table[:, 0]] for table in per_step],
            "probability": [[finite_or_none(v) for v in table[:, 1]] for table in per_step],
        }
