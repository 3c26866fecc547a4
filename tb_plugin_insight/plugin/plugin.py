"""InsightPlugin: the route table of the Insight tab. Routes parse and validate; queries do the work."""

from __future__ import annotations

from typing import Any, Callable

from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import Request, Response

from tb_plugin_insight import metadata
from tb_plugin_insight.plugin import assets, http
from tb_plugin_insight.plugin.queries import InsightQueries, MapQueries

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
        self._queries = InsightQueries(context.data_provider, downsample)
        self._maps = MapQueries(context.data_provider, downsample)

    def get_plugin_apps(self) -> dict[str, Callable[..., Any]]:
        return {
            "/index.js": self._serve_index_js,
            "/runs": self._serve_runs,
            "/layers": self._serve_layers,
            "/stats_heatmap": self._serve_stats_heatmap,
            "/layer_stats": self._serve_layer_stats,
            "/gradients": self._serve_gradients,
            "/probe": self._serve_probe,
            "/probe_image": self._serve_probe_image,
            "/maps": self._serve_maps,
            "/map_image": self._serve_map_image,
            "/predictions": self._serve_predictions,
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
        stat = http.get_param(request, "stat", allowed=metadata.STAT_FIELDS)
        max_steps = http.get_positive_int(request, "max_steps") if "max_steps" in request.args else None
        return http.respond_json(
            request, self._queries.stats_heatmap(ctx, eid, run, stat, max_steps=max_steps)
        )

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
        max_steps = http.get_positive_int(request, "max_steps") if "max_steps" in request.args else None
        body = self._queries.gradients(
            ctx, eid, run, fields or list(metadata.GRAD_FIELDS), layer=layer, step=step, max_steps=max_steps
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


def _probe_param(request: Request) -> str:
    return http.get_param(request, "probe", required=False) or metadata.DEFAULT_PROBE
