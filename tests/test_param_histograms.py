"""Weight and gradient histograms (PARAM_HISTOGRAM, GRAD_HISTOGRAM): counts against numpy.histogram of the
parameters and gradients at the recorded steps, per-step edges over a change of scale, options, no effect
on training, and the /param_histograms route."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_training_unchanged, read_events, state_copy
from tensorboard.util import tensor_util
from test_plugin import get_json, make_client
from torch import nn

from tb_plugin_insight import InsightWriter, metadata
from tb_plugin_insight.capture import histogram as histogram_mod
from tb_plugin_insight.options import Histograms

BINS = 16
KINDS = {"weights": metadata.RecordKind.PARAM_HISTOGRAM, "grads": metadata.RecordKind.GRAD_HISTOGRAM}


def mlp() -> nn.Sequential:
    torch.manual_seed(5)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def stored(run_dir: Path, kind: int) -> dict[str, dict[int, np.ndarray]]:
    """{parameter: {step: row}} of a parameter-histogram table kind, as written."""
    prefix = metadata.tag_for(kind)
    names: dict[str, list[str]] = {}
    out: dict[str, dict[int, np.ndarray]] = {}
    for event in read_events(run_dir):
        for value in event.summary.value:
            if not value.tag.startswith(prefix):
                continue
            if value.metadata.plugin_data.content:
                data = metadata.PluginData.FromString(value.metadata.plugin_data.content)
                assert data.kind == kind and data.bins > 0
                names[value.tag] = [entry.name for entry in data.layers]
            for name, row in zip(names[value.tag], tensor_util.make_ndarray(value.tensor)):
                out.setdefault(name, {})[event.step] = row
    return out


def numpy_histogram(x: np.ndarray, bins: int) -> tuple[float, np.ndarray]:
    """The documented edge rule, computed independently: R = 2^ceil(log2 max|x|), numpy's binning."""
    finite = x[np.isfinite(x)].astype(np.float64)
    largest = float(np.abs(finite).max()) if finite.size else 0.0
    r = 2.0 ** math.ceil(math.log2(largest)) if largest > 0 else 1.0
    counts, _ = np.histogram(finite, bins=bins, range=(-r, r))
    return r, counts


def train(
    model: nn.Module, steps: int, writer: InsightWriter | None, scale_at: dict[int, float] | None = None
):
    """SGD on a fixed random regression; yields nothing, returns {step: {param: (w, g)}} seen by numpy."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(1)
    seen: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for step in range(steps):
        x, y = torch.randn(10, 6, generator=gen), torch.randn(10, 3, generator=gen)
        before = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
        loss = nn.functional.mse_loss(model(x), y) * (scale_at or {}).get(step, 1.0)
        opt.zero_grad()
        loss.backward()
        seen[step] = {n: (before[n], p.grad.numpy().copy()) for n, p in model.named_parameters()}
        opt.step()
    return seen


def test_counts_equal_numpy_histograms_at_the_histogram_steps(tmp_path: Path) -> None:
    model = mlp()
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=2, histogram_every=4, histogram_bins=BINS)
        seen = train(model, 10, writer)
    for key, kind in KINDS.items():
        got = stored(tmp_path, kind)
        assert sorted(got) == ["0.bias", "0.weight", "2.bias", "2.weight"]  # weight and bias apart
        for name, by_step in got.items():
            assert sorted(by_step) == [0, 4, 8]
            for step, row in by_step.items():
                w, g = seen[step][name]
                r, counts = numpy_histogram(w if key == "weights" else g, BINS)
                assert row.shape == (4 + BINS,)
                assert row[0] == -r and row[1] == r and row[2] == 0 and row[3] == 0
                np.testing.assert_array_equal(row[4:], counts, err_msg=f"{key} {name} step {step}")


def test_edges_follow_the_gradient_scale_over_a_thousandfold_shrink(tmp_path: Path) -> None:
    """The loss scaled by 1e-3 at step 4: the gradient edges shrink with it (about 1,000x) and the counts
    still spread over the bins instead of collapsing into the central ones."""
    model = mlp()
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1, histogram_every=4, histogram_bins=BINS)
        seen = train(model, 5, writer, scale_at={4: 1e-3})
    grads = stored(tmp_path, metadata.RecordKind.GRAD_HISTOGRAM)["0.weight"]
    ratio = grads[0][1] / grads[4][1]
    assert 256 <= ratio <= 4096
    for step in (0, 4):
        _, counts = numpy_histogram(seen[step]["0.weight"][1], BINS)
        np.testing.assert_array_equal(grads[step][4:], counts)
        assert np.count_nonzero(grads[step][4:]) >= BINS // 4


def test_scaling_by_a_power_of_two_scales_the_edges_only() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3000, generator=gen)
    a = histogram_mod.symmetric_histogram(x, 32, histogram_mod.finite_absmax(x), torch.float64)
    b = histogram_mod.symmetric_histogram(
        x * 2**-10, 32, histogram_mod.finite_absmax(x * 2**-10), torch.float64
    )
    assert float(a[1]) == float(b[1]) * 2**10
    torch.testing.assert_close(a[4:], b[4:], rtol=0, atol=0)


def test_nan_inf_left_out_and_large_tensors_sampled() -> None:
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.3, 0.25, 0.5])
    h = histogram_mod.symmetric_histogram(x, 4, histogram_mod.finite_absmax(x), torch.float64)
    assert h[:4].tolist() == [-0.5, 0.5, 0.0, 0.0]
    assert h[4:].tolist() == [1.0, 0.0, 0.0, 2.0]  # -0.3 | 0.25 and 0.5 (the last bin is closed)
    empty = torch.full((5,), float("nan"))
    e = histogram_mod.symmetric_histogram(empty, 4, histogram_mod.finite_absmax(empty), torch.float64)
    assert e[:2].tolist() == [-1.0, 1.0] and float(e[4:].sum()) == 0
    big = torch.randn(300_000, generator=torch.Generator().manual_seed(2))
    s = histogram_mod.symmetric_histogram(big, 32, histogram_mod.finite_absmax(big), torch.float64)
    assert float(s[4:].sum()) == pytest.approx(300_000, rel=1e-3)
    r, counts = numpy_histogram(big.numpy(), 32)
    assert float(s[1]) == r
    np.testing.assert_allclose(s[4:].numpy(), counts, rtol=0.1, atol=200)


def test_off_with_histogram_params_false_or_without_gradients(tmp_path: Path) -> None:
    for i, options in enumerate(
        [{"histogram_params": False}, {"grads": False}, {"histograms": Histograms(params=False)}]
    ):
        model = mlp()
        with InsightWriter(str(tmp_path / str(i))) as writer:
            writer.watch(model, every=1, **options)
            train(model, 2, writer)
        assert stored(tmp_path / str(i), metadata.RecordKind.GRAD_HISTOGRAM) == {}
        assert stored(tmp_path / str(i), metadata.RecordKind.PARAM_HISTOGRAM) == {}
    with pytest.raises(TypeError, match="histogram_params"):
        InsightWriter(str(tmp_path / "bad")).watch(mlp(), histogram_params="yes")


def test_training_is_bit_identical(tmp_path: Path) -> None:
    def final_state(record: bool) -> dict[str, torch.Tensor]:
        model = mlp()
        if not record:
            train(model, 6, None)
            return state_copy(model)
        with InsightWriter(str(tmp_path / "run")) as writer:
            writer.watch(model, every=1, histogram_every=1)
            train(model, 6, writer)
        assert len(stored(tmp_path / "run", metadata.RecordKind.GRAD_HISTOGRAM)["2.weight"]) == 6
        return state_copy(model)

    assert_training_unchanged(final_state)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("phist")
    model = mlp()
    with InsightWriter(str(root / "run")) as writer:
        writer.watch(model, every=1, histogram_every=2, histogram_bins=BINS)
        train(model, 5, writer)
    return root


def test_route_serves_each_parameter_of_a_layer(logdir: Path) -> None:
    client = make_client(logdir)
    body = get_json(client, "/param_histograms?run=run&layer=2")
    assert body["layer"] == "2" and body["moduleType"] == "Linear" and body["bins"] == BINS
    assert [p["name"] for p in body["params"]] == ["2.weight", "2.bias"]
    assert body["params"][0]["shape"] == [3, 8]
    rows = stored(logdir / "run", metadata.RecordKind.GRAD_HISTOGRAM)["2.weight"]
    grads = body["params"][0]["grads"]
    assert grads["steps"] == [0, 2, 4]
    for i, step in enumerate(grads["steps"]):
        assert grads["low"][i] == pytest.approx(float(rows[step][0]))
        assert grads["counts"][i] == rows[step][4:].astype(int).tolist()
    assert body["params"][1]["weights"]["steps"] == [0, 2, 4]
    assert get_json(client, "/param_histograms?run=run&layer=1")["params"] == []  # ReLU: no parameters


def test_route_bad_params(logdir: Path) -> None:
    client = make_client(logdir)
    assert "error" in get_json(client, "/param_histograms?layer=2", status=400)
    assert "error" in get_json(client, "/param_histograms?run=run", status=400)
    assert "error" in get_json(client, "/param_histograms?run=nope&layer=2", status=404)
    assert "error" in get_json(client, "/param_histograms?run=run&layer=nope", status=404)
    assert "error" in get_json(client, "/param_histograms?run=run&layer=2.weight", status=404)


def test_grad_scaler_edges_are_unscaled_and_accumulated_gradients_are_binned(tmp_path: Path) -> None:
    """A GradScaler's scaled backward (2^10) and two micro-batches per optimizer step: the stored gradient
    histogram is that of the unscaled gradient summed over the micro-batches, as the optimizer sees it."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    gen = torch.Generator().manual_seed(4)
    expected: dict[int, np.ndarray] = {}
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(
            model, every=2, histogram_every=2, histogram_bins=BINS, grad_accumulation=2, grad_scaler=scaler
        )
        for step in range(4):
            x, y = torch.randn(10, 6, generator=gen), torch.randn(10, 3, generator=gen)
            scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
            if step % 2 == 1:
                expected[step - 1] = model[0].weight.grad.numpy() / scaler.get_scale()
                scaler.step(opt)
                scaler.update()
                opt.zero_grad()
    got = stored(tmp_path, metadata.RecordKind.GRAD_HISTOGRAM)["0.weight"]
    assert sorted(got) == [0, 2]
    for step, row in got.items():
        r, counts = numpy_histogram(expected[step], BINS)
        assert row[1] == r
        np.testing.assert_array_equal(row[4:], counts)
