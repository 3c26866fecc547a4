"""Maps due at one step share one forward of the probe (capture/probe_pass.py): the same maps as the
public functions compute, no side effects on the model, and a failure in one kind stops that kind only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import random_batch, read_events, sgd_step
from test_cam_recording import probe_batch
from torch import nn

from tb_plugin_insight import InsightWriter, compute_cams, compute_saliency, metadata
from tb_plugin_insight.capture import feature_maps as fmaps_mod
from tb_plugin_insight.capture import maps as maps_mod
from tb_plugin_insight.capture import probe as probe_mod
from tb_plugin_insight.explain import cam_methods

MAP_TAGS = ("insight/cam/", "insight/saliency/", "insight/feature_maps/")
STEPS = 5


def small_cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(inplace=True),  # in place right after a mapped layer: stored maps must not change
        nn.Conv2d(6, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Dropout(0.5),  # eval mode in the probe passes: no randomness
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


def record(
    run_dir: Path, *, after_watch: Callable[[], None] = lambda: None, **options: Any
) -> tuple[int, dict[tuple[int, str], bytes]]:
    """Train small_cnn with every map kind due every 2nd step; returns the forwards of the model at map
    step 2 and every map value written, by (step, tag)."""
    return _record(run_dir, after_watch=after_watch, **options)[:2]


def _record(
    run_dir: Path, *, after_watch: Callable[[], None] = lambda: None, **options: Any
) -> tuple[int, dict[tuple[int, str], bytes], dict[str, torch.Tensor], list[tuple[str, tuple, int]], Any]:
    """`record`, plus the weights the probe pass of step 2 saw, every record queued at step 2 (builder
    name, its arguments, step) and the feature-map channels the run chose."""
    model = small_cnn()
    forwards = [0]
    model.register_forward_pre_hook(lambda module, args: forwards.__setitem__(0, forwards[0] + 1))
    watch: dict[str, Any] = dict(
        every=5, probe=probe_batch(), cam_every=2, maps_every=2, saliency_every=2, maps_layers=["1", "3"]
    )
    watch.update(options)
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    map_step_forwards = 0
    queued: list[tuple[str, tuple, int]] = []
    with InsightWriter(str(run_dir)) as writer:
        enqueue = writer._sink.enqueue

        def spy(build_fn: Any, *args: Any, step: int) -> None:
            queued.append((build_fn.__name__, args, step))
            enqueue(build_fn, *args, step=step)

        writer._sink.enqueue = spy  # type: ignore[method-assign]
        handle = writer.watch(model, **watch)
        after_watch()  # the watch's dry runs went well
        weights: dict[str, torch.Tensor] = {}
        for step in range(STEPS):
            before = forwards[0]
            if step == 2:
                weights = {k: v.clone() for k, v in model.state_dict().items()}
            sgd_step(model, opt, *random_batch(gen, size=12))
            if step == 2:
                map_step_forwards = forwards[0] - before
        session = writer._recorders[id(model)]
        fmaps = session.by_name.get("feature_maps")
        channels = dict(fmaps.maps.channels) if fmaps is not None else {}
        assert handle.active
    values = {
        (event.step, value.tag): value.SerializeToString()
        for event in read_events(run_dir)
        for value in event.summary.value
        if value.tag.startswith(MAP_TAGS)
    }
    at_step_2 = [(name, args, step) for name, args, step in queued if step == 2]
    return map_step_forwards, values, weights, at_step_2, channels


def _references(
    weights: dict[str, torch.Tensor],
    options: dict[str, Any],
    channels: dict[str, tuple[int, ...]],
    cam_layer: str,
) -> tuple[int, dict[str, Any]]:
    """What the public functions compute on the weights of step 2, each kind on its own (the way
    Insight once ran separate passes), and how many forwards of the model that takes."""
    model = small_cnn()
    model.load_state_dict(weights)
    forwards = [0]
    model.register_forward_pre_hook(lambda module, args: forwards.__setitem__(0, forwards[0] + 1))
    images, labels = probe_batch()
    refs: dict[str, Any] = {}
    cam_every = options.get("cam_every", 2)
    cam_target = options.get("cam_target", "predicted")
    if options.get("maps_every", 2):
        plan = fmaps_mod.plan_feature_maps(
            model,
            probe_mod.make_probe("probe", images, labels),
            every=2,
            k=16,
            layers=[("1", model[1]), ("3", model[3])],
            channels=None,
            depth=None,
            filter_layers=None,
            device=torch.device("cpu"),
        )
        assert plan is not None
        forwards[0] = 0  # the plan's dry run is watch()'s, not the step's
        recorder = fmaps_mod.FeatureMapRecorder(plan)
        recorder.channels.update(channels)
        refs["feature_maps"] = recorder.run(model, images)
    if cam_every:
        targets = labels if cam_target == "label" else None
        methods = options.get("cam_methods", ["gradcam"])
        result = compute_cams(model, images, cam_layer, methods, targets=targets, upsample=False)
        refs["cam"] = maps_mod.record_from_cams(result)
    methods = options.get("saliency_methods", ["gradient"])
    methods = [methods] if isinstance(methods, str) else list(methods)
    target = options.get("saliency_target", cam_target)
    targets = labels if target == "label" else None
    per_method = options.get("saliency_options", {})
    attributions = {
        m: compute_saliency(model, images, m, targets, signed=True, **per_method.get(m, {})) for m in methods
    }
    predicted = maps_mod.predictions(model, images) if not cam_every else (None, None)
    refs["saliency"] = maps_mod.record_from_attributions(attributions, *predicted, max_side=64)
    return forwards[0], refs


@pytest.mark.parametrize(
    "options, saved",
    [
        # feature maps + gradcam + gradient saliency: 3 probe forwards -> 1
        (dict(cam_methods=["gradcam"], saliency_methods="gradient"), 2),
        # every method that comes from the capture, and both input-gradient saliency methods
        (
            dict(
                cam_methods=["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam", "eigencam"],
                saliency_methods=["gradient", "gradient_x_input"],
            ),
            3,  # also one fewer: gradient_x_input's own forward
        ),
        # methods with their own passes ride along: scorecam/ablationcam's perturbed forwards, smoothgrad
        (
            dict(
                cam_methods=["eigencam", "scorecam", "ablationcam", "eigengradcam"],
                saliency_methods=["smoothgrad", "gradient", "guided_backprop"],
                saliency_options={"smoothgrad": {"samples": 2}},
            ),
            2,
        ),
        # CAMs of the predicted class, saliency of the label: one forward, two gradient calls
        (dict(cam_target="predicted", saliency_target="label", saliency_methods="gradient_x_input"), 2),
        # label targets for both, no feature maps
        (dict(cam_target="label", saliency_methods="gradient", maps_every=0), 1),
        # saliency with no input-gradient method: feature maps and CAMs share, saliency keeps its passes
        (
            dict(
                saliency_methods="integrated_gradients",
                saliency_options={"integrated_gradients": {"steps": 2}},
            ),
            1,
        ),
        # a gradient method split in batches keeps its own pass
        (
            dict(saliency_methods="gradient", saliency_options={"gradient": {"batch_size": 2}}, maps_every=0),
            0,
        ),
        # saliency alone, two input-gradient methods and the predictions: 3 forwards -> 1
        (dict(cam_every=0, maps_every=0, saliency_methods=["gradient", "gradient_x_input"]), 2),
    ],
)
def test_probe_pass_records_what_the_public_functions_compute(
    tmp_path: Path, options: dict[str, Any], saved: int
) -> None:
    """The one probe pass records, at a map step, exactly what compute_cams, compute_saliency and a
    feature-map forward compute on that step's weights, in fewer forwards than they take one by one."""
    forwards, values, weights, queued, channels = _record(tmp_path, **options)
    cam_layers = {
        args[1] for name, args, _ in queued if name == "maps" and args[4] == metadata.RecordKind.CAM
    }
    assert cam_layers == ({"4"} if options.get("cam_every") != 0 else set())  # the last spatial layer
    reference_forwards, refs = _references(weights, options, channels, "4")
    assert reference_forwards + 1 - forwards == saved  # + 1: the training forward of step 2
    kinds = {tag.split("/")[1] for _, tag in values}
    assert "saliency" in kinds
    assert ("cam" in kinds) == (options.get("cam_every") != 0)
    assert ("feature_maps" in kinds) == (options.get("maps_every") != 0)
    recorded: dict[str, Any] = {}
    for name, args, _ in queued:
        if name == "maps":
            _, _, record_, _, kind, _ = args
            recorded["saliency" if kind == metadata.RecordKind.SALIENCY else "cam"] = record_
        elif name == "feature_maps":
            recorded["feature_maps"] = args[1]
    assert sorted(recorded) == sorted(refs)
    for kind in ("cam", "saliency"):
        if kind not in refs:
            continue
        got, want = recorded[kind], refs[kind]
        assert sorted(got.maps) == sorted(want.maps)
        for method in want.maps:
            np.testing.assert_array_equal(got.maps[method], want.maps[method], err_msg=f"{kind} {method}")
            np.testing.assert_allclose(got.ranges[method], want.ranges[method], rtol=1e-6, atol=1e-9)
        for field in ("predicted", "probability"):
            a, b = getattr(got, field), getattr(want, field)
            assert (a is None) == (b is None), field
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=1e-6)
    if "feature_maps" in refs:
        got_maps, want_maps = recorded["feature_maps"], refs["feature_maps"]
        assert sorted(got_maps) == sorted(want_maps)
        for layer, want in want_maps.items():
            np.testing.assert_array_equal(got_maps[layer].codes, want.codes, err_msg=layer)
            np.testing.assert_array_equal(got_maps[layer].scales, want.scales, err_msg=layer)
            assert got_maps[layer].channels == want.channels


def test_shared_pass_leaves_the_model_as_it_was(tmp_path: Path) -> None:
    model = small_cnn()
    model.eval()  # the user's forward below changes no BatchNorm statistics and draws no random numbers
    model[2].train()  # a mixed state: each module's own flag comes back
    flags = [m.training for m in model.modules()]
    gen = torch.Generator().manual_seed(2)
    grads = [torch.randn(p.shape, generator=gen) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(
            model,
            mode="all",
            probe=probe_batch(),
            cam_methods=["gradcam", "scorecam"],
            saliency_methods=["gradient", "smoothgrad"],
            saliency_options={"smoothgrad": {"samples": 2}},
            maps_layers=["1", "3"],
        )
        rng = torch.get_rng_state()
        with torch.no_grad():
            model(torch.zeros(2, 3, 12, 12))  # the probe passes run in its forward pre-hook
        assert torch.equal(torch.get_rng_state(), rng)
        writer.flush()
        steps = {v.tag for e in read_events(tmp_path) for v in e.summary.value}
    assert any(t.startswith("insight/cam/") for t in steps)
    assert any(t.startswith("insight/saliency/") for t in steps)
    assert any(t.startswith("insight/feature_maps/") for t in steps)
    assert [m.training for m in model.modules()] == flags
    for p, g in zip(model.parameters(), grads):
        assert torch.equal(p.grad, g)
    for key, value in model.state_dict().items():
        assert torch.equal(value, buffers[key]), key


def test_training_bit_identical_with_shared_probe_passes(tmp_path: Path) -> None:
    def final_state(watched: bool) -> dict[str, torch.Tensor]:
        model = small_cnn()
        gen = torch.Generator().manual_seed(1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        writer = InsightWriter(str(tmp_path / str(watched))) if watched else None
        if writer is not None:
            writer.watch(
                model,
                probe=probe_batch(),
                cam_every=2,
                maps_every=2,
                saliency_every=2,
                cam_methods=["gradcam", "ablationcam"],
                saliency_methods=["gradient", "gradient_x_input"],
                saliency_target="label",
            )
        for _ in range(STEPS):
            sgd_step(model, opt, *random_batch(gen, size=12))
        if writer is not None:
            writer.close()
        return {k: v.clone() for k, v in model.state_dict().items()}

    plain, watched = final_state(False), final_state(True)
    for key in plain:
        assert torch.equal(plain[key], watched[key]), key


def _broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("broken on purpose")


@pytest.mark.parametrize(
    "patch, stopped, message",
    [
        (
            lambda mp: mp.setitem(cam_methods.FROM_CAPTURE, "gradcam", _broken),
            "cam",
            "stopped recording CAMs",
        ),
        (
            lambda mp: mp.setattr(fmaps_mod, "quantize", _broken),
            "feature_maps",
            "stopped recording feature maps",
        ),
        (
            lambda mp: mp.setattr("tb_plugin_insight.explain.saliency.from_input_gradient", _broken),
            "saliency",
            "stopped recording saliency",
        ),
    ],
)
def test_a_failure_in_one_kind_stops_that_kind_only(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    patch: Any,
    stopped: str,
    message: str,
) -> None:
    with caplog.at_level(logging.WARNING):
        forwards, values = record(
            tmp_path,
            after_watch=lambda: patch(monkeypatch),
            cam_methods=["gradcam"],
            saliency_methods="gradient",
        )
    assert forwards == 2  # still one shared probe forward + the training forward
    assert message in caplog.text
    recorded = {tag.split("/")[1] for _, tag in values}
    assert recorded == {"cam", "saliency", "feature_maps"} - {stopped}
    steps = {kind: sorted({s for s, t in values if t.split("/")[1] == kind}) for kind in recorded}
    assert all(s == [0, 2, 4] for s in steps.values()), steps


def test_a_failing_probe_forward_stops_the_maps_not_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        forwards, values = record(
            tmp_path,
            after_watch=lambda: monkeypatch.setattr(
                "tb_plugin_insight.capture.probe_pass.run_shared", _broken
            ),
            saliency_methods="gradient",
        )
    assert forwards == 1  # the training forward went on; no probe forward
    assert values == {}  # no map was written
    for message in ("stopped recording CAMs", "stopped recording feature maps", "stopped recording saliency"):
        assert message in caplog.text
        assert caplog.text.count(message) == 1  # once: a stopped kind is not tried again
    assert "broken on purpose" in caplog.text
