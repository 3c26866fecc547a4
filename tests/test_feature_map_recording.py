"""Feature maps and filters recorded during training: what is stored, what the routes serve, and no
effect on training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_training_unchanged, hook_count, insight_steps, state_copy
from test_cam_recording import cam_model, probe_batch, train
from test_plugin import PREFIX, get_json, make_client
from werkzeug.test import Client

from tb_plugin_insight import InsightWriter
from tb_plugin_insight.capture.quantize import dequantize, error_bound
from tb_plugin_insight.render import png


def bound(scale_min: list, scale_max: list, bits: int = 8) -> float:
    """The stated round-trip bound of the widest tile (capture/quantize.py): (max - min) / 510 at 8 bits."""
    return error_bound(max(b - a for a, b in zip(np.ravel(scale_min), np.ravel(scale_max))), bits) + 1e-6


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fmaps")
    images, labels = probe_batch()
    with InsightWriter(str(root / "run")) as writer:
        torch.manual_seed(0)
        model = cam_model()
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        torch.save(initial, root / "initial.pt")
        train(
            model, writer, 7, probe=(images, labels), cam_every=0, maps_every=3, maps_k=4,
            maps_channels={"3": [7, 0]}, filters_layers=["3"], maps_layers=["0", "1", "2", "3", "4", "7"],
        )  # fmt: skip
        assert hook_count(model) > 0
    assert hook_count(model) == 0
    return root


@pytest.fixture(scope="module")
def client(logdir: Path) -> Client:
    return make_client(logdir)


def test_maps_and_filters_recorded_every_maps_every_steps(logdir: Path) -> None:
    steps = insight_steps(logdir / "run")
    for layer in ("0", "1", "2", "3", "4", "7"):  # the watched layers (pool and flatten are not)
        assert steps[f"insight/feature_maps/probe/{layer}"] == [0, 3, 6]
        assert steps[f"insight/feature_map_scales/probe/{layer}"] == [0, 3, 6]
    assert steps["insight/filters/0"] == [0, 3, 6] and steps["insight/filters/3"] == [0, 3, 6]
    assert steps["insight/probe_images/probe"] == [0]  # stored once, also without CAMs


def test_layers_route_lists_maps_and_filters(client: Client) -> None:
    body = get_json(client, "/feature_map_layers?run=run")
    maps = {entry["layer"]: entry for entry in body["featureMaps"]}
    assert [e["layer"] for e in body["featureMaps"]] == ["0", "1", "2", "3", "4", "7"]
    conv = maps["3"]
    assert conv["layout"] == "spatial" and conv["channels"] == [7, 0] and conv["userChannels"] is True
    assert (conv["numImages"], conv["height"], conv["width"], conv["numChannels"]) == (4, 6, 6, 8)
    assert conv["steps"] == [0, 3, 6] and conv["moduleType"] == "Conv2d" and conv["shape"] == [1, 8, 6, 6]
    assert len(maps["0"]["channels"]) == 4 and maps["0"]["userChannels"] is False
    assert maps["7"]["layout"] == "vector" and maps["7"]["channels"] == [] and maps["7"]["width"] == 3
    filters = {entry["layer"]: entry for entry in body["filters"]}
    assert filters["0"]["layout"] == "rgb" and filters["0"]["filters"] == list(range(6))
    assert filters["3"]["layout"] == "gray" and filters["3"]["inputChannels"] == list(range(6))
    assert (filters["3"]["height"], filters["3"]["width"], filters["3"]["numFilters"]) == (3, 3, 8)


def test_step_zero_maps_are_the_initial_model_on_the_probe_within_the_bound(
    logdir: Path, client: Client
) -> None:
    model = cam_model()
    model.load_state_dict(torch.load(logdir / "initial.pt"))
    model.eval()
    images, _ = probe_batch()
    with torch.no_grad():
        out = model[:4](images)  # conv 3's output
    body = get_json(client, "/feature_maps?run=run&layer=3&step=0")
    assert body["step"] == 0 and body["channels"] == [7, 0] and body["bits"] == 6  # the default
    grid = png.decode(client.get(PREFIX + "/feature_map_image?run=run&layer=3&step=0").get_data())
    assert grid.shape == (4 * 6, 2 * 6)
    codes = png.ungrid(grid, 6, 6)
    scales = np.stack([np.array(body["scaleMin"]), np.array(body["scaleMax"])], axis=-1)
    back = dequantize(codes, scales)
    expected = out[:, [7, 0]].numpy()
    assert np.abs(back - expected).max() <= bound(body["scaleMin"], body["scaleMax"], body["bits"])


def test_channels_fixed_and_pixels_change_over_steps(client: Client) -> None:
    first = get_json(client, "/feature_maps?run=run&layer=0&step=0")
    last = get_json(client, "/feature_maps?run=run&layer=0")
    assert last["step"] == 6 and last["channels"] == first["channels"]
    a = client.get(PREFIX + "/feature_map_image?run=run&layer=0&step=0").get_data()
    b = client.get(PREFIX + "/feature_map_image?run=run&layer=0&step=6").get_data()
    assert not np.array_equal(png.decode(a), png.decode(b))


def test_filter_routes_serve_the_weights(logdir: Path, client: Client) -> None:
    model = cam_model()
    model.load_state_dict(torch.load(logdir / "initial.pt"))
    body = get_json(client, "/filters?run=run&layer=0&step=0")
    assert np.array(body["scaleMin"]).shape == (6, 1)
    response = client.get(PREFIX + "/filter_image?run=run&layer=0&step=0")
    assert response.headers["Content-Type"] == "image/png"
    tiles = png.ungrid(png.decode(response.get_data()), 3, 3)  # (6, 1, 3, 3, RGB)
    scales = np.stack([np.array(body["scaleMin"]), np.array(body["scaleMax"])], axis=-1)
    back = dequantize(tiles[:, 0], scales[:, 0], map_dims=3)
    expected = model[0].weight.detach().permute(0, 2, 3, 1).numpy()
    assert np.abs(back - expected).max() <= bound(body["scaleMin"], body["scaleMax"])
    gray = get_json(client, "/filters?run=run&layer=3")
    assert gray["step"] == 6 and np.array(gray["scaleMax"]).shape == (8, 6)


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/feature_map_layers", 400, "missing query parameter 'run'"),
        ("/feature_map_layers?run=nope", 404, "run 'nope' has no Insight data"),
        ("/feature_maps?run=run", 400, "missing query parameter 'layer'"),
        ("/feature_maps?run=run&layer=9", 404, "has no feature maps of layer '9'"),
        ("/feature_maps?run=run&layer=0&step=x", 400, "must be a non-negative integer"),
        ("/feature_maps?run=run&layer=0&step=1", 404, "at step 1"),
        ("/feature_maps?run=run&layer=0&step=0&step=3", 400, "given 2 times"),
        ("/feature_map_image?run=run&layer=0", 400, "missing query parameter 'step'"),
        ("/feature_map_image?run=run&layer=0&step=2", 404, "at step 2"),
        ("/feature_map_image?run=nope&layer=0&step=0", 404, "no Insight data"),
        ("/filters?run=run&layer=1", 404, "has no filters of layer '1'"),
        ("/filter_image?run=run&layer=0&step=-1", 400, "non-negative integer"),
        ("/filter_image?run=run&layer=0&step=4", 404, "at step 4"),
    ],
)
def test_routes_validate_params(client: Client, url: str, status: int, message: str) -> None:
    body = get_json(client, url, status)
    assert message in body["error"]["message"]


def test_training_bit_identical_with_maps_and_filters(tmp_path: Path) -> None:
    images, labels = probe_batch()

    def final_state(with_insight: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = cam_model()
        writer = InsightWriter(str(tmp_path / f"w{with_insight}"))
        train(
            model, writer if with_insight else None, 7, probe=(images, labels), cam_every=0, maps_every=2,
            maps_k=3, maps_channels={"1": [5, 2]}, filters_layers=["3"],
        )  # fmt: skip
        writer.close()
        assert hook_count(model) == 0
        return state_copy(model)  # BatchNorm running stats too

    assert_training_unchanged(final_state)
    assert "insight/feature_maps/probe/1" in insight_steps(tmp_path / "wTrue")


def test_maps_every_zero_records_no_maps(tmp_path: Path) -> None:
    images, labels = probe_batch()
    with InsightWriter(str(tmp_path)) as writer:
        train(cam_model(), writer, 3, probe=(images, labels), cam_every=0, maps_every=0)
    assert not [t for t in insight_steps(tmp_path) if "feature_map" in t or "filter" in t]


def test_filters_without_probe_only_when_named(tmp_path: Path) -> None:
    with InsightWriter(str(tmp_path / "a")) as writer:
        train(cam_model(), writer, 3, maps_every=1)
    assert not [t for t in insight_steps(tmp_path / "a") if "filter" in t]
    with InsightWriter(str(tmp_path / "b")) as writer:
        train(cam_model(), writer, 3, maps_every=2, filters_layers=["3"])
    steps = insight_steps(tmp_path / "b")
    assert steps["insight/filters/0"] == [0, 2] and steps["insight/filters/3"] == [0, 2]
    assert not [t for t in steps if "feature_map" in t]
