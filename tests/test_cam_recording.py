"""CAMs recorded during training: what the writer stores, what the routes serve, and no effect on training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_training_unchanged, hook_count, insight_steps, random_batch, sgd_step, state_copy
from test_plugin import PREFIX, get_json, make_client
from torch import nn
from werkzeug.test import Client

from conftest import write_run
from tb_plugin_insight import InsightWriter, cam
from tb_plugin_insight.capture import probe as probe_mod
from tb_plugin_insight.render import png

CLASSES = ["circle", "square", "triangle"]


def cam_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1),  # maps are stored at this layer's 6x6
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


def probe_batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    return torch.randn(4, 3, 12, 12, generator=gen), torch.tensor([0, 1, 2, 1])


def train(model: nn.Module, writer: InsightWriter | None, steps: int, **watch: object) -> None:
    if writer is not None:
        writer.watch(model, every=5, **watch)
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        sgd_step(model, opt, *random_batch(gen, size=12))


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cams")
    images, labels = probe_batch()
    with InsightWriter(str(root / "run")) as writer:
        model = cam_model()
        train(
            model, writer, 7, probe=(images, labels), cam_every=3, cam_methods=["gradcam", "layercam"],
            class_names=CLASSES,
        )  # fmt: skip
        writer.add_cam("extra", model, images[:2], target_layer="3", method="hirescam", global_step=9)
    write_run(root / "stats_only", steps=3)
    with InsightWriter(str(root / "cam_only")) as writer:
        writer.add_cam("batch", cam_model(), images, method=["gradcam", "layercam"], global_step=4)
    return root


@pytest.fixture(scope="module")
def client(logdir: Path) -> Client:
    return make_client(logdir)


def test_maps_recorded_every_cam_every_steps_images_once(logdir: Path) -> None:
    steps = insight_steps(logdir / "run")
    assert steps["insight/cam/probe/gradcam/4"] == [0, 3, 6]  # auto: last spatial layer is the 2nd ReLU
    assert steps["insight/cam/probe/layercam/4"] == [0, 3, 6]
    assert steps["insight/probe_predictions/probe"] == [0, 3, 6]
    assert steps["insight/probe_images/probe"] == [0]
    assert steps["insight/cam/extra/hirescam/3"] == [9]


def test_probe_route_and_image(client: Client) -> None:
    body = get_json(client, "/probe?run=run")
    assert body["numImages"] == 4 and (body["height"], body["width"]) == (12, 12)
    assert body["labels"] == [0, 1, 2, 1] and body["classNames"] == CLASSES and body["step"] == 0
    response = client.get(PREFIX + "/" + body["imageUrl"])
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    sprite = png.decode(response.get_data())
    expected = probe_mod.to_display(probe_batch()[0])
    np.testing.assert_array_equal(sprite, expected.reshape(4 * 12, 12, 3))


def test_maps_listing(client: Client) -> None:
    body = get_json(client, "/maps?run=run")
    described = {(s["probe"], s["layer"], s["method"]): s for s in body["series"]}
    assert set(described) == {
        ("probe", "4", "gradcam"),
        ("probe", "4", "layercam"),
        ("extra", "3", "hirescam"),
    }
    assert described[("probe", "4", "gradcam")]["steps"] == [0, 3, 6]
    assert described[("probe", "4", "gradcam")]["auto"] is True
    assert described[("extra", "3", "hirescam")]["auto"] is False
    assert get_json(client, "/maps?run=stats_only")["series"] == []


def test_map_image_equals_compute_cam_of_the_weights_of_that_step(logdir: Path, client: Client) -> None:
    # Step 0's maps were computed before the first update: the freshly initialised weights.
    images, _ = probe_batch()
    expected = cam.compute_cams(cam_model(), images, "4", ["gradcam"], upsample=False)["gradcam"]
    response = client.get(PREFIX + "/map_image?run=run&kind=cam&layer=4&method=gradcam&step=0")
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    stored = png.decode(response.get_data()).reshape(4, 6, 6).astype(np.float64) / 255
    np.testing.assert_allclose(stored, expected.numpy(), atol=1 / 510 + 1e-6)


def test_predictions(client: Client) -> None:
    body = get_json(client, "/predictions?run=run")
    assert body["steps"] == [0, 3, 6]
    assert all(len(row) == 4 and set(row) <= {0, 1, 2} for row in body["predicted"])
    assert all(1 / 3 - 1e-6 <= p <= 1 for row in body["probability"] for p in row)
    assert get_json(client, "/predictions?run=run&probe=extra")["steps"] == [9]


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/probe?run=stats_only", 404, "no probe 'probe'"),
        ("/probe?run=run&probe=nope", 404, "no probe 'nope'"),
        ("/maps", 400, "missing query parameter 'run'"),
        ("/map_image?run=run&kind=cam&layer=4&method=gradcam", 400, "missing query parameter 'step'"),
        ("/map_image?run=run&kind=cam&layer=4&method=gradcam&step=-1", 400, "non-negative integer"),
        ("/map_image?run=run&kind=cam&layer=4&method=gradcam&step=1e3", 400, "non-negative integer"),
        ("/map_image?run=run&kind=cam&layer=4&method=gradcam&step=99999999999999999999", 400, "integer"),
        ("/map_image?run=run&kind=cam&layer=4&method=gradcam&step=1", 404, "at step 1"),
        ("/map_image?run=run&kind=heat&layer=4&method=gradcam&step=0", 400, "must be one of"),
        ("/map_image?run=run&kind=cam&layer=9&method=gradcam&step=0", 404, "no cam maps"),
        ("/map_image?run=nope&kind=cam&layer=4&method=gradcam&step=0", 404, "no cam maps"),
        ("/predictions?run=stats_only", 404, "no probe"),
    ],
)
def test_bad_map_requests(client: Client, url: str, status: int, message: str) -> None:
    body = get_json(client, url, status)
    assert message in body["error"]["message"]


def state_after_training(logdir: Path, with_insight: bool, **watch: object) -> dict[str, torch.Tensor]:
    """A model with BatchNorm and (random) Dropout trained 7 steps from seed 99, watched with `watch` when
    `with_insight`; checks that closing the writer left no hook, and returns the final state."""
    torch.manual_seed(99)
    model = nn.Sequential(cam_model(3), nn.Dropout(0.2))
    writer = InsightWriter(str(logdir / str(with_insight)))
    train(model, writer if with_insight else None, 7, **watch)
    writer.close()
    assert hook_count(model) == 0
    return state_copy(model)


def test_recording_cams_never_changes_training(tmp_path: Path) -> None:
    images, labels = probe_batch()
    methods = ["gradcam", "gradcam++", "eigencam", "scorecam"]
    watch = {"probe": (images, labels), "cam_every": 2, "cam_methods": methods}
    assert_training_unchanged(lambda with_insight: state_after_training(tmp_path, with_insight, **watch))


def test_watch_validates_cam_options(tmp_path: Path) -> None:
    images, labels = probe_batch()
    model = cam_model()
    with InsightWriter(str(tmp_path)) as writer:
        with pytest.raises(ValueError, match="unknown CAM method"):
            writer.watch(model, probe=images, cam_methods=["gradcam", "magic"])
        with pytest.raises(ValueError, match="needs probe labels"):
            writer.watch(model, probe=images, cam_target="label")
        with pytest.raises(ValueError, match="cam_every"):
            writer.watch(model, probe=images, cam_every=-3)
        with pytest.raises(ValueError, match="batch"):
            writer.watch(model, probe=images[0])
        with pytest.raises(ValueError, match="one per image"):
            writer.watch(model, probe=(images, labels[:2]))
        with pytest.raises(ValueError, match="no layer named 'nope'"):
            writer.watch(model, probe=images, cam_layer="nope")
        handle = writer.watch(model, probe=(images, labels), cam_layer="0", cam_target="label")
        assert handle.cam_layer == "0" and handle.cam_methods == ("gradcam",)
        assert hook_count(model) > 0
    assert hook_count(model) == 0


def test_cam_error_during_training_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images, _ = probe_batch()
    model = cam_model()
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, probe=images, cam_every=2)
        writer._probe = probe_mod.make_probe("probe", torch.randn(2, 1, 12, 12))  # wrong channels now
        train(model, None, 3)
    assert "stopped recording CAMs" in caplog.text
    assert json.dumps(insight_steps(tmp_path))  # stats still recorded
    assert insight_steps(tmp_path)["insight/activation_stats/0"] == [0]


def test_raw_ranges_allow_a_shared_scale(client: Client) -> None:
    images, _ = probe_batch()
    expected = cam.compute_cams(cam_model(), images, "4", ["gradcam"], upsample=False).raw_range["gradcam"]
    series = {(s["probe"], s["method"]): s for s in get_json(client, "/maps?run=run")["series"]}
    gradcam = series[("probe", "gradcam")]
    assert len(gradcam["rawMax"]) == len(gradcam["steps"]) == 3
    np.testing.assert_allclose(gradcam["rawMin"][0], expected[:, 0].numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gradcam["rawMax"][0], expected[:, 1].numpy(), rtol=1e-5, atol=1e-7)
    assert all(
        lo <= hi
        for row_lo, row_hi in zip(gradcam["rawMin"], gradcam["rawMax"])
        for lo, hi in zip(row_lo, row_hi)
    )


def test_run_with_only_add_cam_is_listed_and_served(client: Client) -> None:
    runs = {r["run"]: r for r in get_json(client, "/runs")["runs"]}
    assert runs["cam_only"] == {"run": "cam_only", "numLayers": 0, "maxStep": 4}
    assert get_json(client, "/layers?run=cam_only")["layers"] == []
    assert get_json(client, "/stats_heatmap?run=cam_only&stat=mean")["steps"] == []
    series = get_json(client, "/maps?run=cam_only")["series"]
    assert {(s["probe"], s["method"]) for s in series} == {("batch", "gradcam"), ("batch", "layercam")}
    assert get_json(client, "/probe?run=cam_only&probe=batch")["numImages"] == 4
