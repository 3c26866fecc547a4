"""The synthetic shapes dataset, the demo CNN and the demo script (all fast, CPU only)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import insight_steps

from demo import train as demo_train
from demo.models import ShapesCNN
from demo.shapes import CIRCLE, CLASSES, SQUARE, TRIANGLE, ShapesData, denormalize, make_shapes


@pytest.fixture(scope="module")
def data() -> ShapesData:
    return make_shapes(600, seed=0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Train on one thread: on a busy machine two spinning OpenMP threads are many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- dataset -----------------------------------------------------------------------------------


def test_same_seed_same_tensors_different_seed_different() -> None:
    a, b, c = make_shapes(48, seed=7), make_shapes(48, seed=7), make_shapes(48, seed=8)
    for name in ("images", "labels", "boxes", "masks"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.boxes, c.boxes)


def test_global_rngs_untouched() -> None:
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    make_shapes(8, seed=1)
    ShapesCNN(seed=1)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])


def test_shapes_and_dtypes(data: ShapesData) -> None:
    assert data.images.shape == (600, 3, 64, 64) and data.images.dtype == torch.float32
    assert data.labels.shape == (600,) and data.labels.dtype == torch.int64
    assert data.boxes.shape == (600, 4) and data.boxes.dtype == torch.int64
    assert data.masks.shape == (600, 64, 64) and data.masks.dtype == torch.bool
    assert data.CLASSES == CLASSES == ("circle", "square", "triangle")
    small = make_shapes(5, size=32, seed=0)
    assert small.images.shape == (5, 3, 32, 32) and small.masks.shape == (5, 32, 32)
    assert len(make_shapes(0)) == 0


def test_normalised_roughly_zero_mean_unit_std(data: ShapesData) -> None:
    assert abs(data.images.mean().item()) < 0.1
    assert 0.85 < data.images.std().item() < 1.15
    raw = denormalize(data.images)
    assert raw.min() >= 0 and raw.max() <= 1


def test_boxes_inside_image_and_tight_around_mask(data: ShapesData) -> None:
    x0, y0, x1, y1 = data.boxes.T
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 64).all() and (y1 <= 64).all()
    assert (x0 < x1).all() and (y0 < y1).all()
    for mask, (bx0, by0, bx1, by1) in zip(data.masks, data.boxes.tolist()):
        assert mask[by0:by1, bx0:bx1].sum() == mask.sum()  # nothing outside the box
        inside = mask[by0:by1, bx0:bx1]
        # every edge of the box touches the object
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()


def test_sizes_in_range(data: ShapesData) -> None:
    width = data.boxes[:, 2] - data.boxes[:, 0]
    height = data.boxes[:, 3] - data.boxes[:, 1]
    # an even-sided triangle loses its apex row to pixel-centre sampling, hence 11
    assert width.min() >= 11 and height.min() >= 11
    assert width.max() <= 28 and height.max() <= 28
    assert width.float().std() > 3  # sizes actually vary
    squares = data.labels == SQUARE
    assert torch.equal(width[squares], height[squares])


def test_classes_balanced_and_shuffled(data: ShapesData) -> None:
    assert torch.bincount(data.labels, minlength=3).tolist() == [200, 200, 200]
    counts = torch.bincount(make_shapes(301, seed=5).labels, minlength=3)
    assert counts.max() - counts.min() <= 1
    assert not torch.equal(data.labels[:6], data.labels[6:12])  # not a fixed 0,1,2 cycle


def test_mask_area_ratio_to_box_matches_class(data: ShapesData) -> None:
    area = data.masks.sum(dim=(1, 2)).float()
    assert (area > 0).all()
    box_area = ((data.boxes[:, 2] - data.boxes[:, 0]) * (data.boxes[:, 3] - data.boxes[:, 1])).float()
    ratio = area / box_area
    circle, square, triangle = (ratio[data.labels == c] for c in (CIRCLE, SQUARE, TRIANGLE))
    assert abs(circle.mean().item() - math.pi / 4) < 0.03 and circle.min() > 0.72 and circle.max() < 0.86
    assert (square == 1).all()
    assert abs(triangle.mean().item() - 0.5) < 0.04 and triangle.min() > 0.45 and triangle.max() < 0.6


def test_triangles_point_in_all_four_directions(data: ShapesData) -> None:
    """One box edge is the base (fully covered), the opposite one the apex (one or two pixels)."""
    directions = set()
    for mask, box in zip(data.masks[data.labels == TRIANGLE], data.boxes[data.labels == TRIANGLE]):
        x0, y0, x1, y1 = box.tolist()
        crop = mask[y0:y1, x0:x1]
        edges = {"top": crop[0], "bottom": crop[-1], "left": crop[:, 0], "right": crop[:, -1]}
        opposite = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}
        bases = [name for name, edge in edges.items() if edge.all()]
        assert len(bases) == 1
        assert edges[opposite[bases[0]]].sum() <= 2
        directions.add(opposite[bases[0]])  # the apex points away from the base
    assert directions == {"top", "bottom", "left", "right"}


def test_shape_visible_against_background(data: ShapesData) -> None:
    """The object's pixels differ clearly in colour from the background right around it."""
    raw = denormalize(data.images)
    ring = F.max_pool2d(data.masks[:, None].float(), 5, stride=1, padding=2)[:, 0].bool() & ~data.masks
    for image, mask, around in zip(raw[:100], data.masks[:100], ring[:100]):
        inside = image[:, mask].mean(dim=1)
        outside = image[:, around].mean(dim=1)
        assert (inside - outside).abs().max() > 0.2


def test_indexing_keeps_fields_aligned(data: ShapesData) -> None:
    idx = torch.tensor([5, 1, 9])
    sub = data[idx]
    assert (
        len(sub) == 3 and torch.equal(sub.boxes, data.boxes[idx]) and torch.equal(sub.masks[1], data.masks[1])
    )
    assert len(data[:10]) == 10 and len(data[3]) == 1 and torch.equal(data[-1].labels, data.labels[-1:])


def test_bad_arguments_rejected() -> None:
    with pytest.raises(ValueError):
        make_shapes(-1)
    with pytest.raises(ValueError):
        make_shapes(4, min_side=20, max_side=10)
    with pytest.raises(ValueError):
        make_shapes(4, size=16, max_side=30)


def test_generation_is_vectorised_fast() -> None:
    start = time.perf_counter()
    make_shapes(2000, seed=1)
    assert time.perf_counter() - start < 5.0  # ~0.3 s on an idle 2-core machine


# --- model -------------------------------------------------------------------------------------


def test_model_layer_names_and_outputs() -> None:
    model = ShapesCNN(seed=0).eval()
    names = dict(model.named_modules())
    for name in ("features.conv1", "features.bn1", "features.pool3", "features.conv_last", "classifier"):
        assert name in names
    assert ShapesCNN.LAST_SPATIAL_LAYER in names
    x = make_shapes(4, seed=0).images
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (4, 3)
        assert model.feature_maps(x).shape == (4, 64, 8, 8)
        cams = model.class_activation_maps(x)
    assert cams.shape == (4, 3, 8, 8)
    assert torch.allclose(cams.mean(dim=(2, 3)) + model.classifier.bias, logits, atol=1e-5)


def test_model_seeded_init_is_deterministic() -> None:
    a, b, c = ShapesCNN(seed=3), ShapesCNN(seed=3), ShapesCNN(seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.features.conv1.weight, c.features.conv1.weight)


def test_training_loss_decreases(one_thread: None) -> None:
    """30 steps on one small batch are enough to see the loss fall (deterministic, ~1 s)."""
    batch = make_shapes(32, size=32, seed=0)
    model = ShapesCNN(width=8, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(batch.images), batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


# --- demo script -------------------------------------------------------------------------------


def test_demo_train_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None) -> None:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    args = demo_train.parse_args(
        ["--logdir", str(tmp_path), "--run-name", "smoke", "--steps", "3", "--every", "1",
         "--batch-size", "8", "--train-size", "32", "--eval-size", "16", "--threads", "1"]
    )  # fmt: skip
    result = demo_train.train(args)
    assert result["steps"] == 3 and result["event_bytes"] > 0
    out = capsys.readouterr().out
    assert "tensorboard --logdir" in out and str(tmp_path / "smoke") in out

    tags: dict[str, set[int]] = {}
    for path in (tmp_path / "smoke").glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                tags.setdefault(value.tag, set()).add(event.step)
    assert tags["train/loss"] == {0, 1, 2}
    assert tags["eval/accuracy"] == {2}
    layer_steps = insight_steps(tmp_path / "smoke")  # each layer's steps, v1 tags or v2 layer tables
    assert layer_steps["insight/activation_stats/features.conv_last"] == [0, 1, 2]  # == global_step
    assert tags["insight/feature_maps/probe/features.relu_last"] == {0}  # maps_every=25: step 0
    mapped = {t.rsplit("/", 1)[1] for t in tags if t.startswith("insight/feature_maps/")}
    # by default the last layer of each stage: one per resolution, and the classifier's output strip
    assert mapped == {
        "features.relu1",
        "features.relu2",
        "features.relu3",
        "features.relu_last",
        "classifier",
    }
    assert any(t.startswith("insight/filters/") for t in tags)
