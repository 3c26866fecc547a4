"""Feature visualisation: `visualize` (selective, deterministic, side-effect free) and its recording under
`watch` (schedule, channels, options, record layout, no effect on training)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from helpers import assert_training_unchanged, hook_count, insight_steps, read_events, state_copy
from test_cam_recording import cam_model, probe_batch, train
from torch import nn

from tb_plugin_insight import FeatureVis, InsightWriter, metadata
from tb_plugin_insight.featurevis import channel_activations, visualize
from tb_plugin_insight.recorders import featurevis as featurevis_recorder
from tb_plugin_insight.render import png

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SIDE = 16


def patterns() -> torch.Tensor:
    """Six classes of 3 x 16 x 16 images: stripes of three orientations, a diagonal, a colour, a square."""
    xs = torch.arange(SIDE).float()
    p = torch.zeros(6, 3, SIDE, SIDE)
    p[0, 0] = torch.sin(xs)[None, :]
    p[1, 1] = torch.sin(xs)[:, None]
    p[2, 2] = torch.sin(xs[:, None] + xs[None, :])
    p[3] = torch.sin(xs[:, None] - xs[None, :])
    p[4, 0], p[4, 1] = 1.0, -1.0
    p[5, :, SIDE // 4 : 3 * SIDE // 4, SIDE // 4 : 3 * SIDE // 4] = 1.0
    return p


def trained_cnn() -> nn.Sequential:
    """A small CNN trained for 60 steps on noisy patterns (well under a second on one core)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 6),
    )  # fmt: skip
    classes = patterns()
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(60):
        y = torch.randint(0, len(classes), (32,), generator=gen)
        x = torch.randn(32, 3, SIDE, SIDE, generator=gen) * 0.3 + classes[y]
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1  # it learned the patterns
    opt.zero_grad(set_to_none=True)
    return model


@pytest.fixture(scope="module")
def cnn() -> nn.Sequential:
    return trained_cnn()


def test_each_channels_image_excites_it_most(cnn: nn.Sequential) -> None:
    """For >= 90% of the channels of three layers (after a ReLU, before one, a deeper ReLU), the channel's
    own image gives it a higher mean activation than every other channel's image."""
    selective, total = 0, 0
    for layer, count in (("2", 8), ("5", 12), ("6", 12)):
        channels = list(range(count))
        images = visualize(cnn, layer, channels, size=SIDE, steps=64, seed=0, input_range=(-2, 2))
        assert images.shape == (count, 3, SIDE, SIDE)
        acts = channel_activations(cnn, layer, images, channels)  # [image, channel]
        for j in channels:
            others = torch.cat([acts[:j, j], acts[j + 1 :, j]])
            selective += bool(acts[j, j] > others.max())
        total += count
    assert selective >= 0.9 * total, f"{selective}/{total} channels selective"


def test_deterministic_for_a_seed_without_the_global_rng(cnn: nn.Sequential) -> None:
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = visualize(cnn, "5", [0, 3], size=12, steps=8, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global stream is untouched
    torch.manual_seed(999)
    b = visualize(cnn, "5", [0, 3], size=12, steps=8, seed=7)
    c = visualize(cnn, "5", [0, 3], size=12, steps=8, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_shape_range_and_options(cnn: nn.Sequential) -> None:
    images = visualize(cnn, cnn[4], [1, 1, 2], size=(10, 14), steps=3, input_range=([-1, 0, 2], [1, 5, 3]))
    assert images.shape == (3, 3, 10, 14) and images.dtype == torch.float32 and not images.requires_grad
    low = images.amin(dim=(0, 2, 3))
    high = images.amax(dim=(0, 2, 3))
    assert (low >= torch.tensor([-1.0, 0.0, 2.0])).all() and (high <= torch.tensor([1.0, 5.0, 3.0])).all()
    plain = visualize(cnn, "5", [0], size=8, steps=4, transforms=False, decorrelate=False)
    assert plain.shape == (1, 3, 8, 8) and torch.isfinite(plain).all()
    gray = visualize(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()), "0", [2], size=9, steps=2)
    assert gray.shape == (1, 1, 9, 9)  # C from the first convolution


def test_works_inside_no_grad_and_inference_mode(cnn: nn.Sequential) -> None:
    plain = visualize(cnn, "6", [1], size=8, steps=3)
    with torch.no_grad():
        assert torch.equal(visualize(cnn, "6", [1], size=8, steps=3), plain)
    with torch.inference_mode():
        assert torch.equal(visualize(cnn, "6", [1], size=8, steps=3, input_range=(torch.zeros(3), 1)), plain)


def test_model_left_as_it_was(cnn: nn.Sequential) -> None:
    """Modes restored per module, BatchNorm statistics and parameters unchanged, no `.grad` written, no
    hook left; also with an in-place ReLU (redirected gradients) and the model in train mode."""
    cnn.train()
    cnn[1].eval()  # a module whose own flag differs from its parent's
    before = state_copy(cnn)
    modes = [m.training for m in cnn.modules()]
    hooks = hook_count(cnn)
    visualize(cnn, "6", [0, 5], size=12, steps=6)
    assert [m.training for m in cnn.modules()] == modes
    assert all(torch.equal(before[k], v) for k, v in cnn.state_dict().items())
    assert all(p.grad is None for p in cnn.parameters())
    assert hook_count(cnn) == hooks
    cnn.eval()


def test_bad_arguments_say_what_to_pass(cnn: nn.Sequential) -> None:
    with pytest.raises(ValueError, match="no layer named"):
        visualize(cnn, "conv9", [0])
    with pytest.raises(ValueError, match="outside layer '5'"):
        visualize(cnn, "5", [12], size=8, steps=1)
    with pytest.raises(ValueError, match="empty"):
        visualize(cnn, "5", [], size=8)
    with pytest.raises(ValueError, match="size"):
        visualize(cnn, "5", [0], size=1)
    with pytest.raises(ValueError, match="input_range"):
        visualize(cnn, "5", [0], size=8, steps=1, input_range=([0, 0], [1, 1]))


# --- under watch ------------------------------------------------------------------------------------


def vis_values(run: Path) -> list[tuple[int, object, object]]:
    """(step, metadata or None, decoded PNG) of every FEATURE_VIS value of a run."""
    found = []
    for event in read_events(run):
        for value in event.summary.value:
            if value.tag.startswith("insight/feature_vis/"):
                content = value.metadata.plugin_data.content
                meta = metadata.parse_plugin_metadata(content) if content else None
                found.append((event.step, value.tag, meta, png.decode(value.tensor.string_val[0])))
    return found


def test_recorded_every_featurevis_every_with_the_feature_maps_channels(tmp_path: Path) -> None:
    images, labels = probe_batch()
    with InsightWriter(str(tmp_path)) as writer:
        model = cam_model()
        train(
            model, writer, 5, probe=(images, labels), cam_every=0, maps_every=2, maps_k=4,
            featurevis_every=2, featurevis_channels=3, featurevis_steps=4,
        )  # fmt: skip
    steps = insight_steps(tmp_path)
    assert steps["insight/feature_vis/4"] == [0, 2, 4]  # the last spatial layer by default
    found = vis_values(tmp_path)
    first = found[0][2]
    assert first.kind == metadata.RecordKind.FEATURE_VIS and first.layout == "rgb"
    assert (first.num_images, first.height, first.width, first.num_channels) == (3, 12, 12, 8)
    assert not first.user_channels
    maps_meta = next(
        metadata.parse_plugin_metadata(v.metadata.plugin_data.content)
        for e in read_events(tmp_path)
        for v in e.summary.value
        if v.tag == "insight/feature_maps/probe/4" and v.metadata.plugin_data.content
    )
    assert list(first.channels) == list(maps_meta.channels)[:3]  # the maps view's order
    assert all(pixels.shape == (12, 36, 3) and pixels.dtype.name == "uint8" for *_, pixels in found)
    assert all(meta is None for _, _, meta, _ in found[1:])  # metadata on the first value only
    tile = found[0][3][:, :12]
    assert tile.min() == 0 and tile.max() == 255  # each tile stretched on its own


def test_channel_lists_group_option_and_no_probe(tmp_path: Path) -> None:
    with InsightWriter(str(tmp_path / "a")) as writer:
        train(
            cam_model(),
            writer,
            3,
            featurevis=FeatureVis(every=2, layers=["3", "1"], channels=[5, 0], steps=2),
        )
    found = vis_values(tmp_path / "a")
    assert sorted({tag for _, tag, _, _ in found}) == ["insight/feature_vis/1", "insight/feature_vis/3"]
    meta = {tag: m for _, tag, m, _ in found if m is not None}
    assert (
        list(meta["insight/feature_vis/3"].channels) == [5, 0] and meta["insight/feature_vis/3"].user_channels
    )
    assert meta["insight/feature_vis/3"].height == featurevis_recorder.DEFAULT_SIZE  # no probe
    with InsightWriter(str(tmp_path / "b")) as writer:
        train(
            cam_model(), writer, 1, featurevis_every=1, featurevis_channels={"3": [7]}, featurevis_size=8,
            featurevis_steps=1,
        )  # fmt: skip
    (only,) = [m for _, _, m, _ in vis_values(tmp_path / "b") if m is not None]
    assert list(only.channels) == [7] and only.height == 8


def test_channels_without_feature_maps_are_the_most_active_on_the_probe(tmp_path: Path) -> None:
    images, labels = probe_batch()
    means = channel_activations(cam_model(), "3", images, range(8)).mean(dim=0)
    expected = torch.sort(means, descending=True, stable=True).indices[:3].tolist()
    with InsightWriter(str(tmp_path)) as writer:
        train(
            cam_model(), writer, 1, probe=(images, labels), cam_every=0, maps_every=0,
            featurevis_every=1, featurevis_layers=["3"], featurevis_channels=3, featurevis_steps=1,
        )  # fmt: skip
    (meta,) = [m for _, _, m, _ in vis_values(tmp_path) if m is not None]
    assert list(meta.channels) == expected and meta.num_images == 3


@pytest.mark.parametrize(
    ("keywords", "error", "message"),
    [
        ({"featurevis_evry": 2}, TypeError, "did you mean featurevis_every"),
        ({"featurevis_every": -1}, ValueError, "featurevis_every must be a non-negative int"),
        ({"featurevis_every": 2, "featurevis": FeatureVis(every=3)}, ValueError, "disagree"),
        ({"featurevis_every": 1, "featurevis_layers": ["nope"]}, ValueError, "featurevis_layers: no layer"),
        ({"featurevis_every": 1, "featurevis_channels": [8]}, ValueError, "outside layer '4'"),
        ({"featurevis_every": 1, "featurevis_channels": "all"}, TypeError, "featurevis_channels"),
        (
            {"featurevis_every": 1, "featurevis_layers": ["1", "3"], "featurevis_channels": {"3": [0]}},
            ValueError,
            "no entry for layer '1'",
        ),
        ({"featurevis": 3}, TypeError, "FeatureVis"),
    ],
)
def test_options_checked_at_watch(tmp_path: Path, keywords: dict, error: type, message: str) -> None:
    images, labels = probe_batch()
    with InsightWriter(str(tmp_path)) as writer, pytest.raises(error, match=message):
        writer.watch(cam_model(), probe=(images, labels), cam_every=0, **keywords)


def test_off_by_default(tmp_path: Path) -> None:
    images, labels = probe_batch()
    with InsightWriter(str(tmp_path)) as writer:
        train(cam_model(), writer, 2, probe=(images, labels), cam_every=0, maps_every=1)
    assert not [tag for tag in insight_steps(tmp_path) if "feature_vis" in tag]


def test_training_bit_identical_with_featurevis(tmp_path: Path) -> None:
    images, labels = probe_batch()

    def final_state(with_insight: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = cam_model()
        writer = InsightWriter(str(tmp_path / f"w{with_insight}"))
        train(
            model, writer if with_insight else None, 5, probe=(images, labels), cam_every=0, maps_every=2,
            featurevis_every=2, featurevis_layers=["1", "4"], featurevis_channels=2, featurevis_steps=3,
        )  # fmt: skip
        writer.close()
        assert hook_count(model) == 0
        assert all(p.grad is not None for p in model.parameters())  # the user's own backward only
        return state_copy(model)

    assert_training_unchanged(final_state)
    assert insight_steps(tmp_path / "wTrue")["insight/feature_vis/1"] == [0, 2, 4]


def test_a_failure_stops_featurevis_not_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    images, labels = probe_batch()
    with InsightWriter(str(tmp_path)) as writer:
        model = cam_model()
        writer.watch(
            model, every=5, probe=(images, labels), cam_every=0, featurevis_every=1, featurevis_steps=1
        )

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(featurevis_recorder.featurevis, "visualize", broken)
        with caplog.at_level(logging.ERROR):
            for _ in range(3):
                model(images).sum().backward()
    assert caplog.text.count("Insight stopped recording feature visualisations") == 1
    assert not [tag for tag in insight_steps(tmp_path) if "feature_vis" in tag]
