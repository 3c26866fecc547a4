"""Compact storage at the defaults: pooled feature and saliency maps, fewer levels, float32 statistics.

Written through InsightWriter, read back from the event files or through the plugin's routes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import read_events
from test_cam_recording import cam_model, probe_batch
from test_feature_maps import TinyTokens, raw_probe, writer_probe
from test_plugin import PREFIX, get_json, make_client
from torch import nn
from torch.nn import functional
from torch.utils.tensorboard import SummaryWriter
from werkzeug.test import Client

from conftest import write_run
from tb_plugin_insight import InsightWriter, metadata, saliency, summary
from tb_plugin_insight.capture import feature_maps as fm
from tb_plugin_insight.capture.quantize import allowed_codes, dequantize, error_bound, levels, quantize
from tb_plugin_insight.explain import pooling
from tb_plugin_insight.render import png


def identity_model() -> nn.Sequential:
    """A 1x1 convolution with weight 1 and no bias: its output is its 1-channel input."""
    conv = nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    return nn.Sequential(conv, nn.Flatten(), nn.Linear(25, 2))


def one_step(model: nn.Module, writer: InsightWriter, **watch: object) -> None:
    """Watch, then one training step (maps are recorded just before its forward)."""
    writer.watch(model, layers=["0"], cam_every=0, maps_every=1, maps_layers=["0"], **watch)
    model.train()
    model(torch.zeros(2, 1, 5, 5)).sum().backward()


RAMP = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)
PROBE = torch.cat([RAMP, 2 * RAMP])  # two images: v = 5 r + c, and twice that
# 3 x 3 block means of RAMP (edge blocks average only the pixels they cover): rows 0-2 | 3-4,
# columns 0-2 | 3-4.
POOLED_RAMP = np.array([[6.0, 8.5], [18.5, 21.0]])


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("storage")
    with InsightWriter(str(root / "pooled")) as writer:
        one_step(identity_model(), writer, probe=PROBE, maps_max_side=2, maps_bits=8)
    with InsightWriter(str(root / "defaults")) as writer:
        one_step(identity_model(), writer, probe=PROBE)
    with InsightWriter(str(root / "saliency")) as writer:
        images, labels = probe_batch()  # 4 images of 12 x 12
        model = cam_model()
        writer.watch(
            model, probe=(images, labels), cam_every=0, maps_every=0, saliency_every=1,
            saliency_methods="gradient", saliency_max_side=5,
        )  # fmt: skip
        model(torch.randn(2, 3, 12, 12)).sum().backward()
    write_run(root / "stats", steps=1)
    return root


@pytest.fixture(scope="module")
def client(logdir: Path) -> Client:
    return make_client(logdir)


def served_maps(client: Client, run: str) -> tuple[dict, np.ndarray]:
    """The /feature_maps entry of layer 0 at step 0 and its tiles dequantised (N, K, h, w)."""
    body = get_json(client, f"/feature_maps?run={run}&layer=0&step=0")
    grid = png.decode(client.get(PREFIX + f"/feature_map_image?run={run}&layer=0&step=0").get_data())
    codes = png.ungrid(grid, body["height"], body["width"])
    scales = np.stack([np.array(body["scaleMin"]), np.array(body["scaleMax"])], axis=-1)
    return body, dequantize(codes, scales)


# ---- feature maps: pooling ----------------------------------------------------------------------


def test_feature_maps_pooled_to_max_side_are_block_means(client: Client) -> None:
    body, values = served_maps(client, "pooled")
    assert (body["height"], body["width"], body["poolFactor"]) == (2, 2, 3)
    assert (body["sourceHeight"], body["sourceWidth"], body["bits"]) == (5, 5, 8)
    assert body["shape"] == [1, 1, 5, 5]  # the layer's output, not the stored tile
    span = np.array(body["scaleMax"]) - np.array(body["scaleMin"])
    assert np.allclose(np.array(body["scaleMin"])[:, 0], [6.0, 12.0])  # the pooled maps' range
    np.testing.assert_allclose(values[0, 0], POOLED_RAMP, atol=span[0, 0] / 510 + 1e-6)
    np.testing.assert_allclose(values[1, 0], 2 * POOLED_RAMP, atol=span[1, 0] / 510 + 1e-6)
    listed = get_json(client, "/feature_map_layers?run=pooled")["featureMaps"][0]
    assert (listed["poolFactor"], listed["sourceHeight"], listed["height"]) == (3, 5, 2)


def test_pooling_keeps_the_aspect_and_drops_no_pixel() -> None:
    x = torch.arange(35, dtype=torch.float32).reshape(1, 1, 5, 7)
    view = fm.LayerView("spatial", 1)
    pool = fm.pooling_of(view, 5, 7, 3)  # the longer side decides: ceil(7 / 3) = 3
    assert pool.factor == 3 and fm.pooling_of(view, 5, 7, 7).factor == 1
    got = pool.apply(x, view)[0, 0].numpy()
    a = x[0, 0].numpy()
    expected = [[a[r : r + 3, c : c + 3].mean() for c in (0, 3, 6)] for r in (0, 3)]
    np.testing.assert_allclose(got, expected)
    assert got[1, 2] == pytest.approx((27 + 34) / 2)  # the corner block covers 2 pixels
    assert [pooling.pool_factor(side, 32) for side in (32, 33, 56, 64, 65, 112)] == [1, 2, 2, 2, 3, 4]
    assert pooling.pool_factor(112, None) == 1


def test_defaults_store_small_maps_at_full_resolution_with_six_bit_codes(client: Client) -> None:
    body, values = served_maps(client, "defaults")
    assert (body["height"], body["width"], body["poolFactor"], body["bits"]) == (5, 5, 1, 6)
    assert (body["sourceHeight"], body["sourceWidth"]) == (5, 5)
    grid = png.decode(client.get(PREFIX + "/feature_map_image?run=defaults&layer=0&step=0").get_data())
    assert set(np.unique(grid)) <= set(allowed_codes(6).tolist())
    for image, factor in ((0, 1.0), (1, 2.0)):
        span = body["scaleMax"][image][0] - body["scaleMin"][image][0]
        error = np.abs(values[image, 0] - factor * RAMP[0, 0].numpy()).max()
        assert error <= error_bound(span, 6) + 1e-6
        assert error > error_bound(span, 8)  # 6 bits really are coarser than 8


def test_token_grids_pool_as_grids_rows_only_when_long_vectors_never() -> None:
    torch.manual_seed(0)
    model = TinyTokens()  # (N, 1 + 2 * 2, 8) tokens: a class token and a 2 x 2 grid
    images = torch.rand(3, 1, 4, 4)
    layers = [(n, m) for n, m in model.named_modules() if n]
    plan = fm.plan_feature_maps(
        model, writer_probe(images), every=1, k=3, layers=layers, channels=None, depth=None,
        filter_layers=None, device=torch.device("cpu"), max_side=1, bits=8,
    )  # fmt: skip
    assert plan is not None
    records = fm.FeatureMapRecorder(plan).run(model, images)
    mlp = records["mlp"]
    assert mlp.codes.shape == (3, 3, 1, 2) and mlp.source_size == (1, 5)
    assert mlp.pooling == fm.Pooling(2, 1)  # the 2 x 2 grid became 1 x 1; the class token stays
    with torch.no_grad():
        x = model.patch(images).flatten(2).transpose(1, 2)
        out = model.mlp(torch.cat([model.cls.expand(3, -1, -1), x], dim=1))
    for column, channel in enumerate(mlp.channels):
        expected = torch.stack([out[:, 0, channel], out[:, 1:, channel].mean(dim=1)], dim=1).numpy()
        got = dequantize(mlp.codes, mlp.scales)[:, column, 0]
        span = mlp.scales[:, column, 1] - mlp.scales[:, column, 0]
        np.testing.assert_allclose(got, expected, atol=float(span.max()) / 510 + 1e-6)
    assert records["head"].codes.shape == (3, 1, 1, 2)  # a vector strip: never pooled
    assert records["patch"].codes.shape == (3, 3, 1, 1)  # 2 x 2 spatial -> 1 x 1

    seq_model = nn.Sequential(nn.Conv1d(1, 2, 1, bias=False), nn.Flatten(), nn.Linear(14, 2))
    with torch.no_grad():
        seq_model[0].weight.fill_(1.0)
    seq = torch.arange(7, dtype=torch.float32).reshape(1, 1, 7)
    plan = fm.plan_feature_maps(
        seq_model, raw_probe(seq), every=1, k=1, layers=[("0", seq_model[0])], channels=None,
        depth=None, filter_layers=None, device=torch.device("cpu"), max_side=2, bits=8,
    )  # fmt: skip
    assert plan is not None
    row = fm.FeatureMapRecorder(plan).run(seq_model, seq)["0"]
    # 7 > 2² = 4 positions: pooled by 2 along the row, the last block holds one position.
    assert row.codes.shape == (1, 1, 1, 4) and row.pooling.factor == 2
    np.testing.assert_allclose(dequantize(row.codes, row.scales)[0, 0, 0], [0.5, 2.5, 4.5, 6.0], atol=0.02)


# ---- quantisation levels --------------------------------------------------------------------------


@pytest.mark.parametrize("bits", range(1, 9))
def test_bits_use_only_their_codes_within_the_stated_bound(bits: int) -> None:
    gen = torch.Generator().manual_seed(bits)
    x = torch.randn(4, 3, 9, 9, generator=gen) * 3 + 1
    codes, scales = quantize(x, bits=bits)
    allowed = allowed_codes(bits)
    assert len(allowed) == levels(bits) + 1 <= 2**bits and allowed[0] == 0 and allowed[-1] == 255
    assert len(set(np.diff(allowed.astype(int)))) == 1  # evenly spaced
    assert set(np.unique(codes.numpy())) <= set(allowed.tolist())
    back = dequantize(codes.numpy(), scales.double().numpy())
    error = np.abs(back - x.double().numpy()).reshape(4, 3, -1).max(axis=-1)
    span = (scales[..., 1] - scales[..., 0]).double().numpy()
    stated = error_bound(span, bits)
    assert (error <= stated * 1.001 + 1e-12).all()
    assert error.max() > 0.6 * stated.max()  # the bound is nearly reached: it is not loose
    assert 255 % levels(bits) == 0 and error_bound(1.0, bits) == pytest.approx(1 / (2 * levels(bits)))


def test_eight_bits_codes_are_unchanged_six_bits_are_multiples_of_five() -> None:
    x = torch.tensor([[[[0.0, 0.12], [2.0, 5.1]]]])
    assert quantize(x, bits=8)[0][0, 0].tolist() == [[0, 6], [100, 255]]  # 255 * v / 5.1
    assert quantize(x, bits=6)[0][0, 0].tolist() == [[0, 5], [100, 255]]  # 5 * round(51 * v / 5.1)
    assert [levels(b) for b in range(1, 9)] == [1, 3, 5, 15, 17, 51, 85, 255]
    assert error_bound(510.0, 8) == 1.0 and error_bound(102.0, 6) == 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"maps_max_side": 0}, "maps_max_side must be a positive int"),
        ({"maps_max_side": 2.5}, "maps_max_side must be a positive int"),
        ({"maps_bits": 9}, "maps_bits must be an int from 1 to 8"),
        ({"maps_bits": 0}, "maps_bits must be an int from 1 to 8"),
        ({"saliency_max_side": -1, "saliency_methods": "gradient"}, "saliency_max_side must be a positive"),
        ({"saliency_max_side": "64"}, "saliency_max_side must be a positive"),
    ],
)
def test_bad_size_options_name_the_fix(tmp_path: Path, options: dict, message: str) -> None:
    with InsightWriter(str(tmp_path)) as writer, pytest.raises(ValueError, match=message):
        writer.watch(identity_model(), probe=PROBE, cam_every=0, **options)


# ---- saliency: pooled before normalisation ----------------------------------------------------------


def test_saliency_maps_pooled_to_max_side_and_listed_with_their_stored_size(client: Client) -> None:
    series = [s for s in get_json(client, "/maps?run=saliency")["series"] if s["kind"] == "saliency"]
    assert len(series) == 1
    entry = series[0]
    assert (entry["height"], entry["width"], entry["numImages"]) == (4, 4, 4)  # ceil(12 / 3)
    assert (entry["poolFactor"], entry["sourceHeight"], entry["sourceWidth"]) == (3, 12, 12)
    assert get_json(client, "/probe?run=saliency")["height"] == 12  # the images stay full size
    images, _ = probe_batch()
    attribution = saliency.compute_attribution(cam_model(), images, "gradient")  # step 0's weights
    pooled = functional.avg_pool2d(attribution.abs().amax(dim=1, keepdim=True), 3, ceil_mode=True)[:, 0]
    top = pooled.flatten(1).max(dim=1).values  # 99th percentile of 16 pixels (nearest rank): the max
    response = client.get(PREFIX + "/map_image?run=saliency&kind=saliency&method=gradient&step=0")
    stored = png.decode(response.get_data()).reshape(4, 4, 4).astype(np.float64) / 255
    np.testing.assert_allclose(stored, (pooled / top[:, None, None]).numpy(), atol=1 / 510 + 1e-6)
    np.testing.assert_allclose(entry["rawMax"][0], top.numpy(), rtol=1e-6)


# ---- float32 statistics -----------------------------------------------------------------------------


def kind_of(tag: str) -> str:
    """The record kind's name in a tag: `insight/<kind>/...`, `insight/layer_table/<kind>/<key>`."""
    parts = tag.split("/")
    return parts[2] if parts[1] == "layer_table" else parts[1]


def dtypes_by_kind(run_dir: Path) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for event in read_events(run_dir):
        for value in event.summary.value:
            if value.tag.startswith("insight/") and value.HasField("tensor"):
                kind = kind_of(value.tag)
                if value.tensor.dtype != 7:  # DT_STRING: blobs
                    found.setdefault(kind, set()).add(value.tensor.dtype)
    return found


def test_statistics_of_a_normal_run_are_float32(logdir: Path) -> None:
    float32 = 1  # types_pb2.DT_FLOAT
    kinds = dtypes_by_kind(logdir / "stats")
    for kind in ("activation_stats", "gradient_stats", "unit_stats", "activation_histogram"):
        assert kinds[kind] == {float32}, kind
    assert dtypes_by_kind(logdir / "pooled")["feature_map_scales"] == {float32}
    saliency = dtypes_by_kind(logdir / "saliency")
    assert saliency["map_ranges"] == {float32} and saliency["probe_predictions"] == {float32}


def test_statistics_of_a_float64_model_stay_float64(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1)
        for step in range(4):
            if step == 2:
                model.float()  # a model may change dtype after watch(): checked at every record
            dtype = torch.float64 if step < 2 else torch.float32
            model(torch.randn(5, 4, dtype=dtype)).sum().backward()
    by_step: dict[tuple[str, int], set[int]] = {}
    for event in read_events(tmp_path):
        for value in event.summary.value:
            kind = kind_of(value.tag)
            if kind in ("activation_stats", "gradient_stats"):
                by_step.setdefault((kind, event.step), set()).add(value.tensor.dtype)
    for kind in ("activation_stats", "gradient_stats"):
        assert by_step[(kind, 0)] == {2} and by_step[(kind, 3)] == {1}, kind  # DT_DOUBLE, DT_FLOAT


def stats_vector(numel: float, std: float = 0.5) -> np.ndarray:
    return np.array([0.25, std, -1.0, 2.0, 0.5, 0.0, float("nan"), numel])


def stats_value(vector: np.ndarray, *, layer: str = "conv") -> object:
    return summary.activation_stats_value(
        layer, vector, module_type="Conv2d", shape=(1, 4, 8, 8), order=1, with_metadata=True
    )


@pytest.mark.parametrize(
    ("vector", "dtype"),
    [
        (stats_vector(2**24 - 1), 1),  # every count exact in float32
        (stats_vector(2**24 + 1), 2),  # a count float32 cannot hold: float64
        (stats_vector(100, std=1e-40), 2),  # would underflow to a float32 subnormal
        (stats_vector(100, std=1e39), 2),  # would overflow to Inf
        (stats_vector(100, std=float("inf")), 1),  # non-finite values stay as they are
    ],
)
def test_float32_only_when_nothing_that_matters_is_lost(vector: np.ndarray, dtype: int) -> None:
    value = stats_value(vector)
    assert value.tensor.dtype == dtype
    grads = np.full(len(metadata.GRAD_FIELDS), 1.0)
    grads[metadata.GRAD_FIELDS.index("gradNumel")] = 2**24 + 1
    grad_value = summary.gradient_stats_value(
        "conv", grads, module_type="Conv2d", shape=(), order=1, with_metadata=False
    )
    assert grad_value.tensor.dtype == 2


EDGE_ROWS = [
    [1.0, 2.0**24, 3.0],
    [1.0, 2.0**24 - 1, 3.0],
    [1e-40, 1.0, 0.0],
    [-1e-40, 0.0, -0.0],
    [float("nan"), float("inf"), -float("inf")],
    [3e38, -3.4e38, 1.0],
    [1e39, 1.0, 1.0],
    [1.0, float("inf"), 2.0**30],
]


@pytest.mark.parametrize("row", EDGE_ROWS)
@pytest.mark.parametrize("counts", [(), (1,), (1, 2)])
def test_small_records_take_the_same_dtype_as_the_array_path(row: list[float], counts: tuple) -> None:
    """compact_floats loops over small 1-D records (its per-layer hot path): it must decide exactly as
    the numpy path, which larger arrays (and 2-D tables with counts) take."""
    small = summary.compact_floats(np.array(row), counts=counts)
    large = summary.compact_floats(np.tile(np.array(row), (100, 1)), counts=counts)  # numpy path
    assert small.dtype == large.dtype
    np.testing.assert_array_equal(small, np.array(row).astype(small.dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8,), (3, 2), (0,), (1, 1)])
def test_float_tensor_proto_reads_back_as_make_tensor_proto_does(dtype: type, shape: tuple) -> None:
    """The direct builder always writes tensor_content; make_tensor_proto writes float_val for one
    element. Every reader decodes both to the same array."""
    array = np.array([1.5, -0.0, 1e-30, float("nan"), float("inf"), 7.0, 2.0, 3.0])[: int(np.prod(shape))]
    array = array.astype(dtype).reshape(shape)
    ours, theirs = summary.float_tensor_proto(array), summary.tensor_util.make_tensor_proto(array)
    assert (ours.dtype, ours.tensor_shape) == (theirs.dtype, theirs.tensor_shape)
    read = summary.tensor_util.make_ndarray(ours)
    assert read.dtype == array.dtype and read.shape == array.shape
    np.testing.assert_array_equal(read, summary.tensor_util.make_ndarray(theirs))
    assert np.array_equal(np.signbit(read), np.signbit(array))  # -0.0 kept
    if array.size > 1:
        assert ours == theirs  # the same bytes on disk


def test_float64_and_float32_records_read_alike(tmp_path: Path) -> None:
    """Old runs hold float64 statistics; big counts are float64 today. The routes read both, exactly."""
    run = tmp_path / "mixed"
    with SummaryWriter(str(run)) as writer:
        file_writer = writer._get_file_writer()
        old = stats_value(stats_vector(123.0))
        old.tensor.CopyFrom(
            summary.tensor_util.make_tensor_proto(np.asarray(stats_vector(123.0), np.float64))
        )
        assert old.tensor.dtype == 2
        file_writer.add_summary(summary.summary_of([old]), global_step=0)
        file_writer.add_summary(summary.summary_of([stats_value(stats_vector(2**24 + 1))]), 1)
        file_writer.add_summary(summary.summary_of([stats_value(stats_vector(7.0))]), 2)
    body = get_json(make_client(tmp_path), "/layer_stats?run=mixed&layer=conv")
    assert body["steps"] == [0, 1, 2]
    assert body["stats"]["numel"] == [123, 2**24 + 1, 7]
    assert body["stats"]["mean"] == [0.25] * 3 and body["stats"]["infCount"] == [None] * 3
