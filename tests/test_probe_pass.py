"""Maps due at one step share one forward of the probe (capture/probe_pass.py): same records as the
separate passes, no side effects on the model, and a failure in one kind stops that kind only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import random_batch, read_events, sgd_step
from test_cam_recording import probe_batch
from torch import nn

from tb_plugin_insight import InsightWriter
from tb_plugin_insight.capture import feature_maps as fmaps_mod
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
    run_dir: Path, *, share: bool, after_watch: Callable[[], None] = lambda: None, **options: Any
) -> tuple[int, dict[tuple[int, str], bytes]]:
    """Train small_cnn with every map kind due every 2nd step; returns the forwards of the model at map
    step 2 and every map value written, by (step, tag)."""
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
    with InsightWriter(str(run_dir)) as writer:
        writer._share_probe_passes = share
        writer.watch(model, **watch)
        after_watch()  # the watch's dry runs went well
        for step in range(STEPS):
            before = forwards[0]
            sgd_step(model, opt, *random_batch(gen, size=12))
            if step == 2:
                map_step_forwards = forwards[0] - before
    values = {
        (event.step, value.tag): value.SerializeToString()
        for event in read_events(run_dir)
        for value in event.summary.value
        if value.tag.startswith(MAP_TAGS)
    }
    return map_step_forwards, values


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
def test_shared_pass_records_what_the_separate_passes_record(
    tmp_path: Path, options: dict[str, Any], saved: int
) -> None:
    separate_forwards, separate = record(tmp_path / "separate", share=False, **options)
    shared_forwards, shared = record(tmp_path / "shared", share=True, **options)
    assert separate_forwards - shared_forwards == saved
    kinds = {tag.split("/")[1] for _, tag in separate}
    assert "saliency" in kinds
    assert ("cam" in kinds) == (options.get("cam_every") != 0)
    assert ("feature_maps" in kinds) == (options.get("maps_every") != 0)
    assert sorted(shared) == sorted(separate)
    for key, value in separate.items():
        assert shared[key] == value, key


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
            lambda mp: mp.setattr("tb_plugin_insight.saliency.from_input_gradient", _broken),
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
            share=True,
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


def test_a_failing_shared_forward_falls_back_to_the_separate_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, fallback = record(
        tmp_path / "fallback",
        share=True,
        after_watch=lambda: monkeypatch.setattr("tb_plugin_insight.capture.probe_pass.run_shared", _broken),
        saliency_methods="gradient",
    )
    _, separate = record(tmp_path / "separate", share=False, saliency_methods="gradient")
    assert fallback == separate
