"""The feature-visualisation routes: `/feature_vis_layers` lists every layer's channels, metadata and steps
as recorded by `watch(..., featurevis_every=...)`, `/feature_vis_image` serves one step's strip exactly as
stored, and both validate their parameters (400/404 JSON, never 500)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import read_events
from test_cam_recording import cam_model, probe_batch, train
from test_plugin import PREFIX, get_json, make_client
from werkzeug.test import Client

from conftest import write_run
from tb_plugin_insight import InsightWriter
from tb_plugin_insight.render import png

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("featurevis_routes")
    images, labels = probe_batch()
    with InsightWriter(str(root / "run")) as writer:
        train(
            cam_model(), writer, 5, probe=(images, labels), cam_every=0, maps_every=2, maps_k=4,
            featurevis_every=2, featurevis_layers=["1", "4"], featurevis_channels=3,
            featurevis_steps=2,
        )  # fmt: skip
    write_run(root / "stats_only", steps=2)
    return root


@pytest.fixture(scope="module")
def client(logdir: Path) -> Client:
    return make_client(logdir)


def stored_strips(run: Path) -> dict[tuple[str, int], bytes]:
    return {
        (v.tag.rsplit("/", 1)[-1], e.step): v.tensor.string_val[0]
        for e in read_events(run)
        for v in e.summary.value
        if v.tag.startswith("insight/feature_vis/")
    }


def test_layers_list_channels_metadata_and_steps_in_model_order(client: Client) -> None:
    body = get_json(client, "/feature_vis_layers?run=run")
    assert body["run"] == "run"
    first, second = body["featureVis"]
    assert (first["layer"], second["layer"]) == ("1", "4")
    assert first["moduleType"] == "BatchNorm2d" and first["numChannels"] == 6
    assert second["moduleType"] == "ReLU" and second["userChannels"] is False and second["numChannels"] == 8
    maps = get_json(client, "/feature_map_layers?run=run")
    (maps_of_4,) = [m for m in maps["featureMaps"] if m["layer"] == "4"]
    assert second["channels"] == maps_of_4["channels"][:3]  # the feature maps' order
    for layer in (first, second):
        assert layer["steps"] == [0, 2, 4]
        assert (layer["layout"], layer["height"], layer["width"]) == ("rgb", 12, 12)
        assert layer["numImages"] == len(layer["channels"]) == 3 and layer["userChannels"] is False
        assert layer["shape"][1] == layer["numChannels"]
    assert first["order"] < second["order"]


def test_image_is_the_stored_strip(logdir: Path, client: Client) -> None:
    stored = stored_strips(logdir / "run")
    for layer, k in (("1", 3), ("4", 3)):
        for step in (0, 4):
            response = client.get(f"{PREFIX}/feature_vis_image?run=run&layer={layer}&step={step}")
            assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
            assert response.get_data() == stored[(layer, step)]
            tiles = png.ungrid(png.decode(response.get_data()), 12, 12)
            assert tiles.shape == (1, k, 12, 12, 3)
    first = png.decode(client.get(f"{PREFIX}/feature_vis_image?run=run&layer=4&step=0").get_data())
    last = png.decode(client.get(f"{PREFIX}/feature_vis_image?run=run&layer=4&step=4").get_data())
    assert not np.array_equal(first, last)  # the model changed, so did what its channels want


def test_a_run_without_feature_visualisations_lists_none(client: Client) -> None:
    assert get_json(client, "/feature_vis_layers?run=stats_only") == {"run": "stats_only", "featureVis": []}


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/feature_vis_layers", 400, "missing query parameter 'run'"),
        ("/feature_vis_layers?run=", 400, "run"),
        ("/feature_vis_layers?run=run&run=run", 400, "given 2 times"),
        ("/feature_vis_layers?run=nope", 404, "no Insight data"),
        ("/feature_vis_image?run=run&layer=4", 400, "missing query parameter 'step'"),
        ("/feature_vis_image?run=run&step=0", 400, "missing query parameter 'layer'"),
        ("/feature_vis_image?run=run&layer=4&step=x", 400, "must be a non-negative integer"),
        ("/feature_vis_image?run=run&layer=4&step=-1", 400, "must be a non-negative integer"),
        ("/feature_vis_image?run=run&layer=4&step=99999999999999999999", 400, "non-negative integer"),
        ("/feature_vis_image?run=run&layer=4&step=1", 404, "at step 1"),
        ("/feature_vis_image?run=run&layer=3&step=0", 404, "no feature visualisations of layer '3'"),
        ("/feature_vis_image?run=stats_only&layer=4&step=0", 404, "no feature visualisations"),
        ("/feature_vis_image?run=nope&layer=4&step=0", 404, "no Insight data"),
    ],
)
def test_routes_validate_params(client: Client, url: str, status: int, message: str) -> None:
    body = get_json(client, url, status)
    assert body["error"]["code"] == status and message in body["error"]["message"]
