"""Input saliency of the probe recorded during training and with add_saliency: what is stored and served,
validation, and no effect on training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_training_unchanged, hook_count, insight_steps
from test_cam_recording import CLASSES, cam_model, probe_batch, state_after_training, train
from test_plugin import PREFIX, get_json, make_client
from werkzeug.test import Client

from tb_plugin_insight import InsightWriter, saliency
from tb_plugin_insight.render import png


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("saliency")
    images, labels = probe_batch()
    with InsightWriter(str(root / "run")) as writer:
        model = cam_model()
        train(
            model, writer, 7, probe=(images, labels), cam_every=6, saliency_every=3,
            saliency_methods=["gradient", "smoothgrad"], saliency_options={"smoothgrad": {"samples": 4}},
            class_names=CLASSES,
        )  # fmt: skip
        writer.add_saliency(
            "extra", model, images[:2], method="gradient_x_input", global_step=9, labels=[0, 1]
        )
    with InsightWriter(str(root / "only_saliency")) as writer:
        train(cam_model(), writer, 3, probe=images, cam_every=0, saliency_methods="integrated_gradients")
    return root


@pytest.fixture(scope="module")
def client(logdir: Path) -> Client:
    return make_client(logdir)


def test_saliency_recorded_every_saliency_every_steps(logdir: Path) -> None:
    steps = insight_steps(logdir / "run")
    assert steps["insight/saliency/probe/gradient"] == [0, 3, 6]
    assert steps["insight/saliency/probe/smoothgrad"] == [0, 3, 6]
    assert steps["insight/cam/probe/gradcam/4"] == [0, 6]
    assert steps["insight/probe_predictions/probe"] == [0, 3, 6]  # predictions at every map step, once
    assert steps["insight/probe_images/probe"] == [0]
    assert steps["insight/saliency/extra/gradient_x_input"] == [9]
    only = insight_steps(logdir / "only_saliency")
    assert only["insight/saliency/probe/integrated_gradients"] == [0]  # saliency_every: 100 when cam_every=0
    assert not any(tag.startswith("insight/cam/") for tag in only)


def test_maps_route_lists_saliency_series(client: Client) -> None:
    series = get_json(client, "/maps?run=run")["series"]
    saliency_series = {(s["probe"], s["method"]): s for s in series if s["kind"] == "saliency"}
    assert set(saliency_series) == {
        ("probe", "gradient"),
        ("probe", "smoothgrad"),
        ("extra", "gradient_x_input"),
    }
    gradient = saliency_series[("probe", "gradient")]
    assert gradient["layer"] == "" and gradient["steps"] == [0, 3, 6]
    assert (gradient["height"], gradient["width"], gradient["numImages"]) == (12, 12, 4)
    assert get_json(client, "/predictions?run=run&probe=extra")["steps"] == [9]
    assert get_json(client, "/probe?run=run&probe=extra")["labels"] == [0, 1]


def test_saliency_image_equals_compute_saliency_of_the_weights_of_that_step(client: Client) -> None:
    images, _ = probe_batch()
    expected = saliency.compute_saliency(cam_model(), images, "gradient")
    response = client.get(PREFIX + "/map_image?run=run&kind=saliency&method=gradient&step=0")
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    stored = png.decode(response.get_data()).reshape(4, 12, 12).astype(np.float64) / 255
    np.testing.assert_allclose(stored, expected.numpy(), atol=1 / 510 + 1e-6)
    missing = client.get(PREFIX + "/map_image?run=run&kind=saliency&method=gradient&step=1")
    assert missing.status_code == 404


def test_saliency_raw_ranges_give_a_shared_scale(client: Client) -> None:
    images, _ = probe_batch()
    attribution = saliency.compute_attribution(cam_model(), images, "gradient")
    _, scale = saliency.saliency_map_and_scale(attribution)
    series = get_json(client, "/maps?run=run")["series"]
    gradient = next(s for s in series if s["kind"] == "saliency" and s["method"] == "gradient")
    assert gradient["rawMin"][0] == [0.0] * 4
    np.testing.assert_allclose(gradient["rawMax"][0], scale.numpy(), rtol=1e-6)


def test_recording_saliency_and_gradients_never_changes_training(tmp_path: Path) -> None:
    """BatchNorm + Dropout (random) + every map method: final state bit-identical."""

    images, labels = probe_batch()
    methods = list(saliency.METHODS)
    opts = {"smoothgrad": {"samples": 3}, "integrated_gradients": {"steps": 4}}
    watch = {"probe": (images, labels), "cam_every": 2, "saliency_every": 2}
    watch.update(saliency_methods=methods, saliency_options=opts, saliency_target="label")
    assert_training_unchanged(lambda with_insight: state_after_training(tmp_path, with_insight, **watch))


def test_watch_validates_saliency_options(tmp_path: Path) -> None:
    images, labels = probe_batch()
    model = cam_model()
    with InsightWriter(str(tmp_path)) as writer:
        with pytest.raises(ValueError, match="need a probe"):
            writer.watch(model, saliency_methods=["gradient"])
        with pytest.raises(ValueError, match="unknown saliency method 'magic'"):
            writer.watch(model, probe=images, saliency_methods=["gradient", "magic"])
        with pytest.raises(ValueError, match="saliency_every"):
            writer.watch(model, probe=images, saliency_every=0)
        with pytest.raises(ValueError, match="needs probe labels"):
            writer.watch(model, probe=images, saliency_methods="gradient", saliency_target="label")
        with pytest.raises(TypeError, match="does not take option"):
            writer.watch(
                model, probe=images, saliency_methods="gradient", saliency_options={"gradient": {"x": 1}}
            )
        with pytest.raises(ValueError, match="not in saliency_methods"):
            writer.watch(
                model, probe=images, saliency_methods="gradient", saliency_options={"smoothgrad": {}}
            )
        handle = writer.watch(model, probe=(images, labels), saliency_every=5)
        assert handle.saliency_methods == ("gradient",)
        handle = writer.watch(model, probe=(images, labels), saliency_methods=["guided_gradcam"])
        assert handle.saliency_methods == ("guided_gradcam",)  # target_layer defaults to the CAM layer
    assert hook_count(model) == 0


def test_saliency_error_during_training_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tb_plugin_insight.capture import probe as probe_mod

    images, _ = probe_batch()
    model = cam_model()
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, probe=images, cam_every=0, saliency_every=2)
        writer._probe = probe_mod.make_probe("probe", torch.randn(2, 1, 12, 12))  # wrong channels now
        train(model, None, 3)
    assert "stopped recording saliency" in caplog.text
    assert insight_steps(tmp_path)["insight/activation_stats/0"] == [0]
