"""Plugin routes in-process (Python data provider): contents, error codes, the route contract, loader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tensorboard import default, program
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

from conftest import write_run
from tb_plugin_insight import metadata
from tb_plugin_insight.plugin.loader import InsightLoader
from tb_plugin_insight.plugin.plugin import InsightPlugin

STEPS = 150  # more than either backend's default reservoir for custom plugins (10 / 100)
PREFIX = "/data/plugin/insight"
HTTP_API = Path(__file__).resolve().parent.parent / "docs" / "http-api.md"


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("logdir")
    write_run(root / "alpha", steps=STEPS, every=1)
    write_run(root / "beta", steps=20, every=10)
    return root


def make_client(logdir: Path, hints: dict[str, int] | None = None) -> Client:
    hints = {"insight": 0} if hints is None else hints
    mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance=hints)
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    context = base_plugin.TBContext(
        data_provider=provider, logdir=str(logdir), multiplexer=mux, sampling_hints=hints
    )
    return Client(application.TensorBoardWSGI([InsightPlugin(context)]))


@pytest.fixture(scope="module")
def client(logdir: Path) -> Client:
    return make_client(logdir)


def get_json(client: Client, url: str, status: int = 200) -> dict:
    response = client.get(PREFIX + url)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    return json.loads(response.get_data(as_text=True))


def test_runs(client: Client) -> None:
    body = get_json(client, "/runs")
    assert body == {
        "runs": [
            {"run": "alpha", "numLayers": 6, "maxStep": STEPS - 1},
            {"run": "beta", "numLayers": 6, "maxStep": 10},
        ]
    }


def test_layers_in_model_order_with_types_and_shapes(client: Client) -> None:
    body = get_json(client, "/layers?run=alpha")
    assert body["stats"] == list(metadata.STAT_FIELDS)
    names = [layer["name"] for layer in body["layers"]]
    assert names == ["0", "1", "2", "3", "4", "6"]
    first = body["layers"][0]
    assert first["moduleType"] == "Conv2d" and first["shape"] == [8, 4, 8, 8]
    assert [layer["order"] for layer in body["layers"]] == sorted(layer["order"] for layer in body["layers"])


def test_heatmap_has_every_step_of_every_layer(client: Client) -> None:
    body = get_json(client, "/stats_heatmap?run=alpha&stat=zeroFraction")
    assert body["steps"] == list(range(STEPS))
    assert len(body["values"]) == 6 and all(len(row) == STEPS for row in body["values"])
    relu_row = body["values"][body["layers"].index("2")]
    assert all(0.0 <= v <= 1.0 for v in relu_row) and max(relu_row) > 0.2  # ReLU zeroes ~half


def test_layer_stats_series(client: Client) -> None:
    body = get_json(client, "/layer_stats?run=beta&layer=0")
    assert body["steps"] == [0, 10] and len(body["wallTimes"]) == 2
    assert set(body["stats"]) == set(metadata.STAT_FIELDS)
    assert body["stats"]["numel"] == [8 * 4 * 8 * 8] * 2
    assert all(lo <= hi for lo, hi in zip(body["stats"]["min"], body["stats"]["max"]))


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/layers", 400, "missing query parameter 'run'"),
        ("/layers?run=", 400, "is empty"),
        ("/layers?run=alpha&run=beta", 400, "given 2 times"),
        ("/layers?run=nope", 404, "has no Insight data"),
        ("/layers?run=" + "x" * 5000, 400, "longer than"),
        ("/stats_heatmap?run=alpha", 400, "missing query parameter 'stat'"),
        ("/stats_heatmap?run=alpha&stat=median", 400, "must be one of"),
        ("/stats_heatmap?run=nope&stat=mean", 404, "has no Insight data"),
        ("/layer_stats?run=alpha", 400, "missing query parameter 'layer'"),
        ("/layer_stats?run=alpha&layer=99", 404, "has no layer '99'"),
        ("/layer_stats?run=nope&layer=0", 404, "has no Insight data"),
        ("/layer_stats?run=%00%ff&layer=%3Cscript%3E", 404, "has no Insight data"),
    ],
)
def test_bad_requests_get_json_errors(client: Client, url: str, status: int, message: str) -> None:
    body = get_json(client, url, status)
    assert body["error"]["code"] == status and message in body["error"]["message"]


def test_wrong_method_is_405(client: Client) -> None:
    response = client.post(PREFIX + "/runs")
    assert response.status_code == 405
    assert "use GET" in json.loads(response.get_data(as_text=True))["error"]["message"]


def test_index_js_is_served_as_javascript(client: Client) -> None:
    response = client.get(PREFIX + "/index.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert b"render" in response.get_data()


def test_unknown_route_is_404(client: Client) -> None:
    assert client.get(PREFIX + "/../../etc/passwd").status_code == 404
    assert client.get(PREFIX + "/nothing").status_code == 404


def test_records_from_a_newer_schema_are_skipped(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    write_run(tmp_path / "old", steps=2)
    future = metadata.create_summary_metadata(metadata.RecordKind.ACTIVATION_STATS, "x")
    content = metadata.PluginData.FromString(future.plugin_data.content)
    content.version = metadata.PROTO_VERSION + 1
    future.plugin_data.content = content.SerializeToString()
    value = summary_pb2.Summary.Value(tag="insight/activation_stats/x", metadata=future)
    value.tensor.CopyFrom(summary_pb2.Summary.Value().tensor)
    with SummaryWriter(str(tmp_path / "new")) as writer:
        writer._get_file_writer().add_summary(summary_pb2.Summary(value=[value]), global_step=0)
    body = get_json(make_client(tmp_path), "/runs")
    assert [run["run"] for run in body["runs"]] == ["old"]


def test_http_api_documents_every_route(client: Client) -> None:
    documented = set(re.findall(r"^## `GET (/[a-z_.]+)", HTTP_API.read_text(), flags=re.M))
    routes = set(InsightPlugin(base_plugin.TBContext(sampling_hints={})).get_plugin_apps())
    assert routes == documented


def test_loader_defaults_sampling_to_keep_all_unless_user_chose(tmp_path: Path) -> None:
    plugins = default.get_plugins()  # the installed entry point makes ours one of them
    assert InsightLoader in plugins
    tb = program.TensorBoard(plugins=plugins)
    tb.configure(argv=["tensorboard", "--logdir", str(tmp_path)])
    assert tb.flags.samples_per_plugin["insight"] == 0
    tb = program.TensorBoard(plugins=default.get_plugins())
    tb.configure(argv=["tensorboard", "--logdir", str(tmp_path), "--samples_per_plugin", "insight=5"])
    assert tb.flags.samples_per_plugin["insight"] == 5


def test_entry_point_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tb_plugin_insight.plugin.loader as l; l.InsightLoader(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
