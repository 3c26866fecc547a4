"""Grouped options of watch() (CAM, Saliency, FeatureMaps, Gradients, Histograms) beside the flat
keywords: the same option either way, clear errors when they disagree, and the package root's names."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import random_batch, read_events, sgd_step
from test_cam_recording import probe_batch
from test_probe_pass import small_cnn

import tb_plugin_insight
from tb_plugin_insight import CAM, FeatureMaps, Gradients, Histograms, InsightWriter, Saliency


def recorded(run_dir: Path, **watch: Any) -> dict[tuple[int, str], bytes]:
    """Train small_cnn 5 steps with `watch` options; every Insight value written, by (step, tag)."""
    model = small_cnn()
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with InsightWriter(str(run_dir)) as writer:
        writer.watch(model, every=1, probe=probe_batch(), **watch)
        for _ in range(5):
            sgd_step(model, opt, *random_batch(gen, size=12))
    return {
        (event.step, value.tag): value.SerializeToString()
        for event in read_events(run_dir)
        for value in event.summary.value
        if value.tag.startswith("insight/") and "model_table" not in value.tag
    }


def test_grouped_options_record_what_their_flat_twins_record(tmp_path: Path) -> None:
    flat = recorded(
        tmp_path / "flat",
        cam_every=2,
        cam_methods=["gradcam", "layercam"],
        saliency_every=4,
        saliency_methods="gradient_x_input",
        maps_every=3,
        maps_k=2,
        grad_accumulation=1,
        update_ratio=False,
        histogram_bins=8,
        histogram_every=2,
    )
    grouped = recorded(
        tmp_path / "grouped",
        cam=CAM(every=2, methods=["gradcam", "layercam"]),
        saliency=Saliency(every=4, methods="gradient_x_input"),
        feature_maps=FeatureMaps(every=3, k=2),
        gradients=Gradients(update_ratio=False),
        histograms=Histograms(bins=8, every=2),
    )
    assert sorted(flat) == sorted(grouped)
    kinds = {tag.split("/")[2 if tag.startswith("insight/layer_table/") else 1] for _, tag in flat}
    assert {"cam", "saliency", "feature_maps", "gradient_stats", "activation_histogram"} <= kinds, kinds
    assert {s for s, t in flat if t.startswith("insight/cam/")} == {0, 2, 4}
    assert {s for s, t in flat if t.startswith("insight/saliency/")} == {0, 4}
    for key, value in flat.items():
        assert grouped[key] == value, key


def test_a_flat_keyword_and_its_grouped_twin_that_disagree_name_both(tmp_path: Path) -> None:
    with InsightWriter(str(tmp_path)) as writer:
        with pytest.raises(ValueError, match=r"cam_every=50 and cam=CAM\(every=20\) disagree"):
            writer.watch(small_cnn(), probe=probe_batch(), cam_every=50, cam=CAM(every=20))
        # a grouped field left at its default takes the flat keyword's value: no conflict
        writer.watch(small_cnn(), update_ratio=False, gradients=Gradients(update_ratio=True))
        with pytest.raises(
            ValueError, match=r"grad_accumulation=2 and gradients=Gradients\(accumulation=4\)"
        ):
            writer.watch(small_cnn(), every=4, grad_accumulation=2, gradients=Gradients(accumulation=4))
        # the same value given twice is no conflict
        handle = writer.watch(
            small_cnn(), probe=probe_batch(), cam_every=50, cam=CAM(every=50, methods="layercam")
        )
        assert handle.cam_methods == ("layercam",)


def test_grouped_options_check_themselves() -> None:
    with pytest.raises(ValueError, match="CAM: cam_every must be a non-negative int"):
        CAM(every=-1)
    with pytest.raises(ValueError, match="FeatureMaps: maps_k must be a positive int"):
        FeatureMaps(k=0)
    with pytest.raises(TypeError, match="Gradients: grad_scaler must be a torch.amp.GradScaler"):
        Gradients(scaler=object())
    with pytest.raises(ValueError, match="Histograms: histogram_bins must be an int from 1 to 4096"):
        Histograms(bins=5000)
    with pytest.raises(ValueError, match="Saliency: saliency_max_side must be a positive int"):
        Saliency(max_side=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        CAM().every = 3  # type: ignore[misc]


def test_wrong_group_types_and_unknown_keywords_are_clear_errors(tmp_path: Path) -> None:
    with InsightWriter(str(tmp_path)) as writer:
        with pytest.raises(TypeError, match=r"cam= takes a CAM\(...\), got Saliency"):
            writer.watch(small_cnn(), cam=Saliency())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="unexpected keyword argument 'cam_evry'; did you mean cam_every"):
            writer.watch(small_cnn(), cam_evry=10)
        with pytest.raises(ValueError, match="maps_every must be a non-negative int"):
            writer.watch(small_cnn(), maps_every=-5)  # flat keywords keep their own messages
        assert not writer._recorders  # a failed watch() adds no hooks


def test_histograms_takes_a_bool_or_its_group(tmp_path: Path) -> None:
    off = recorded(tmp_path / "off", histograms=False, cam_every=0, maps_every=0)
    grouped_off = recorded(
        tmp_path / "grouped_off", histograms=Histograms(enabled=False), cam_every=0, maps_every=0
    )
    assert not any("histogram" in tag for _, tag in off)
    assert sorted(off) == sorted(grouped_off)


def test_the_package_root_exports_the_public_api() -> None:
    from tb_plugin_insight.cam import compute_cam, compute_cams
    from tb_plugin_insight.handle import WatchHandle
    from tb_plugin_insight.saliency import compute_saliency

    assert tb_plugin_insight.compute_cam is compute_cam
    assert tb_plugin_insight.compute_cams is compute_cams
    assert tb_plugin_insight.compute_saliency is compute_saliency
    assert tb_plugin_insight.WatchHandle is WatchHandle
    for name in tb_plugin_insight.__all__:
        assert getattr(tb_plugin_insight, name) is not None
    with pytest.raises(AttributeError):
        tb_plugin_insight.no_such_name  # noqa: B018
