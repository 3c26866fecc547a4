"""Inside each layer: activation histograms, dead/saturated units and the model table, from capture to
the plugin's routes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import hook_count, layer_records, read_events
from tensorboard.util import tensor_util
from test_plugin import PREFIX, get_json, make_client
from torch import nn

from conftest import tiny_cnn
from tb_plugin_insight import InsightWriter, metadata
from tb_plugin_insight.capture import histogram, layout, reduce, units
from tb_plugin_insight.capture.model_table import describe_output

INF, NAN = float("inf"), float("nan")


def numpy_histogram(values: np.ndarray, low: float, high: float, bins: int) -> np.ndarray:
    finite = values[np.isfinite(values)]
    counts, _ = np.histogram(finite, bins=bins, range=(low, high))
    under, over = int((finite < low).sum()), int((finite > high).sum())
    return np.concatenate([[low, high, under, over], counts])


@pytest.mark.parametrize(
    "values",
    [
        [0.0, 0.5, 1.0, 1.5, 2.0, 3.9, 4.0],  # bin edges and the closed last edge
        [-5.0, -4.0, -4.0001, 4.0001, 7.0, 0.0, 1.0],  # underflow and overflow
        [NAN, INF, -INF, 1.0, -9.0, 2.0, NAN, 10.0],  # NaN/Inf left out, finite outsiders counted
        [NAN, NAN],  # nothing finite
        [-4.0, -3.99, -0.01, 0.0, 0.01, 3.99],
    ],
)
@pytest.mark.parametrize("with_stats", [True, False])
def test_histogram_counts_match_numpy(values: list[float], with_stats: bool) -> None:
    x = torch.tensor(values, dtype=torch.float32)
    stats = reduce.activation_stats(x) if with_stats else None
    got = histogram.histogram(x, -4.0, 4.0, 8, stats).numpy()
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, numpy_histogram(np.array(values, np.float32), -4.0, 4.0, 8))


def test_histogram_of_random_tensors_matches_numpy() -> None:
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64, torch.float16, torch.int64):
        x = (torch.randn(4, 3, 5, 5, generator=gen) * 3).to(dtype)
        got = histogram.histogram(x, -5.0, 5.0, 64, reduce.activation_stats(x)).numpy()
        want = numpy_histogram(x.float().numpy().reshape(-1), -5.0, 5.0, 64)
        np.testing.assert_array_equal(got, want)
        assert got[2:].sum() == x.numel()


def test_large_outputs_are_binned_from_an_even_sample_with_scaled_counts() -> None:
    torch.manual_seed(1)
    x = torch.randn(4, 32, 48, 48) * 2  # 294,912 elements: more than a sample of 2**16
    stats = reduce.activation_stats(x)
    step = histogram.sample_step(x.numel(), 1 << 16)
    assert step > 1 and math.gcd(step, x.numel()) == 1 and x.numel() / step <= 1 << 16
    got = histogram.histogram(x, -4.0, 4.0, 16, stats, sample_size=1 << 16).numpy()
    exact, _ = np.histogram(x.numpy().ravel(), bins=16, range=(-4.0, 4.0))
    under, over = (x < -4).sum().item(), (x > 4).sum().item()
    assert got[4:].sum() + got[2] + got[3] == pytest.approx(x.numel())  # scaled to the whole output
    full = exact > x.numel() / 20  # bins with more than 5 % of the elements: within 3 % of the truth
    assert np.all(np.abs(got[4:][full] - exact[full]) <= 0.03 * exact[full])
    assert abs(got[2] - under) < 0.2 * under and abs(got[3] - over) < 0.2 * over
    assert histogram.sample_step(1 << 16, 1 << 16) == 1  # up to the sample size: exact
    exact_small = histogram.histogram(x[:1, :1], -4.0, 4.0, 16, sample_size=1 << 16).numpy()
    ref, _ = np.histogram(x[:1, :1].numpy().ravel(), bins=16, range=(-4.0, 4.0))
    assert np.array_equal(exact_small[4:], ref)


def test_range_rule() -> None:
    assert histogram.choose_range(0.0, 2.3) == (0.0, 4.0)  # non-negative: [0, R], R >= 1.5 * 2.3
    assert histogram.choose_range(-0.3, 0.2) == (-0.5, 0.5)  # signed: symmetric
    assert histogram.choose_range(-70.0, 1.0) == (-200.0, 200.0)
    assert histogram.choose_range(0.0, 0.0) == (0.0, 1.0)  # all zeros
    assert histogram.choose_range(NAN, NAN) == (-1.0, 1.0)  # nothing finite
    assert histogram.choose_range(0.0, 0.05) == (0.0, 0.08)
    assert histogram.nice_ceil(1.0) == 1.0 and histogram.nice_ceil(1.01) == 2.0
    assert histogram.nice_ceil(4.1) == 5.0 and histogram.nice_ceil(5.5) == 8.0
    with pytest.raises(ValueError, match="histogram_bins"):
        histogram.HistogramReducer(0)


class Scale(nn.Module):
    """Multiplies by a settable factor: the test grows a layer's outputs between steps."""

    def __init__(self) -> None:
        super().__init__()
        self.factor = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def histograms_of(run_dir: Path, layer: str) -> dict[int, np.ndarray]:
    return layer_records(run_dir, metadata.RecordKind.ACTIVATION_HISTOGRAM).get(layer, {})


def test_edges_fixed_at_the_first_recorded_step(tmp_path: Path) -> None:
    model = nn.Sequential(Scale(), nn.ReLU())
    inputs = [torch.tensor([[-1.0, 0.25, 1.5, 2.0]]), torch.tensor([[0.5, 1.0, NAN, INF]])]
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1, layers=["0", "1"], histogram_bins=4, histogram_every=1, grads=False)
        for step, factor in enumerate([1.0, 10.0]):
            model[0].factor = factor
            model(inputs[step])
    first, second = histograms_of(tmp_path, "0"), histograms_of(tmp_path, "1")
    # layer "0": signed first output, max |x| = 2 -> R >= 3 -> [-4, 4], bins of width 2; step 1 has
    # 10 and 5 (both above 4), NaN and Inf (not counted)
    np.testing.assert_array_equal(first[0], [-4, 4, 0, 0, 0, 1, 2, 1])
    np.testing.assert_array_equal(first[1], [-4, 4, 0, 2, 0, 0, 0, 0])
    # layer "1" (ReLU): non-negative -> [0, 4], bins of width 1
    np.testing.assert_array_equal(second[0], [0, 4, 0, 0, 2, 1, 1, 0])
    np.testing.assert_array_equal(second[1], [0, 4, 0, 2, 0, 0, 0, 0])


def test_histograms_off_and_bins_option(tmp_path: Path) -> None:
    model = tiny_cnn()
    with InsightWriter(str(tmp_path / "off")) as writer:
        writer.watch(model, every=1, histograms=False, units=False, model_table=False)
        model(torch.randn(2, 3, 8, 8))
    tags = {v.tag for e in read_events(tmp_path / "off") for v in e.summary.value}
    assert tags and all("activation_stats" in t or "gradient_stats" in t for t in tags)
    with InsightWriter(str(tmp_path / "on")) as writer:
        writer.watch(model, every=1, histogram_bins=16)
        model(torch.randn(2, 3, 8, 8))
    assert histograms_of(tmp_path / "on", "0")[0].shape == (4 + 16,)
    with pytest.raises(TypeError, match="histograms"):
        InsightWriter(str(tmp_path / "bad")).watch(model, histograms="yes")  # type: ignore[arg-type]


# ---- dead and saturated units ----


def test_dead_fraction_of_relu_channels() -> None:
    x = torch.ones(2, 4, 3, 3)
    x[:, 1] = 0.0  # never fired
    x[:, 2] = -1.0
    x[1, 3, 2, 2] = 0.0  # one element is zero: still alive
    got = units.unit_stats(x, 1, None)
    assert got[0] == 0.5 and math.isnan(got[1]) and got[2] == 4
    assert math.isnan(units.unit_stats(x, 1, None, rectifier=False)[0])  # not a rectifier: undefined


def test_saturated_fraction_of_bounded_modules() -> None:
    sig = torch.full((100, 5), 0.5)
    sig[:, 0] = 0.995  # at the upper bound
    sig[:, 1] = 0.001  # at the lower bound
    sig[:, 2] = 0.999
    sig[0, 2] = 0.5  # 99 % at the bound: saturated
    sig[:, 3] = 0.999
    sig[:2, 3] = 0.5  # 98 %: not saturated
    bounds = units.output_bounds(nn.Sigmoid())
    assert bounds == (0.0, 1.0)
    got = units.unit_stats(sig, 1, bounds, rectifier=False)
    assert got[1] == pytest.approx(3 / 5) and math.isnan(got[0])
    assert units.output_bounds(nn.ReLU6()) == (0.0, 6.0)
    assert units.output_bounds(nn.Tanh()) == (-1.0, 1.0)
    assert units.output_bounds(nn.Hardtanh(-2, 3)) == (-2.0, 3.0)
    assert units.output_bounds(nn.ReLU()) is None and units.output_bounds(nn.Linear(2, 2)) is None
    tanh = torch.tensor([[-0.99, 0.0], [-1.0, 0.5]])  # tolerance: 1 % of the range (0.02)
    assert units.unit_stats(tanh, 1, (-1.0, 1.0))[1] == 0.5


def test_channel_dimension() -> None:
    assert layout.channel_dim([nn.Conv2d(1, 1, 1)], (2, 1, 3, 3)) == 1
    assert layout.channel_dim([nn.Linear(2, 2)], (2, 5, 2)) == 2  # (N, L, C) tokens
    assert layout.channel_dim([nn.Linear(2, 2)], (2, 2)) == 1
    assert layout.channel_dim([], (4,)) is None
    assert torch.isnan(units.unit_stats(torch.ones(3), None, None)).all()


def test_unit_records_through_watch(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3), nn.Sigmoid())
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, 1.0]))  # units 1 and 3 dead
        model[2].weight.zero_()
        model[2].bias.copy_(torch.tensor([20.0, -20.0, 0.0]))  # two of three sigmoids saturated
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1)
        model(torch.randn(5, 4))
    client = make_client(tmp_path.parent)
    body = get_json(client, f"/units?run={tmp_path.name}")
    by_name = {layer["name"]: i for i, layer in enumerate(body["layers"])}
    assert body["steps"] == [0]
    assert body["dead"][by_name["1"]] == [pytest.approx(2 / 6)]
    assert body["saturated"][by_name["3"]] == [pytest.approx(2 / 3)]
    assert body["dead"][by_name["0"]] == [None] and body["saturated"][by_name["1"]] == [None]
    assert body["layers"][by_name["3"]]["bounded"] is True and body["channels"][by_name["1"]] == 6


# ---- model table ----


def expected_shapes(model: nn.Sequential, x: torch.Tensor) -> list[list[int]]:
    shapes = []
    for module in model:
        x = module(x)
        shapes.append(list(x.shape))
    return shapes


def test_model_table_of_tiny_cnn(tmp_path: Path) -> None:
    model = tiny_cnn()
    baseline = hook_count(model)
    x = torch.randn(8, 3, 8, 8)
    with InsightWriter(str(tmp_path)) as writer:
        handle = writer.watch(model, every=2)
        watching = hook_count(model)
        model(x)
        assert hook_count(model) == watching  # the table's hooks are gone right after the forward
        model(x)
    assert hook_count(model) == baseline
    blobs = [
        tensor_util.make_ndarray(v.tensor)
        for e in read_events(tmp_path)
        for v in e.summary.value
        if v.tag == metadata.tag_for(metadata.RecordKind.MODEL_TABLE)
    ]
    assert len(blobs) == 1 and blobs[0].shape == (1,)  # written once, a rank-1 blob
    document = json.loads(blobs[0][0])
    rows = document["rows"]
    assert [r["name"] for r in rows] == [n for n, _ in model.named_modules()]
    assert rows[0]["params"] == sum(p.numel() for p in model.parameters()) == document["params"]
    for row, (_, module) in zip(rows, model.named_modules()):
        assert row["params"] == sum(p.numel() for p in module.parameters())
        assert row["ownParams"] == sum(p.numel() for p in module.parameters(recurse=False))
        assert row["trainableParams"] == row["params"] and row["calls"] == 1
    assert [r["output"] for r in rows[1:]] == expected_shapes(model, x)
    assert rows[0]["output"] == [8, 3] and rows[0]["depth"] == 0 and rows[1]["depth"] == 1
    assert [r["name"] for r in rows if r["watched"]] == handle.layers


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.frozen = nn.Linear(4, 2)
        self.frozen.requires_grad_(False)
        self.unused = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        h = self.body(x)
        h = self.body(h)  # called twice
        return {"logits": self.frozen(h), "pair": (h, None), "tag": "text"}


def test_model_table_nested_outputs_and_frozen_params(tmp_path: Path) -> None:
    model = TwoHeads()
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1, layers=["body.0"])
        model(torch.randn(3, 4))
    client = make_client(tmp_path.parent)
    body = get_json(client, f"/model?run={tmp_path.name}")
    rows = {r["name"]: r for r in body["rows"]}
    assert body["modelType"] == "TwoHeads" and body["step"] == 0
    assert rows[""]["output"] == {"logits": [3, 2], "pair": [[3, 4], None], "tag": "str"}
    assert rows["body"]["calls"] == 2 and rows["body.0"]["depth"] == 2
    assert rows["frozen"]["trainableParams"] == 0 and rows["frozen"]["params"] == 10
    assert rows[""]["trainableParams"] == body["trainableParams"] == 20 + 20
    assert rows["unused"]["output"] is None and rows["unused"]["calls"] == 0
    assert [n for n, r in rows.items() if r["watched"]] == ["body.0"]


def test_describe_output_cuts_long_containers() -> None:
    described = describe_output(tuple(torch.zeros(i + 1) for i in range(10)))
    assert described[:2] == [[1], [2]] and described[-1] == "… 2 more" and len(described) == 9


# ---- routes ----


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("layerview")
    model = tiny_cnn()
    gen = torch.Generator().manual_seed(0)
    with InsightWriter(str(root / "run<b>")) as writer:
        writer.watch(model, every=2, histogram_every=2)
        for _ in range(5):
            model(torch.randn(4, 3, 8, 8, generator=gen))
    with InsightWriter(str(root / "plain")) as writer:
        writer.watch(model, every=2, histograms=False, units=False, model_table=False)
        model(torch.randn(4, 3, 8, 8, generator=gen))
    return make_client(root)


def test_histograms_route(client) -> None:
    body = get_json(client, "/histograms?run=run%3Cb%3E&layer=2")
    assert body["bins"] == 32 and body["steps"] == [0, 2, 4] and body["moduleType"] == "ReLU"
    assert body["low"] == [0.0] * 3 and len(set(body["high"])) == 1
    for counts, under, over in zip(body["counts"], body["underflow"], body["overflow"]):
        assert len(counts) == 32 and sum(counts) + under + over == 4 * 4 * 8 * 8


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/histograms?run=run%3Cb%3E", 400, "missing query parameter 'layer'"),
        ("/histograms?run=run%3Cb%3E&layer=nope", 404, "has no layer 'nope'"),
        ("/histograms?run=zzz&layer=2", 404, "no Insight data"),
        ("/units", 400, "missing query parameter 'run'"),
        ("/units?run=zzz", 404, "no Insight data"),
        ("/model?run=", 400, "is empty"),
        ("/model?run=zzz", 404, "no Insight data"),
        ("/model?run=a&run=b", 400, "given 2 times"),
    ],
)
def test_route_errors(client, url: str, status: int, message: str) -> None:
    body = get_json(client, url, status)
    assert body["error"]["code"] == status and message in body["error"]["message"]


def test_units_route_without_records_is_empty(client) -> None:
    body = get_json(client, "/units?run=plain")
    assert body["layers"] == [] and body["steps"] == []
    full = get_json(client, "/units?run=run%3Cb%3E")
    assert full["steps"] == [0, 2, 4] and len(full["dead"]) == len(full["layers"]) == 6


def test_runs_without_tables_or_histograms_answer_empty(client) -> None:
    body = get_json(client, "/model?run=plain")
    assert body == {
        "run": "plain", "step": None, "modelType": None, "params": None, "trainableParams": None, "rows": []
    }  # fmt: skip
    hist = get_json(client, "/histograms?run=plain&layer=2")
    assert hist["bins"] == 0 and hist["steps"] == [] and hist["counts"] == [] and hist["moduleType"] == "ReLU"


def test_model_route(client) -> None:
    body = get_json(client, "/model?run=run%3Cb%3E")
    assert body["run"] == "run<b>" and body["rows"][0]["type"] == "Sequential"
    assert client.get(PREFIX + "/model?run=run%3Cb%3E").headers["Content-Type"].startswith("application/json")
