"""InsightPlugin: the route table of the Insight tab. Routes parse and validate; queries do the work."""

from __future__ import annotations

import math
from typing import Any, Callable

from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import Request, Response

from tb_plugin_insight import metadata
from tb_plugin_insight.plugin import assets, attention_health, attention_queries, encode, health_alerts, http
from tb_plugin_insight.plugin.attention_queries import AttentionQueries
from tb_plugin_insight.plugin.health_queries import HEALTH_STATS, HealthQueries
from tb_plugin_insight.plugin.layer_queries import LayerViewQueries
from tb_plugin_insight.plugin.listings import RunListings
from tb_plugin_insight.plugin.queries import InsightQueries, MapQueries
from tb_plugin_insight.plugin.rank_queries import FIELDS as RANK_FIELDS
from tb_plugin_insight.plugin.rank_queries import RankQueries
from tb_plugin_insight.plugin.rank_spread import DEFAULT_SUSTAIN, DEFAULT_THRESHOLD
from tb_plugin_insight.plugin.tile_queries import FEATURE_MAPS, FEATURE_VIS, FILTERS, TileQueries
from tb_plugin_insight.plugin.token_queries import TokenQueries

PNG = "image/png"


def _request_context(request: Request) -> tuple[Any, str]:
    from tensorboard import plugin_util

    return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)


class InsightPlugin(base_plugin.TBPlugin):
    """Backend of the Insight tab; all data comes from `context.data_provider`."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        hints = context.sampling_hints or {}
        downsample = int(hints.get(self.plugin_name, 0))
        listings = RunListings(context.data_provider)  # one per TensorBoard, shared by every query
        self._queries = InsightQueries(context.data_provider, downsample, listings)
        self._maps = MapQueries(context.data_provider, downsample, listings)
        self._layer_view = LayerViewQueries(self._queries)
        self._tiles = TileQueries(context.data_provider, downsample, listings)
        self._ranks = RankQueries(self._queries)
        self._health = HealthQueries(self._queries)
        self._tokens = TokenQueries(context.data_provider, downsample, listings)
        self._attention = AttentionQueries(context.data_provider, downsample, listings)

    def get_plugin_apps(self) -> dict[str, Callable[..., Any]]:
        return {
            "/index.js": self._serve_index_js,
            "/attention_layers": self._serve_attention_layers,
            "/attention": self._serve_attention,
            "/attention_stats": self._serve_attention_stats,
            "/feature_map_layers": self._serve_feature_map_layers,
            "/feature_maps": self._serve_feature_maps,
            "/feature_map_image": self._serve_feature_map_image,
            "/filters": self._serve_filters,
            "/filter_image": self._serve_filter_image,
            "/feature_vis_layers": self._serve_feature_vis_layers,
            "/feature_vis_image": self._serve_feature_vis_image,
            "/runs": self._serve_runs,
            "/layers": self._serve_layers,
            "/stats_heatmap": self._serve_stats_heatmap,
            "/layer_stats": self._serve_layer_stats,
            "/gradients": self._serve_gradients,
            "/gradient_noise": self._serve_gradient_noise,
            "/probe": self._serve_probe,
            "/probe_image": self._serve_probe_image,
            "/maps": self._serve_maps,
            "/map_image": self._serve_map_image,
            "/predictions": self._serve_predictions,
            "/histograms": self._serve_histograms,
            "/param_histograms": self._serve_param_histograms,
            "/units": self._serve_units,
            "/model": self._serve_model,
            "/rank_families": self._serve_rank_families,
            "/rank_spread": self._serve_rank_spread,
            "/rank_layer": self._serve_rank_layer,
            "/rank_alerts": self._serve_rank_alerts,
            "/health_alerts": self._serve_health_alerts,
            "/layer_health": self._serve_layer_health,
            "/token_probes": self._serve_token_probes,
            "/tokens": self._serve_tokens,
        }

    def is_active(self) -> bool:
        return False  # TensorBoard shows the tab when data with our plugin name exists

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Insight")

    @http.route
    def _serve_index_js(self, request: Request) -> Response:
        found = assets.read_asset("index.js")
        if found is None:
            raise http.not_found("the frontend bundle is missing; run scripts/build_frontend.sh")
        body, mime = found
        return http_util.Respond(request, body, mime)

    @http.route
    def _serve_runs(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        return http.respond_json(request, self._queries.runs(ctx, eid))

    @http.route
    def _serve_layers(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run = http.get_param(request, "run")
        return http.respond_json(request, self._queries.layers(ctx, eid, run))

    @http.route
    def _serve_stats_heatmap(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run = http.get_param(request, "run")
        stat = http.get_param(request, "stat", allowed=(*metadata.STAT_FIELDS, *HEALTH_STATS))
        max_steps, encoding = _max_steps_param(request), _encoding_param(request)
        if stat in HEALTH_STATS:
            body = self._health.heatmap(ctx, eid, run, stat, max_steps=max_steps, encoding=encoding)
        else:
            body = self._queries.stats_heatmap(ctx, eid, run, stat, max_steps=max_steps, encoding=encoding)
        return http.respond_json(request, body)

    @http.route
    def _serve_layer_stats(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run = http.get_param(request, "run")
        layer = http.get_param(request, "layer")
        return http.respond_json(request, self._queries.layer_stats(ctx, eid, run, layer))

    @http.route
    def _serve_gradients(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run = http.get_param(request, "run")
        fields = http.get_list_param(request, "fields", allowed=metadata.GRAD_FIELDS)
        layer = http.get_param(request, "layer", required=False) or None
        step = http.get_step(request) if request.args.get("step") is not None else None
        body = self._queries.gradients(
            ctx,
            eid,
            run,
            fields or list(metadata.GRAD_FIELDS),
            layer=layer,
            step=step,
            max_steps=_max_steps_param(request),
            encoding=_encoding_param(request),
        )
        return http.respond_json(request, body)

    @http.route
    def _serve_gradient_noise(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run = http.get_param(request, "run")
        fields = http.get_list_param(request, "fields", allowed=metadata.NOISE_FIELDS)
        body = self._queries.gradients(
            ctx,
            eid,
            run,
            fields or list(metadata.NOISE_FIELDS),
            max_steps=_max_steps_param(request),
            kind=metadata.RecordKind.GRADIENT_NOISE,
        )
        return http.respond_json(request, body)

    @http.route
    def _serve_probe(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run, probe = http.get_param(request, "run"), _probe_param(request)
        return http.respond_json(request, self._maps.probe(ctx, eid, run, probe))

    @http.route
    def _serve_probe_image(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run, probe = http.get_param(request, "run"), _probe_param(request)
        return http_util.Respond(request, self._maps.probe_image(ctx, eid, run, probe), PNG)

    @http.route
    def _serve_maps(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        return http.respond_json(request, self._maps.maps(ctx, eid, http.get_param(request, "run")))

    @http.route
    def _serve_map_image(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run = http.get_param(request, "run")
        kind = http.get_param(request, "kind", allowed=metadata.MAP_KINDS)
        layer = http.get_param(request, "layer", required=False) or ""
        method = http.get_param(request, "method")
        step = http.get_step(request)
        body = self._maps.map_image(ctx, eid, run, kind, _probe_param(request), layer, method, step)
        return http_util.Respond(request, body, PNG)

    @http.route
    def _serve_predictions(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run, probe = http.get_param(request, "run"), _probe_param(request)
        return http.respond_json(request, self._maps.predictions(ctx, eid, run, probe))

    @http.route
    def _serve_histograms(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run, layer = http.get_param(request, "run"), http.get_param(request, "layer")
        return http.respond_json(request, self._layer_view.histograms(ctx, eid, run, layer))

    @http.route
    def _serve_param_histograms(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run, layer = http.get_param(request, "run"), http.get_param(request, "layer")
        return http.respond_json(request, self._layer_view.param_histograms(ctx, eid, run, layer))

    @http.route
    def _serve_units(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run = http.get_param(request, "run")
        body = self._layer_view.units(
            ctx, eid, run, max_steps=_max_steps_param(request), encoding=_encoding_param(request)
        )
        return http.respond_json(request, body)

    @http.route
    def _serve_model(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        return http.respond_json(request, self._layer_view.model(ctx, eid, http.get_param(request, "run")))

    @http.route
    def _serve_health_alerts(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run = http.get_param(request, "run")
        thresholds = health_alerts.parse_thresholds(request.args)
        return http.respond_json(
            request, health_alerts.health_alerts(self._health, ctx, eid, run, thresholds, self._attention)
        )

    @http.route
    def _serve_layer_health(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run, layer = http.get_param(request, "run"), http.get_param(request, "layer")
        return http.respond_json(request, self._health.layer(ctx, eid, run, layer))

    @http.route
    def _serve_feature_map_layers(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run, probe = http.get_param(request, "run"), _probe_param(request)
        return http.respond_json(request, self._tiles.layers(ctx, eid, run, probe))

    def _tile_series(self, request: Request, kind: int) -> Response:
        ctx, eid = _request_context(request)
        run, layer = http.get_param(request, "run"), http.get_param(request, "layer")
        step = http.get_step(request) if http.get_param(request, "step", required=False) else None
        body = self._tiles.series(ctx, eid, run, kind, layer, _probe_param(request), step)
        return http.respond_json(request, body)

    def _tile_image(self, request: Request, kind: int) -> Response:
        ctx, eid = _request_context(request)
        run, layer = http.get_param(request, "run"), http.get_param(request, "layer")
        step = http.get_step(request)
        body = self._tiles.image(ctx, eid, run, kind, layer, _probe_param(request), step)
        return http_util.Respond(request, body, PNG)

    @http.route
    def _serve_feature_maps(self, request: Request) -> Response:
        return self._tile_series(request, FEATURE_MAPS)

    @http.route
    def _serve_feature_map_image(self, request: Request) -> Response:
        return self._tile_image(request, FEATURE_MAPS)

    @http.route
    def _serve_filters(self, request: Request) -> Response:
        return self._tile_series(request, FILTERS)

    @http.route
    def _serve_filter_image(self, request: Request) -> Response:
        return self._tile_image(request, FILTERS)

    @http.route
    def _serve_feature_vis_layers(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run = http.get_param(request, "run")
        return http.respond_json(request, self._tiles.feature_vis_layers(ctx, eid, run))

    @http.route
    def _serve_feature_vis_image(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run, layer = http.get_param(request, "run"), http.get_param(request, "layer")
        step = http.get_step(request)
        body = self._tiles.image(ctx, eid, run, FEATURE_VIS, layer, metadata.DEFAULT_PROBE, step)
        return http_util.Respond(request, body, PNG)

    @http.route
    def _serve_token_probes(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        return http.respond_json(request, self._tokens.probes(ctx, eid, http.get_param(request, "run")))

    @http.route
    def _serve_tokens(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run, probe, step = http.get_param(request, "run"), _probe_param(request), http.get_step(request)
        return http.respond_json(request, self._tokens.tokens(ctx, eid, run, probe, step))

    @http.route
    def _serve_rank_families(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        return http.respond_json(request, self._ranks.families(ctx, eid))

    @http.route
    def _serve_rank_spread(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        family, kind, stat = _rank_params(request)
        body = self._ranks.spread(
            ctx,
            eid,
            family,
            kind,
            stat,
            max_steps=_max_steps_param(request),
            encoding=_encoding_param(request),
        )
        return http.respond_json(request, body)

    @http.route
    def _serve_rank_layer(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        family, kind, stat = _rank_params(request)
        layer = http.get_param(request, "layer")
        return http.respond_json(request, self._ranks.layer(ctx, eid, family, kind, stat, layer))

    @http.route
    def _serve_rank_alerts(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        family = http.get_param(request, "family")
        threshold = DEFAULT_THRESHOLD
        if "threshold" in request.args:
            threshold = http.get_positive_float(request, "threshold", limit=1e6)
        sustain = (
            http.get_positive_int(request, "sustain", limit=10_000)
            if "sustain" in request.args
            else DEFAULT_SUSTAIN
        )
        return http.respond_json(request, self._ranks.alerts(ctx, eid, family, threshold, sustain))

    @http.route
    def _serve_attention_layers(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run, probe = http.get_param(request, "run"), _probe_param(request)
        return http.respond_json(request, self._attention.layers(ctx, eid, run, probe))

    @http.route
    def _serve_attention(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run, layer = http.get_param(request, "run"), http.get_param(request, "layer")
        step = http.get_step(request)
        encoding = http.get_param(request, "encoding", allowed=attention_queries.ENCODINGS, required=False)
        body = self._attention.maps(ctx, eid, run, layer, _probe_param(request), step, encoding or "json")
        return http.respond_json(request, body)

    @http.route
    def _serve_attention_stats(self, request: Request) -> Response:
        ctx, eid = _request_context(request)
        run, probe = http.get_param(request, "run"), _probe_param(request)
        entropy_min = _threshold_param(request, "entropy_min", attention_health.ENTROPY_MIN, high=1.0)
        growth = _threshold_param(request, "logit_growth", attention_health.LOGIT_GROWTH, high=1e6)
        return http.respond_json(request, self._attention.stats(ctx, eid, run, probe, entropy_min, growth))


def _rank_params(request: Request) -> tuple[str, str, str]:
    """(family, kind, stat) of a rank route; `stat` one of the kind's fields."""
    family = http.get_param(request, "family")
    kind = http.get_param(request, "kind", allowed=RANK_FIELDS)
    return family, kind, http.get_param(request, "stat", allowed=RANK_FIELDS[kind])


def _threshold_param(request: Request, name: str, default: float, *, high: float) -> float:
    """An optional positive number up to `high` (the alert thresholds of the attention view)."""
    text = http.get_param(request, name, required=False)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= high):
        raise http.bad_request(
            f"query parameter '{name}' must be a number in (0, {high:g}], got {text[:40]!r}"
        )
    return value


def _max_steps_param(request: Request) -> int | None:
    return http.get_positive_int(request, "max_steps") if "max_steps" in request.args else None


def _encoding_param(request: Request) -> str:
    """How numeric matrices are sent: "json" (nested lists, the default) or "f32" (encode.f32_matrix)."""
    return http.get_param(request, "encoding", allowed=encode.ENCODINGS, required=False) or "json"


def _probe_param(request: Request) -> str:
    return http.get_param(request, "probe", required=False) or metadata.DEFAULT_PROBE
