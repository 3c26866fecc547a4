"""Golden tests on tiny tensors: layouts, channel choice, 8-bit quantisation bound, filter tiles, grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tb_plugin_insight import InsightWriter
from tb_plugin_insight.capture import feature_maps as fm
from tb_plugin_insight.capture import filters
from tb_plugin_insight.capture.quantize import dequantize, levels, quantize
from tb_plugin_insight.render import png


def bound(scales: np.ndarray, bits: int = 8) -> np.ndarray:
    """The stated round-trip bound per map, (max - min) / (2 L) with L = quantize.levels(bits):
    (max - min) / 510 for 8 bits (plus float32 rounding: 0.1% of it)."""
    span = np.asarray(scales, dtype=np.float64)[..., 1] - np.asarray(scales, dtype=np.float64)[..., 0]
    return span / (2 * levels(bits)) * 1.001 + 1e-12


# ---- quantisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_quantisation_round_trip_is_within_half_a_step(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    # Spans from 1e-5 to 1e3, offsets up to 1e3 (a small span on a large offset is the hard case).
    x = torch.randn(3, 5, 7, 6, generator=gen) * (10.0 ** (seed - 5)) + [0, 1, -7, 1000][seed % 4]
    codes, scales = quantize(x)
    assert codes.dtype == torch.uint8 and codes.shape == x.shape and scales.shape == (3, 5, 2)
    back = dequantize(codes.numpy(), scales.double().numpy())
    error = np.abs(back - x.double().numpy()).reshape(3, 5, -1).max(axis=-1)
    assert (error <= bound(scales.double().numpy())).all()
    # The bound is tight: some value lands near half a step away.
    assert error.max() > 0.3 * bound(scales.double().numpy()).max()


def test_quantisation_golden_values_constant_and_non_finite_maps() -> None:
    x = torch.tensor([[[[0.0, 1.0], [2.0, 5.1]]], [[[3.0, 3.0], [3.0, 3.0]]]])
    codes, scales = quantize(x)
    assert codes[0, 0].tolist() == [[0, 50], [100, 255]]  # 255 * v / 5.1
    assert scales[0, 0].tolist() == pytest.approx([0.0, 5.1])
    assert codes[1, 0].tolist() == [[0, 0], [0, 0]]
    assert dequantize(codes.numpy(), scales.double().numpy())[1, 0].tolist() == [[3.0, 3.0], [3.0, 3.0]]
    odd = torch.tensor([[[[float("nan"), float("inf")], [-float("inf"), 2.0]]]])
    codes, scales = quantize(odd)
    assert codes[0, 0].tolist() == [[0, 255], [0, 0]]
    assert scales[0, 0].tolist() == [2.0, 2.0]  # the scale is over finite values only


def test_grid_png_round_trip_gray_and_rgb() -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(3, 4, 5, 6), dtype=np.uint8)
    decoded = png.decode(png.grid(gray))
    assert decoded.shape == (3 * 5, 4 * 6)
    np.testing.assert_array_equal(decoded[5:10, 12:18], gray[1, 2])  # tile (row 1, column 2)
    np.testing.assert_array_equal(png.ungrid(decoded, 5, 6), gray)
    rgb = rng.integers(0, 256, size=(2, 1, 3, 3, 3), dtype=np.uint8)
    np.testing.assert_array_equal(png.ungrid(png.decode(png.grid(rgb)), 3, 3), rgb)


# ---- layouts ----------------------------------------------------------------------------------------


def test_views_of_each_layout() -> None:
    conv1d, relu, linear = nn.Conv1d(2, 3, 1), nn.ReLU(), nn.Linear(2, 2)
    assert fm.view_of(linear, (1, 10), None, None) == fm.LayerView("vector", 10)
    assert fm.view_of(nn.Conv2d(1, 8, 1), (1, 8, 1, 1), None, None) == fm.LayerView("vector", 8)
    assert fm.view_of(nn.Conv2d(1, 8, 1), (1, 8, 5, 4), None, None) == fm.LayerView("spatial", 8)
    seq = fm.view_of(conv1d, (1, 3, 9), None, None)
    assert seq == fm.LayerView("sequence", 3)
    assert fm.view_of(relu, (1, 3, 9), seq, None) == fm.LayerView("sequence", 3)  # follows the Conv1d
    assert fm.view_of(linear, (1, 16, 32), None, None) == fm.LayerView("tokens", 32, grid_side=4)
    assert fm.view_of(linear, (1, 17, 32), None, None) == fm.LayerView(
        "tokens", 32, grid_side=4, class_tokens=1
    )
    assert fm.view_of(linear, (1, 7, 32), None, None) == fm.LayerView("tokens", 32)
    assert fm.view_of(relu, (1, 7, 32), None, None) == fm.LayerView("tokens", 32)
    assert fm.view_of(nn.Conv3d(1, 2, 1), (1, 2, 5, 3, 3), None, None) == fm.LayerView(
        "volume", 2, depth_index=2
    )
    assert fm.view_of(nn.Conv3d(1, 2, 1), (1, 2, 5, 3, 3), None, 4).depth_index == 4
    with pytest.raises(ValueError, match=r"outside the layer's 5 depth slices \(0..4\)"):
        fm.view_of(nn.Conv3d(1, 2, 1), (1, 2, 5, 3, 3), None, 5)
    assert fm.view_of(relu, (1,), None, None) is None
    assert fm.view_of(nn.AdaptiveAvgPool1d(1), (1, 5, 1), seq, None) == fm.LayerView("vector", 5)
    assert fm.view_of(linear, (1, 1, 6), None, None) == fm.LayerView("vector", 6)


def test_channel_maps_of_each_layout_golden() -> None:
    x = torch.arange(2 * 3 * 4, dtype=torch.float32)
    tokens = x.reshape(2, 4, 3)  # (N, L, C)
    maps = fm.channel_maps(tokens, fm.LayerView("tokens", 3, grid_side=2))
    assert maps.shape == (2, 3, 1, 4)
    assert maps[1, 2, 0].tolist() == tokens[1, :, 2].tolist()  # channel 2 over the 4 tokens
    seq = x.reshape(2, 3, 4)  # (N, C, L)
    maps = fm.channel_maps(seq, fm.LayerView("sequence", 3))
    assert maps.shape == (2, 3, 1, 4) and maps[0, 1, 0].tolist() == seq[0, 1].tolist()
    vec = x.reshape(2, 12)
    maps = fm.channel_maps(vec, fm.LayerView("vector", 12))
    assert maps.shape == (2, 1, 1, 12) and maps[1, 0, 0].tolist() == vec[1].tolist()
    vol = torch.arange(2 * 3 * 5 * 2 * 2, dtype=torch.float32).reshape(2, 3, 5, 2, 2)
    maps = fm.channel_maps(vol, fm.LayerView("volume", 3, depth_index=1))
    assert maps.shape == (2, 3, 2, 2) and torch.equal(maps, vol[:, :, 1])


# ---- channel choice ---------------------------------------------------------------------------------


def test_most_active_orders_by_mean_activation_ties_to_lower_index() -> None:
    means = torch.tensor([0.5, 2.0, -1.0, 2.0, 0.7, float("nan")])
    maps = means.reshape(1, 6, 1, 1).expand(2, 6, 3, 3).clone()
    maps[0, 5] = 10.0  # NaN counts as 0 in the mean: (10 * 9 + 0 * 9) / 18 = 5
    assert fm.most_active(maps, 3) == [5, 1, 3]
    assert fm.most_active(maps, 10) == [5, 1, 3, 4, 0, 2]


def probe_model() -> nn.Sequential:
    """Conv with one input: channel c outputs (c + 1) * x, so channel means follow the weights."""
    conv = nn.Conv2d(1, 4, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 4.0, 2.0, 3.0]).reshape(4, 1, 1, 1))
    return nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 2))


def test_choice_is_made_once_and_kept_while_activity_changes() -> None:
    model = probe_model()
    images = torch.rand(2, 1, 3, 3) + 0.1
    plan = fm.plan_feature_maps(
        model, writer_probe(images), every=1, k=2, layers=[("0", model[0])], channels=None,
        depth=None, filter_layers=None, device=torch.device("cpu"),
    )  # fmt: skip
    assert plan is not None
    recorder = fm.FeatureMapRecorder(plan)
    first = recorder.run(model, images)["0"]
    assert first.channels == (1, 3) and not first.user_channels
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([5.0, 0.1, 0.2, 0.3]).reshape(4, 1, 1, 1))
    second = recorder.run(model, images)["0"]
    assert second.channels == (1, 3)  # channel 0 is now the most active, the choice stays
    expected = (images * 0.1).numpy()[:, 0]
    np.testing.assert_allclose(
        dequantize(second.codes, second.scales)[:, 0], expected, atol=bound(second.scales, second.bits).max()
    )


def writer_probe(images: torch.Tensor):
    from tb_plugin_insight.capture.probe import make_probe

    return make_probe("probe", images)


def test_user_channels_are_honoured_in_their_order(tmp_path) -> None:
    model = probe_model()
    images = torch.rand(2, 1, 3, 3)
    plan = fm.plan_feature_maps(
        model, writer_probe(images), every=1, k=2, layers=[("0", model[0]), ("1", model[1])],
        channels={"1": [2, 0, 3]}, depth=None, filter_layers=None, device=torch.device("cpu"),
    )  # fmt: skip
    records = fm.FeatureMapRecorder(plan).run(model, images)
    assert records["1"].channels == (2, 0, 3) and records["1"].user_channels
    assert records["0"].channels == (1, 3)
    weights = torch.tensor([1.0, 4.0, 2.0, 3.0])
    for column, channel in enumerate((2, 0, 3)):
        expected = (images[:, 0] * weights[channel]).numpy()
        got = dequantize(records["1"].codes, records["1"].scales)[:, column]
        np.testing.assert_allclose(
            got, expected, atol=bound(records["1"].scales, records["1"].bits).max() + 1e-6
        )


@pytest.mark.parametrize(
    ("channels", "error", "message"),
    [
        ({"0": [1, 4]}, ValueError, r"indices \[4\] outside the layer's 4 channels: use indices 0..3"),
        ({"0": [-1]}, ValueError, r"use indices 0..3"),
        ({"0": []}, ValueError, "give at least one channel index"),
        ({"0": [1, 1]}, ValueError, "repeats a channel index"),
        ({"0": [1.5]}, TypeError, "must hold ints"),
        ({"0": 3}, TypeError, "must be a list of channel indices"),
        (
            {"nope": [0]},
            ValueError,
            r"names 'nope', which has no feature maps \(layers with feature maps: 0, 1,",
        ),
        ({"3": [0]}, ValueError, "vector output .* leave it out of maps_channels"),
    ],
)
def test_bad_channel_choices_name_the_fix(tmp_path, channels, error, message) -> None:
    model = probe_model()
    with InsightWriter(str(tmp_path)) as writer, pytest.raises(error, match=message):
        writer.watch(model, probe=torch.rand(2, 1, 3, 3), cam_every=0, maps_channels=channels)


def test_bad_maps_options_name_the_fix(tmp_path) -> None:
    model = probe_model()
    probe = torch.rand(2, 1, 3, 3)
    with InsightWriter(str(tmp_path)) as writer:
        with pytest.raises(ValueError, match="maps_every must be a non-negative int"):
            writer.watch(model, probe=probe, cam_every=0, maps_every=-1)
        with pytest.raises(ValueError, match="maps_k must be a positive int"):
            writer.watch(model, probe=probe, cam_every=0, maps_k=0)
        with pytest.raises(ValueError, match="filters_layers: '1' is a ReLU, not a convolution"):
            writer.watch(model, probe=probe, cam_every=0, filters_layers=["1"])
        with pytest.raises(ValueError, match="no module named 'conv'"):
            writer.watch(model, probe=probe, cam_every=0, filters_layers=["conv"])
        with pytest.raises(ValueError, match="maps_depth names layers without feature maps"):
            writer.watch(model, probe=probe, cam_every=0, maps_depth={"9": 1})
    with InsightWriter(str(tmp_path / "b")) as writer, pytest.raises(ValueError, match="needs a probe batch"):
        writer.watch(model, maps_channels={"0": [1]})


# ---- filters ----------------------------------------------------------------------------------------


def test_rgb_filters_one_tile_per_filter_scaled_together() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, (3, 2))
    record = filters.filter_record(conv)
    assert (
        record.layout == "rgb" and record.codes.shape == (5, 1, 3, 2, 3) and record.scales.shape == (5, 1, 2)
    )
    assert record.filters == (0, 1, 2, 3, 4) and record.num_filters == 5
    expected = conv.weight.detach().permute(0, 2, 3, 1).numpy()  # (O, kh, kw, RGB)
    back = dequantize(record.codes[:, 0], record.scales[:, 0], map_dims=3)
    assert (np.abs(back - expected).reshape(5, -1).max(axis=1) <= bound(record.scales[:, 0])).all()
    w2 = conv.weight.detach()[2]
    assert record.scales[2].tolist() == [[float(w2.min()), float(w2.max())]]


def test_gray_filters_per_input_channel_with_caps() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 4, 3)
    record = filters.filter_record(conv)
    assert record.layout == "gray" and record.codes.shape == (4, 2, 3, 3) and record.inputs == (0, 1)
    back = dequantize(record.codes, record.scales)
    assert (
        np.abs(back - conv.weight.detach().numpy()).reshape(4, 2, -1).max(-1) <= bound(record.scales)
    ).all()
    big = filters.filter_record(nn.Conv2d(20, 70, 1))
    assert big.codes.shape == (filters.MAX_FILTERS, filters.MAX_INPUTS, 1, 1) and big.num_filters == 70
    assert filters.filter_record(nn.Conv1d(2, 3, 5)).codes.shape == (3, 2, 1, 5)
    conv3d = nn.Conv3d(2, 3, (3, 2, 2))
    rec3d = filters.filter_record(conv3d)
    assert rec3d.codes.shape == (3, 2, 2, 2)
    back = dequantize(rec3d.codes, rec3d.scales)
    assert np.abs(back - conv3d.weight.detach()[:, :, 1].numpy()).max() <= bound(rec3d.scales).max()


def test_first_conv_and_named_filter_layers() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    assert filters.first_conv(model) == "1"
    assert filters.plan_filters(model, None) == ("1",)
    assert filters.plan_filters(model, ["3", "1"]) == ("1", "3")
    assert filters.plan_filters(nn.Sequential(nn.Linear(2, 2)), None) == ()


# ---- non-image layers end to end ---------------------------------------------------------------


class TinyTokens(nn.Module):
    """A transformer-like block on a 2x2 patch grid with a class token: (N, 5, 8) token layers."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, 8, 2, stride=2)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.mlp = nn.Linear(8, 8)
        self.act = nn.GELU()
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.head(self.act(self.mlp(tokens))[:, 0])


def test_token_layers_recorded_as_token_by_channel_with_grid_metadata() -> None:
    torch.manual_seed(0)
    model = TinyTokens()
    images = torch.rand(3, 1, 4, 4)
    layers = [(n, m) for n, m in model.named_modules() if n]
    plan = fm.plan_feature_maps(
        model, writer_probe(images), every=1, k=3, layers=layers, channels=None, depth=None,
        filter_layers=None, device=torch.device("cpu"),
    )  # fmt: skip
    assert plan is not None
    assert plan.views["mlp"].layout == "tokens" and plan.views["mlp"].grid_side == 2
    assert plan.views["mlp"].class_tokens == 1
    assert plan.views["head"].layout == "vector" and plan.views["patch"].layout == "spatial"
    records = fm.FeatureMapRecorder(plan).run(model, images)
    mlp = records["mlp"]
    assert mlp.codes.shape == (3, 3, 1, 5)  # 3 images x 3 channels x (1 x 5 tokens)
    with torch.no_grad():
        x = model.patch(images).flatten(2).transpose(1, 2)
        out = model.mlp(torch.cat([model.cls.expand(3, -1, -1), x], dim=1))
    for column, channel in enumerate(mlp.channels):
        got = dequantize(mlp.codes, mlp.scales)[:, column, 0]
        np.testing.assert_allclose(
            got, out[:, :, channel].numpy(), atol=bound(mlp.scales, mlp.bits).max() + 1e-6
        )
    head = records["head"]
    assert head.codes.shape == (3, 1, 1, 2) and head.channels == ()


def raw_probe(inputs: torch.Tensor):
    """A probe of non-image inputs (what the recorder sees; watch(probe=) takes images)."""
    from tb_plugin_insight.capture.probe import Probe

    return Probe("probe", inputs, None, (), np.zeros((len(inputs), 1, 1, 3), np.uint8))


def test_sequence_layers_end_to_end_channel_by_position() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten())
    seq = torch.rand(2, 2, 7)
    layers = [(n, m) for n, m in model.named_modules() if n]
    plan = fm.plan_feature_maps(
        model, raw_probe(seq), every=1, k=2, layers=layers, channels={"1": [4, 0]}, depth=None,
        filter_layers=None, device=torch.device("cpu"),
    )  # fmt: skip
    assert plan is not None
    assert [plan.views[n].layout for n in "0123"] == ["sequence", "sequence", "vector", "vector"]
    record = fm.FeatureMapRecorder(plan).run(model, seq)["1"]
    assert record.codes.shape == (2, 2, 1, 7) and record.channels == (4, 0)
    with torch.no_grad():
        expected = torch.relu(model[0](seq))[:, [4, 0]].unsqueeze(2).numpy()
    np.testing.assert_allclose(
        dequantize(record.codes, record.scales), expected, atol=bound(record.scales, record.bits).max()
    )
    assert plan.filter_layers == ("0",)
    weights = filters.filter_record(model[0])
    assert weights.layout == "gray" and weights.codes.shape == (5, 2, 1, 3)


@pytest.mark.parametrize(("depth", "index"), [(None, 2), (0, 0), ({"0": 3}, 3)])
def test_volume_layers_show_the_chosen_depth_slice(depth, index) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(1, 3, 1), nn.Flatten(), nn.Linear(3 * 5 * 2 * 2, 2))
    vol = torch.rand(2, 1, 5, 2, 2)
    plan = fm.plan_feature_maps(
        model, raw_probe(vol), every=1, k=2, layers=[("0", model[0])], channels=None, depth=depth,
        filter_layers=None, device=torch.device("cpu"),
    )  # fmt: skip
    assert plan is not None and plan.views["0"].layout == "volume" and plan.views["0"].depth_index == index
    record = fm.FeatureMapRecorder(plan).run(model, vol)["0"]
    with torch.no_grad():
        expected = model[0](vol)[:, list(record.channels), index].numpy()
    np.testing.assert_allclose(
        dequantize(record.codes, record.scales), expected, atol=bound(record.scales, record.bits).max()
    )


def test_stage_ends_keep_the_last_layer_of_each_run_of_equal_map_sizes() -> None:
    def view(layout: str, *shape: int) -> fm.LayerView:
        return fm.LayerView(layout, shape[1] if len(shape) > 1 else 0, shape=shape)

    views = {
        "conv1": view("spatial", 1, 8, 32, 32),
        "relu1": view("spatial", 1, 8, 32, 32),
        "conv2": view("spatial", 1, 16, 16, 16),
        "bn2": view("spatial", 1, 16, 16, 16),
        "relu2": view("spatial", 1, 16, 16, 16),
        "conv3": view("spatial", 1, 16, 32, 32),  # back to 32 x 32 (a decoder): a new stage
        "fc1": view("vector", 1, 64),
        "fc2": view("vector", 1, 10),
    }
    assert fm.stage_ends(views) == ["relu1", "relu2", "conv3", "fc2"]
    assert fm.stage_ends({}) == []
