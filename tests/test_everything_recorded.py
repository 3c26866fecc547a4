"""Training stays bit-identical with every capability recorded at once: statistics, histograms of
activations, weights and gradients, units, gradient flow with the update ratio, the model table, feature
maps, filters, feature visualisation, every CAM method (FullGrad included) and every saliency method."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import assert_training_unchanged, insight_steps, random_batch
from test_cam_recording import probe_batch
from torch import nn

from tb_plugin_insight import CAM, FeatureMaps, FeatureVis, Gradients, Histograms, InsightWriter, Saliency
from tb_plugin_insight.cam import METHODS as CAM_METHODS
from tb_plugin_insight.saliency import METHODS as SALIENCY_METHODS

STEPS = 4


def model_with_everything() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


def train(run_dir: Path, with_insight: bool) -> dict[str, torch.Tensor]:
    model = model_with_everything()
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    writer = InsightWriter(str(run_dir)) if with_insight else None
    if writer is not None:
        writer.watch(
            model,
            every=1,
            probe=probe_batch(),
            cam=CAM(every=2, methods=list(CAM_METHODS)),
            saliency=Saliency(
                every=2,
                methods=list(SALIENCY_METHODS),
                options={"smoothgrad": {"samples": 2}, "integrated_gradients": {"steps": 2}},
            ),
            feature_maps=FeatureMaps(every=2, k=2),
            featurevis=FeatureVis(every=2, steps=4, channels=2),
            gradients=Gradients(update_ratio=True),
            histograms=Histograms(every=2, bins=8),
        )
    for _ in range(STEPS):
        x, y = random_batch(gen, size=12)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    if writer is not None:
        writer.close()
        kinds = {tag.split("/")[1] for tag in insight_steps(run_dir)}
        expected = {
            "activation_stats",
            "activation_histogram",
            "unit_stats",
            "gradient_stats",
            "cam",
            "saliency",
            "feature_maps",
            "filters",
            "feature_vis",
            "model_table",
        }
        assert expected <= kinds, kinds
        tables = {
            tag.split("/")[2] for tag in insight_steps(run_dir) if tag.startswith("insight/layer_table/")
        }
        assert {"param_histogram", "grad_histogram"} <= tables, tables
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_is_bit_identical_with_everything_recorded(tmp_path: Path) -> None:
    assert_training_unchanged(lambda with_insight: train(tmp_path / str(with_insight), with_insight))
