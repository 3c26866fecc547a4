"""`tb_plugin_insight.read(logdir)`: a logdir's Insight records as tidy tables and numpy arrays.

For notebooks and paper figures. It reads the way TensorBoard does, through TensorBoard's own loading
code (an `EventMultiplexer` keeping every step of the insight plugin, wrapped in its
`MultiplexerDataProvider`) and the plugin's own query classes, so every logdir the Insight tab shows
(schema v1 per-layer tags, v2 layer tables, or both in one run) reads the same, and what a method
returns is what the tab shows. No torch: reading needs only TensorBoard, numpy and Pillow; pandas is
optional (without it, tables are dicts of column name -> numpy array).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any, Callable, Optional, TypeVar

import numpy as np

from tb_plugin_insight import logdirs, metadata

T = TypeVar("T")

__all__ = ["InsightReader", "LayerHistograms", "Maps", "read"]


@dataclasses.dataclass(frozen=True)
class LayerHistograms:
    """A layer's activation histograms: row `i` is step `steps[i]`.

    `counts[i, b]` values fell in `[edges[i, b], edges[i, b + 1])` (the last bin closed, numpy's
    convention); `underflow[i]` / `overflow[i]` finite values fell below / above the layer's range."""

    layer: str
    module_type: str
    steps: np.ndarray  # int64 (steps,)
    edges: np.ndarray  # float64 (steps, bins + 1)
    counts: np.ndarray  # int64 (steps, bins)
    underflow: np.ndarray  # int64 (steps,)
    overflow: np.ndarray  # int64 (steps,)


@dataclasses.dataclass(frozen=True)
class Maps:
    """Recorded maps of one series, their stored 8-bit codes scaled back to recorded values.

    CAM and saliency: `values` is (steps, images, H, W). Feature maps: (steps, images, channels, H, W),
    channel `k` being the layer's channel `channels[k]`. Filters: (steps, filters, inputs, H, W), or
    (steps, filters, 1, H, W, 3) for RGB filters. Feature visualisations: (steps, channels, H, W) or
    (..., 3) for RGB, each tile in [0, 1] (stretched on its own: no scale is recorded). Token saliency:
    (steps, sequences, tokens), `layer` the embedding layer."""

    kind: str  # "cam", "saliency", "feature_maps", "filters", "feature_vis" or "token_saliency"
    probe: str  # "" for filters and feature visualisations
    layer: str  # "" for saliency
    method: str  # CAM and saliency method; "" otherwise
    steps: np.ndarray  # int64 (steps,)
    values: np.ndarray  # float64, shape above; NaN where no scale was recorded
    channels: tuple[int, ...] = ()  # feature maps, filters, feature visualisations
    # CAMs: why the layer was explained and how its output was read ("nchw", "nhwc", "tokens", "custom");
    # "" for other kinds and for records written before these were stored
    layer_reason: str = ""
    layer_layout: str = ""


def read(logdir: str | os.PathLike[str]) -> InsightReader:
    """Load every run under `logdir` (all their steps) and return a reader of their Insight records.

    `logdir` is a folder or a URL TensorBoard's file layer reads (`s3://bucket/runs`, `gs://...`; see
    docs/guides/remote-logdirs.md)."""
    return InsightReader(logdir)


class InsightReader:
    """A logdir's Insight records, read through TensorBoard's data provider and the plugin's queries.

    The logdir is loaded once, when the reader is made; `reload()` picks up what was written since.
    Every method raises ValueError naming what exists when its run, layer, probe or method does not."""

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self.logdir = os.fspath(logdir)
        if not logdirs.isdir(self.logdir):  # TensorBoard's file layer: local, s3://, gs://, ...
            raise ValueError(f"no such log directory: {self.logdir!r}")
        self.reload()

    def reload(self) -> None:
        """Read the logdir again (new runs and new steps); earlier results are not changed."""
        from tensorboard import context
        from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

        from tb_plugin_insight.plugin.attention_queries import AttentionQueries
        from tb_plugin_insight.plugin.health_queries import HealthQueries
        from tb_plugin_insight.plugin.layer_queries import LayerViewQueries
        from tb_plugin_insight.plugin.listings import RunListings
        from tb_plugin_insight.plugin.queries import InsightQueries, MapQueries
        from tb_plugin_insight.plugin.rank_queries import RankQueries
        from tb_plugin_insight.plugin.tile_queries import TileQueries
        from tb_plugin_insight.plugin.token_queries import TokenQueries

        hints = {metadata.PLUGIN_NAME: 0}  # 0: keep every step (TensorBoard's default keeps 10)
        mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance=hints)
        mux.AddRunsFromDirectory(self.logdir)
        mux.Reload()
        provider = data_provider.MultiplexerDataProvider(mux, self.logdir)
        listings = RunListings(provider)
        self._ctx = context.RequestContext()
        self._queries = InsightQueries(provider, 0, listings)
        self._maps = MapQueries(provider, 0, listings)
        self._layer_view = LayerViewQueries(self._queries)
        self._tiles = TileQueries(provider, 0, listings)
        self._ranks = RankQueries(self._queries)
        self._health = HealthQueries(self._queries)
        self._tokens = TokenQueries(provider, 0, listings)
        self._attention = AttentionQueries(provider, 0, listings)
        self._runs = [entry["run"] for entry in self._queries.runs(self._ctx, "")["runs"]]

    @property
    def runs(self) -> list[str]:
        """The runs with Insight data, sorted by name."""
        return list(self._runs)

    def layers(self, run: str) -> list[str]:
        """The layers with activation statistics, in model order."""
        self._check_run(run)
        body = self._ask(run, lambda: self._queries.layers(self._ctx, "", run))
        return [entry["name"] for entry in body["layers"]]

    # --- per-layer statistics: one row per recorded step and layer -------------------------------

    def stats(self, run: str) -> Any:
        """Activation statistics: columns `step`, `layer`, then metadata.STAT_FIELDS (`mean`, `std`,
        `min`, `max`, `zeroFraction`, `nanCount`, `infCount`, `numel`)."""
        return self._layer_table(run, metadata.RecordKind.ACTIVATION_STATS, metadata.STAT_FIELDS)

    def gradients(self, run: str) -> Any:
        """Gradient statistics: columns `step`, `layer`, then metadata.GRAD_FIELDS (`gradNorm`, ...,
        `updateRatio`, `actGradNorm`, ...)."""
        return self._layer_table(run, metadata.RecordKind.GRADIENT_STATS, metadata.GRAD_FIELDS)

    def gradient_noise(self, run: str) -> Any:
        """Gradient noise of a distributed job: columns `step`, `layer` ("(model)": all layers together),
        then metadata.NOISE_FIELDS (`gradSq`, `traceSigma`, `noiseScale`, ...)."""
        return self._layer_table(run, metadata.RecordKind.GRADIENT_NOISE, metadata.NOISE_FIELDS)

    def units(self, run: str) -> Any:
        """Dead and saturated units: columns `step`, `layer`, `deadFraction`, `saturatedFraction`,
        `channels`."""
        return self._layer_table(run, metadata.RecordKind.UNIT_STATS, metadata.UNIT_FIELDS)

    def massive_activations(self, run: str) -> Any:
        """Massive activations of the token layers (watch(health=True), the default): columns `step`,
        `layer`, then metadata.MASSIVE_FIELDS (`massiveCount`, `medianPeak`, `topIndex0..7`,
        `topRatio0..7`); NaN rows for layers that are not token layers. No rows for runs without them."""
        return self._layer_table(run, metadata.RecordKind.MASSIVE_ACTIVATIONS, metadata.MASSIVE_FIELDS)

    def peak_to_rms(self, run: str) -> Any:
        """Peak-to-RMS ratio (max |a| / RMS) of every layer at every statistics step, derived from the
        activation statistics: columns `step`, `layer`, `peakToRms`."""
        from tb_plugin_insight.plugin.health_queries import peak_to_rms

        stats = self.stats(run)
        ratio = peak_to_rms(*(np.asarray(stats[f], dtype=np.float64) for f in ("mean", "std", "min", "max")))
        return _frame(
            {"step": np.asarray(stats["step"]), "layer": np.asarray(stats["layer"]), "peakToRms": ratio}
        )

    def health_alerts(self, run: str, **thresholds: float) -> list[dict[str, Any]]:
        """The run's transformer-health alerts, as the tab lists them (plugin/health_alerts.py), with
        thresholds by name (`massive_ratio=100`, `peak_rms=100`, `entropy_min=0.1`, `logit_growth=10`;
        defaults for the others)."""
        from tb_plugin_insight.plugin import health_alerts

        self._check_run(run)
        known = {spec.name for spec in health_alerts.THRESHOLDS}
        unknown = sorted(set(thresholds) - known)
        if unknown:
            raise ValueError(f"unknown health threshold(s) {unknown}; known: {sorted(known)}")
        parsed = self._ask(run, health_alerts.parse_thresholds, {k: str(v) for k, v in thresholds.items()})
        body = self._ask(
            run, health_alerts.health_alerts, self._health, self._ctx, "", run, parsed, self._attention
        )
        return list(body["alerts"])

    def _layer_table(self, run: str, kind: int, fields: Sequence[str]) -> Any:
        self._check_run(run)
        table = self._ask(run, lambda: self._queries.table(self._ctx, "", run, kind))
        columns: dict[str, np.ndarray] = {"step": np.zeros(0, np.int64), "layer": _objects([])}
        if table is None:
            columns.update({field: np.zeros(0) for field in fields})
            return _frame(columns)
        at_step, at_layer = np.nonzero(table.present.T)  # step-major: by step, then model order
        names = [data.layer for data in table.layers]
        columns["step"] = table.steps[at_step].astype(np.int64)
        columns["layer"] = _objects([names[i] for i in at_layer])
        for k, field in enumerate(table.fields):
            columns[field] = np.asarray(table.values[at_layer, at_step, k], dtype=np.float64)
        return _frame(columns)

    # --- histograms -------------------------------------------------------------------------------

    def histograms(self, run: str, layer: str) -> LayerHistograms:
        """Every recorded activation histogram of `layer`, oldest first."""
        self._check_run(run)
        body = self._ask(run, lambda: self._layer_view.histograms(self._ctx, "", run, layer))
        steps = np.asarray(body["steps"], dtype=np.int64)
        bins = int(body["bins"])
        low = _floats(body["low"])
        high = _floats(body["high"])
        edges = low[:, None] + (high - low)[:, None] * np.linspace(0.0, 1.0, bins + 1)[None, :]
        return LayerHistograms(
            layer=layer,
            module_type=body["moduleType"],
            steps=steps,
            edges=edges.reshape(len(steps), bins + 1),
            counts=np.asarray(body["counts"], dtype=np.int64).reshape(len(steps), bins),
            underflow=np.asarray(body["underflow"], dtype=np.int64),
            overflow=np.asarray(body["overflow"], dtype=np.int64),
        )

    # --- CAM and saliency ---------------------------------------------------------------------------

    def map_series(self, run: str) -> list[dict[str, str]]:
        """The run's CAM and saliency series: [{"kind", "probe", "layer", "method"}] (layer "" for
        saliency), the names `cams` and `saliency` take."""
        self._check_run(run)
        body = self._ask(run, lambda: self._maps.maps(self._ctx, "", run))
        return [{key: s[key] for key in ("kind", "probe", "layer", "method")} for s in body["series"]]

    def cams(
        self, run: str, layer: Optional[str] = None, method: Optional[str] = None, probe: str = "probe"
    ) -> Maps:
        """CAMs of the probe's images, (steps, images, H, W) at the explained layer's resolution, in
        the method's raw units (each map's recorded [min, max] restored). `layer` and `method` may be
        left out when the run has one choice."""
        return self._map_values(run, "cam", layer, method, probe)

    def saliency(self, run: str, method: Optional[str] = None, probe: str = "probe") -> Maps:
        """Saliency maps of the probe's images, (steps, images, H, W) as stored (pooled to
        `saliency_max_side`), each map's recorded [min, max] restored."""
        return self._map_values(run, "saliency", None, method, probe)

    def _map_values(
        self, run: str, kind: str, layer: Optional[str], method: Optional[str], probe: str
    ) -> Maps:
        from tb_plugin_insight.render import png

        self._check_run(run)
        body = self._ask(run, lambda: self._maps.maps(self._ctx, "", run))
        every = [s for s in body["series"] if s["kind"] == kind]
        chosen = [
            s
            for s in every
            if s["probe"] == probe
            and (layer is None or s["layer"] == layer)
            and (method is None or s["method"] == method)
        ]
        if len(chosen) != 1:
            names = ", ".join(_series_name(s) for s in every) or "none"
            wanted = _series_name({"probe": probe, "layer": layer or "*", "method": method or "*"})
            problem = "no" if not chosen else "several"
            raise ValueError(f"run {run!r} has {problem} {kind} series {wanted}; it has: {names}")
        series = chosen[0]
        n, height, width = series["numImages"], series["height"], series["width"]
        steps = series["steps"]
        values = np.full((len(steps), n, height, width), np.nan)
        for i, step in enumerate(steps):
            where = (series["probe"], series["layer"], series["method"], step)
            image = self._ask(run, self._maps.map_image, self._ctx, "", run, kind, *where)
            codes = png.decode(image).astype(np.float64).reshape(n, height, width) / 255.0
            low = _floats(series["rawMin"][i]) if "rawMin" in series else np.zeros(n)
            high = _floats(series["rawMax"][i]) if "rawMax" in series else np.ones(n)
            values[i] = low[:, None, None] + codes * (high - low)[:, None, None]
        return Maps(
            kind=kind,
            probe=series["probe"],
            layer=series["layer"],
            method=series["method"],
            steps=np.asarray(steps, dtype=np.int64),
            values=values,
            layer_reason=series.get("layerReason", ""),
            layer_layout=series.get("layerLayout", ""),
        )

    # --- text probes ---------------------------------------------------------------------------------

    def text_probe(self, run: str, probe: str = "probe", step: Optional[int] = None) -> dict[str, Any]:
        """A text probe at its latest recorded step (or the one at or before `step`): "tokens", "ids",
        "mask", "labels", "labelNames", the model's "predicted" / "probability" / "predictedNames", the
        explained "targets" and "positions", "task", "steps", and "saliency" {method: (N, L) lists}."""
        self._check_run(run)
        listed = self._ask(run, lambda: self._tokens.probes(self._ctx, "", run))
        found = [p for p in listed["probes"] if p["probe"] == probe]
        if not found or not found[0]["steps"]:
            names = ", ".join(repr(p["probe"]) for p in listed["probes"]) or "none"
            raise ValueError(f"run {run!r} has no text probe {probe!r}; it has: {names}")
        at = found[0]["steps"][-1] if step is None else step
        return self._ask(run, lambda: self._tokens.tokens(self._ctx, "", run, probe, at))

    def token_saliency(self, run: str, method: Optional[str] = None, probe: str = "probe") -> Maps:
        """Token saliency of a text probe, `values` (steps, sequences, L) as recorded (int8 codes times
        each sequence's scale: within scale / 254 of the computed values); `layer` is the embedding
        layer. `method` may be left out when the run has one."""
        self._check_run(run)
        listed = self._ask(run, lambda: self._tokens.probes(self._ctx, "", run))
        found = [p for p in listed["probes"] if p["probe"] == probe]
        methods = found[0]["methods"] if found else []
        chosen = [m for m in methods if method is None or m["method"] == method]
        if len(chosen) != 1:
            names = ", ".join(m["method"] for m in methods) or "none"
            problem = "no" if not chosen else "several"
            raise ValueError(
                f"run {run!r} has {problem} token saliency {method or '*'!r} of probe {probe!r};"
                f" it has: {names}"
            )
        name = chosen[0]["method"]
        steps = found[0]["steps"]
        rows = [self._ask(run, self._tokens.tokens, self._ctx, "", run, probe, s)["saliency"] for s in steps]
        kept = [(s, r[name]) for s, r in zip(steps, rows) if name in r]
        values = np.asarray([v for _, v in kept], dtype=np.float64)
        return Maps(
            kind="token_saliency",
            probe=probe,
            layer=chosen[0]["embeddingLayer"],
            method=name,
            steps=np.asarray([s for s, _ in kept], dtype=np.int64),
            values=values,
        )

    # --- feature maps, filters, feature visualisations ----------------------------------------------

    def feature_maps(self, run: str, layer: str, probe: str = "probe") -> Maps:
        """Feature maps of `layer` for the probe's images, (steps, images, channels, H, W), each tile's
        recorded [min, max] restored (values within the quantisation step of the recorded ones)."""
        from tb_plugin_insight.plugin.tile_queries import FEATURE_MAPS

        return self._tiles_values(run, FEATURE_MAPS, layer, probe)

    def filters(self, run: str, layer: str) -> Maps:
        """Convolution filters of `layer`, (steps, filters, inputs, H, W), or (steps, filters, 1, H, W, 3)
        for RGB filters, each tile's recorded [min, max] restored."""
        from tb_plugin_insight.plugin.tile_queries import FILTERS

        return self._tiles_values(run, FILTERS, layer, metadata.DEFAULT_PROBE)

    def _tiles_values(self, run: str, kind: int, layer: str, probe: str) -> Maps:
        from tb_plugin_insight.plugin.tile_queries import FEATURE_MAPS
        from tb_plugin_insight.render import png

        self._check_run(run)
        name = "feature_maps" if kind == FEATURE_MAPS else "filters"
        first = self._ask(run, lambda: self._tiles.series(self._ctx, "", run, kind, layer, probe, None))
        height, width = first["height"], first["width"]
        stacks = []
        for step in first["steps"]:
            body = self._ask(run, self._tiles.series, self._ctx, "", run, kind, layer, probe, step)
            image = self._ask(run, self._tiles.image, self._ctx, "", run, kind, layer, probe, step)
            codes = png.ungrid(png.decode(image), height, width).astype(np.float64) / 255.0
            if body["scaleMin"] is None:
                stacks.append(np.full(codes.shape, np.nan))
                continue
            low, high = _floats(body["scaleMin"]), _floats(body["scaleMax"])
            extra = (None,) * (codes.ndim - 2)  # (rows, columns, h, w[, 3])
            stacks.append(low[(...,) + extra] + codes * (high - low)[(...,) + extra])
        channels = first["channels"] if kind == FEATURE_MAPS else first["filters"]
        return Maps(
            kind=name,
            probe=probe if kind == FEATURE_MAPS else "",
            layer=layer,
            method="",
            steps=np.asarray(first["steps"], dtype=np.int64),
            values=_stack(stacks),
            channels=tuple(int(c) for c in channels),
        )

    def feature_vis(self, run: str, layer: str) -> Maps:
        """Feature visualisations of `layer`: (steps, channels, H, W), or (..., 3) for RGB, in [0, 1];
        tile `k` maximises the layer's channel `channels[k]`."""
        from tb_plugin_insight.plugin.tile_queries import FEATURE_VIS
        from tb_plugin_insight.render import png

        self._check_run(run)
        listed = self._ask(run, lambda: self._tiles.feature_vis_layers(self._ctx, "", run))["featureVis"]
        found = [entry for entry in listed if entry["layer"] == layer]
        if not found:
            names = ", ".join(repr(entry["layer"]) for entry in listed) or "none"
            raise ValueError(f"run {run!r} has no feature visualisations of layer {layer!r}; it has: {names}")
        entry = found[0]
        stacks = []
        for step in entry["steps"]:
            where = (FEATURE_VIS, layer, metadata.DEFAULT_PROBE, step)
            image = self._ask(run, self._tiles.image, self._ctx, "", run, *where)
            tiles = png.ungrid(png.decode(image), entry["height"], entry["width"])[0]
            stacks.append(tiles.astype(np.float64) / 255.0)
        return Maps(
            kind="feature_vis",
            probe="",
            layer=layer,
            method="",
            steps=np.asarray(entry["steps"], dtype=np.int64),
            values=_stack(stacks),
            channels=tuple(int(c) for c in entry["channels"]),
        )

    # --- attention on the probe ---------------------------------------------------------------------

    def attention(self, run: str, layer: str, probe: str = "probe") -> dict[str, Any]:
        """One attention module's maps: `steps` (S,), `maps` (S, N, heads, keys) probabilities of the
        chosen query (`queryRule`), `rows` (S, samples, heads, R, keys) or None, and its metadata
        (`/attention_layers`' entry: heads, keys, grid, query blocks, ...)."""
        self._check_run(run)
        listed = self._ask(run, lambda: self._attention.layers(self._ctx, "", run, probe))["layers"]
        entry = next((e for e in listed if e["layer"] == layer), None)
        if entry is None:
            names = ", ".join(repr(e["layer"]) for e in listed) or "none"
            raise ValueError(f"run {run!r} has no attention of module {layer!r}; modules: {names}")
        bodies = [self._ask(run, lambda s=s: self._attention.maps(self._ctx, "", run, layer, probe, s))
                  for s in entry["steps"]]  # fmt: skip
        rows = [b["rows"] for b in bodies]
        return {
            **entry,
            "steps": np.asarray(entry["steps"], dtype=np.int64),
            "maps": np.asarray([b["maps"] for b in bodies], dtype=np.float32),
            "rows": None if not rows or rows[0] is None else np.asarray(rows, dtype=np.float32),
        }

    def attention_stats(self, run: str, probe: str = "probe") -> Any:
        """Attention health: columns `step`, `layer`, `head`, `entropy` (normalised), `maxLogit`."""
        self._check_run(run)
        body = self._ask(run, lambda: self._attention.stats(self._ctx, "", run, probe, 0.1, 10.0))
        columns: dict[str, list[Any]] = {"step": [], "layer": [], "head": [], "entropy": [], "maxLogit": []}
        for index, layer in enumerate(body["layers"]):
            for head in range(layer["heads"]):
                for s, step in enumerate(body["steps"]):
                    columns["step"].append(step)
                    columns["layer"].append(layer["layer"])
                    columns["head"].append(head)
                    columns["entropy"].append(body["entropy"][index][head][s])
                    columns["maxLogit"].append(body["maxLogit"][index][head][s])
        return _frame(
            {
                "step": np.asarray(columns["step"], dtype=np.int64),
                "layer": _objects(columns["layer"]),
                "head": np.asarray(columns["head"], dtype=np.int64),
                "entropy": _floats(columns["entropy"]),
                "maxLogit": _floats(columns["maxLogit"]),
            }
        )

    # --- probe, predictions, model table ------------------------------------------------------------

    def probe_images(self, run: str, probe: str = "probe") -> np.ndarray:
        """The probe's images as recorded (the latest), uint8 (images, H, W, 3)."""
        from tb_plugin_insight.render import png

        self._check_run(run)
        body = self._ask(run, lambda: self._maps.probe(self._ctx, "", run, probe))
        image = self._ask(run, lambda: self._maps.probe_image(self._ctx, "", run, probe))
        return png.decode(image).reshape(body["numImages"], body["height"], body["width"], -1)

    def predictions(self, run: str, probe: str = "probe") -> Any:
        """The model's predictions on the probe: columns `step`, `image`, `predicted` (class index),
        `probability`."""
        self._check_run(run)
        body = self._ask(run, lambda: self._maps.predictions(self._ctx, "", run, probe))
        per_step = [len(row) for row in body["predicted"]]
        return _frame(
            {
                "step": np.repeat(np.asarray(body["steps"], dtype=np.int64), per_step),
                "image": np.concatenate([np.arange(n) for n in per_step] or [np.zeros(0, np.int64)]),
                "predicted": np.asarray([c for row in body["predicted"] for c in row], dtype=np.int64),
                "probability": _floats([p for row in body["probability"] for p in row]),
            }
        )

    def model(self, run: str) -> dict[str, Any]:
        """The run's latest model table document (modelType, params, totals, step, rows: a list of
        dicts; docs/storage.md), or its rows empty when the run has none."""
        self._check_run(run)
        return self._ask(run, lambda: self._layer_view.model(self._ctx, "", run))

    def model_table(self, run: str) -> Any:
        """The model table, one row per module in `model.named_modules()` order: columns `name`,
        `type`, `depth`, `params`, `trainableParams`, `ownParams`, `watched`, `output`, `calls`, and
        torchinfo's `kernelSize`, `multAdds`, ... where recorded."""
        rows = self.model(run)["rows"]
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row))
        return _frame({name: _column([row.get(name) for row in rows]) for name in names})

    # --- distributed jobs: the runs <family>/rank<r> of InsightWriter(ranks="all") ------------------

    def rank_families(self) -> dict[str, list[str]]:
        """{family: its runs by rank} of every family of two or more per-rank runs ("." for runs
        rank0, rank1, ... at the top of the logdir)."""
        return {f["family"]: f["runs"] for f in self._ranks.families(self._ctx, "")["families"]}

    def rank_alerts(self, family: str, threshold: float = 8.0, sustain: int = 3) -> Any:
        """The ranks of `family` that depart from the others (the tab's Ranks view, HTTP
        `/rank_alerts`), first step first: columns `rank`, `run`, `kind`, `layer`, `moduleType`,
        `stat`, `firstStep`, `lastStep`, `steps`, `value`, `median`, `deviation`."""
        if not threshold > 0 or int(sustain) < 1:
            raise ValueError(
                f"threshold must be above 0 and sustain at least 1, got {threshold!r}, {sustain!r}"
            )
        where = (self._ctx, "", family, float(threshold), int(sustain), None)
        alerts = self._ask(family, self._ranks.alerts, *where)["alerts"]
        columns = ("rank", "run", "kind", "layer", "moduleType", "stat", "firstStep", "lastStep", "steps")
        table = {c: _column([a[c] for a in alerts]) if alerts else np.zeros(0, dtype=object) for c in columns}
        for c in ("value", "median", "deviation"):
            table[c] = _floats([a[c] for a in alerts])
        return _frame(table)

    # --- helpers ------------------------------------------------------------------------------------

    def _check_run(self, run: str) -> None:
        if run not in self._runs:
            known = ", ".join(repr(r) for r in self._runs) or "none"
            raise ValueError(f"no run {run!r} with Insight data in {self.logdir!r}; runs: {known}")

    def _ask(self, run: str, query: Callable[..., T], *args: Any) -> T:
        """`query(*args)`, with the plugin's user errors (404s: no such layer, probe, step) as ValueError."""
        from tensorboard import errors as tb_errors

        from tb_plugin_insight.plugin.http import InsightRequestError

        try:
            return query(*args)
        except InsightRequestError as err:
            raise ValueError(err.message) from None
        except tb_errors.PublicError as err:
            raise ValueError(f"run {run!r}: {err}") from None


def _series_name(series: dict[str, Any]) -> str:
    parts = [f"probe={series['probe']!r}", f"method={series['method']!r}"]
    if series.get("layer"):
        parts.insert(1, f"layer={series['layer']!r}")
    return "(" + ", ".join(parts) + ")"


def _floats(values: Sequence[Any]) -> np.ndarray:
    """A JSON list of numbers (None: not finite) as float64, None as NaN."""
    return np.array([np.nan if v is None else v for v in _flat(values)], dtype=np.float64).reshape(
        np.shape(np.asarray(values, dtype=object))
    )


def _flat(values: Any) -> list[Any]:
    if isinstance(values, (list, tuple)):
        return [v for item in values for v in _flat(item)]
    return [values]


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    if not arrays:
        return np.zeros((0,))
    return np.stack(arrays)


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of `values` (lists stay elements, not a second axis)."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def _column(values: list[Any]) -> np.ndarray:
    """A model-table column: bool, int64 or float64 when every entry is one, else objects."""
    if values and all(isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=bool)
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.float64)
    return _objects(values)


def _frame(columns: dict[str, np.ndarray]) -> Any:
    """A pandas DataFrame of `columns` when pandas is installed, else the dict itself."""
    try:
        import pandas
    except ImportError:
        return columns
    return pandas.DataFrame(columns)
