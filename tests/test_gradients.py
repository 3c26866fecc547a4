"""Gradient flow recorded from the user's backward: values against NumPy, steps, accumulation, clipping,
AMP scaling, NaN/Inf, no-grad steps, hooks' lifetime, no effect on training, and the /gradients route."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    assert_training_unchanged,
    edit_gradient,
    hook_count,
    layer_records,
    random_batch,
    state_copy,
)
from test_plugin import get_json, make_client
from torch import nn

from conftest import tiny_cnn, write_run
from tb_plugin_insight import InsightWriter, metadata

F = {name: i for i, name in enumerate(metadata.GRAD_FIELDS)}
LR = 0.1


def records(
    run_dir: Path, kind: int = metadata.RecordKind.GRADIENT_STATS
) -> dict[str, dict[int, np.ndarray]]:
    """{layer: {step: stored vector}} of one record kind (v1 tags or v2 layer tables)."""
    return layer_records(run_dir, kind)


def grad_hook_count(model: nn.Module) -> int:
    """Module hooks plus hooks on parameters (post-accumulate and tensor hooks)."""
    total = hook_count(model)
    for p in model.parameters():
        total += len(getattr(p, "_post_accumulate_grad_hooks", None) or {})
        total += len(getattr(p, "_backward_hooks", None) or {})
    return total


def mlp() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()


def stats(g: np.ndarray) -> tuple[float, float, float]:
    return float(np.linalg.norm(g)), float(np.abs(g).mean()), float(np.abs(g).max())


def test_statistics_equal_a_numpy_backward_at_the_recorded_steps(tmp_path: Path) -> None:
    """Linear-ReLU-Linear with MSE, differentiated by hand in NumPy; plain SGD, so Δw = -lr g."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(0)
    expected: dict[int, dict[str, list[float]]] = {}
    with InsightWriter(str(tmp_path)) as writer:
        handle = writer.watch(model, every=3)
        assert handle.grads
        for step in range(8):
            x = torch.randn(6, 4, generator=gen, dtype=torch.float64)
            y = torch.randn(6, 3, generator=gen, dtype=torch.float64)
            w1, b1, w2, b2 = (p.detach().numpy().copy() for p in model.parameters())
            if step % 3 == 0:
                expected[step] = _numpy_backward(x.numpy(), y.numpy(), w1, b1, w2, b2)
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    got = records(tmp_path)
    assert set(got) == {"0", "1", "2"}
    for layer in got:
        assert sorted(got[layer]) == [0, 3, 6]  # the steps of the activation records
    assert sorted(records(tmp_path, metadata.RecordKind.ACTIVATION_STATS)["0"]) == [0, 3, 6]
    for step, layers in expected.items():
        for layer, values in layers.items():
            row = got[layer][step]
            for name, value in zip(_NUMPY_FIELDS, values):
                np.testing.assert_allclose(row[F[name]], value, rtol=1e-9, err_msg=f"{layer} {name} @ {step}")
        relu = got["1"][step]
        assert np.isnan(relu[[F["gradNorm"], F["gradMeanAbs"], F["weightNorm"], F["updateRatio"]]]).all()
        assert relu[F["gradNumel"]] == 0 and relu[F["actGradNumel"]] == 6 * 5


_NUMPY_FIELDS = (
    "gradNorm",
    "gradMeanAbs",
    "gradMaxAbs",
    "gradNumel",
    "weightNorm",
    "updateRatio",
    "actGradNorm",
    "actGradNumel",
)


def _numpy_backward(x, y, w1, b1, w2, b2) -> dict[str, list[float]]:
    h = x @ w1.T + b1
    a = np.maximum(h, 0)
    out = a @ w2.T + b2
    d_out = 2 * (out - y) / out.size
    d_a = d_out @ w2
    d_h = d_a * (h > 0)
    grads1 = np.concatenate([(d_h.T @ x).ravel(), d_h.sum(0)])
    grads2 = np.concatenate([(d_out.T @ a).ravel(), d_out.sum(0)])
    weights1 = np.concatenate([w1.ravel(), b1])
    weights2 = np.concatenate([w2.ravel(), b2])

    def params(g, w):
        # plain SGD: ||Δw|| / ||w|| = lr ||g|| / ||w||
        return [*stats(g), g.size, np.linalg.norm(w), LR * np.linalg.norm(g) / np.linalg.norm(w)]

    return {
        "0": [*params(grads1, weights1), np.linalg.norm(d_h), d_h.size],
        "2": [*params(grads2, weights2), np.linalg.norm(d_out), d_out.size],
    }


def test_update_ratio_with_momentum_is_the_applied_update(tmp_path: Path) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    ratios = {}
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=2)
        for step in range(5):
            loss = model(torch.randn(3, 4, dtype=torch.float64)).square().mean()
            opt.zero_grad()
            loss.backward()
            before = torch.cat([p.detach().flatten().clone() for p in model[0].parameters()])
            opt.step()
            after = torch.cat([p.detach().flatten() for p in model[0].parameters()])
            ratios[step] = float((after - before).norm() / before.norm())
    got = records(tmp_path)["0"]
    for step in (0, 2, 4):  # step 4's update is measured at close()
        np.testing.assert_allclose(got[step][F["updateRatio"]], ratios[step], rtol=1e-9)


def test_update_ratio_keeps_small_parameters_whole_and_releases_them(tmp_path: Path) -> None:
    """The mlp's parameters are below the sample size: copied whole (exact ratios above), positions none."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1)
        recorder = writer._recorders[id(model)].gradients
        assert recorder is not None and recorder._sample is not None
        model(torch.randn(3, 4, dtype=torch.float64)).square().mean().backward()
        kept = {j: r.before for j, r in recorder._pending.params.items()}
        assert {j: t.numel() for j, t in kept.items()} == {
            j: p.numel() for j, p in enumerate(model.parameters())
        }
        assert recorder._sample.kept_bytes() == 0  # no positions: whole copies
        opt.step()
        writer.unwatch(model)
        assert recorder._pending is None


def poison(grad: torch.Tensor) -> torch.Tensor:
    """The gradient with a NaN and an Inf in it (a broken op, say)."""
    grad = grad.clone()
    grad[0, 0] = float("nan")
    grad[1, 1] = float("inf")
    return grad


class Poisoned(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(4, 5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(edit_gradient(self.fc1(x), poison))


def test_nan_and_inf_gradients_are_counted_not_spread(tmp_path: Path) -> None:
    model = Poisoned()
    x = torch.randn(4, 4)
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1, update_ratio=False)
        model(x).sum().backward()
        grads = [p.grad.numpy().copy() for p in model.fc1.parameters()]
    row = records(tmp_path)["fc1"][0]
    flat = np.concatenate([g.ravel() for g in grads])
    finite = flat[np.isfinite(flat)]
    assert row[F["gradNanCount"]] == np.isnan(flat).sum() > 0
    assert row[F["gradInfCount"]] == np.isinf(flat).sum() > 0
    np.testing.assert_allclose(row[F["gradNorm"]], np.linalg.norm(finite), rtol=1e-6)
    np.testing.assert_allclose(row[F["gradMeanAbs"]], np.abs(finite).mean(), rtol=1e-6)
    np.testing.assert_allclose(row[F["gradMaxAbs"]], np.abs(finite).max(), rtol=1e-6)
    assert (row[F["actGradNanCount"]], row[F["actGradInfCount"]]) == (1, 1)  # into fc1's output
    assert row[F["actGradNumel"]] == 4 * 5 and np.isfinite(row[F["actGradNorm"]])
    clean = records(tmp_path)["fc2"][0]  # downstream of the poison: clean
    assert clean[F["gradNanCount"]] == clean[F["gradInfCount"]] == 0
    assert np.isnan(row[F["updateRatio"]])  # update_ratio=False


def test_grad_accumulation_records_the_accumulated_gradient_once_per_optimizer_step(tmp_path: Path) -> None:
    k = 4
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(1)
    accumulated, first_micro = {}, {}
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=k, grad_accumulation=k)
        for micro in range(3 * k):
            x = torch.randn(2, 4, generator=gen, dtype=torch.float64)
            out = model(x)
            out.retain_grad()
            (out.square().mean() / k).backward()
            if micro % k == 0:
                first_micro[micro] = out.grad.norm().item()
            if micro % k == k - 1:
                accumulated[micro - k + 1] = torch.cat([p.grad.flatten() for p in model[2].parameters()])
                opt.step()
                opt.zero_grad()
    got = records(tmp_path)["2"]
    assert sorted(got) == [0, 4, 8]  # labelled with the recorded step, once per optimizer step
    for step, grad in accumulated.items():
        np.testing.assert_allclose(got[step][F["gradNorm"]], grad.norm().item(), rtol=1e-9)
        np.testing.assert_allclose(got[step][F["actGradNorm"]], first_micro[step], rtol=1e-9)


def test_grad_accumulation_with_every_step_recorded(tmp_path: Path) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1, grad_accumulation=2)
        for micro in range(6):
            model(torch.randn(2, 4, dtype=torch.float64)).sum().backward()
            if micro % 2 == 1:
                opt.step()
                opt.zero_grad()
    assert sorted(records(tmp_path)["0"]) == [0, 2, 4]
    assert sorted(records(tmp_path, metadata.RecordKind.ACTIVATION_STATS)["0"]) == list(range(6))


def test_clipping_records_the_gradient_before_clipping_and_the_clipped_update(tmp_path: Path) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1)
        loss = model(torch.randn(5, 4, dtype=torch.float64)).square().sum() * 100
        loss.backward()
        total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.01).item()
        clipped = torch.cat([p.grad.flatten() for p in model[0].parameters()]).norm().item()
        w = torch.cat([p.detach().flatten() for p in model[0].parameters()]).norm().item()
        opt.step()
    got = records(tmp_path)
    norms = [got[layer][0][F["gradNorm"]] for layer in ("0", "2")]
    np.testing.assert_allclose(np.sqrt(np.sum(np.square(norms))), total, rtol=1e-9)  # pre-clip
    assert total > 1
    np.testing.assert_allclose(got["0"][0][F["updateRatio"]], LR * clipped / w, rtol=1e-9)  # post-clip


def test_grad_scaler_statistics_are_unscaled(tmp_path: Path) -> None:
    """AMP on the CPU: bfloat16 autocast and torch's GradScaler; the record shows unscaled gradients."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    unscaled = {}
    with InsightWriter(str(tmp_path / "scaled")) as writer:
        writer.watch(model, every=1, grad_scaler=scaler)
        for step in range(3):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(torch.randn(8, 8)).float().square().mean()
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            unscaled[step] = torch.cat([p.grad.flatten() for p in model[0].parameters()]).norm().item()
            scaler.step(opt)
            scaler.update()
    got = records(tmp_path / "scaled")["0"]
    for step, norm in unscaled.items():
        np.testing.assert_allclose(got[step][F["gradNorm"]], norm, rtol=1e-5)
        assert np.isfinite(got[step][F["actGradNorm"]])  # bfloat16 output gradients


def test_an_overflowing_amp_step_counts_inf_and_has_no_update(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**120)  # the scaled loss overflows float32
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1, grad_scaler=scaler)
        loss = model(torch.randn(8, 8)).square().mean() * 1e6
        scaler.scale(loss).backward()
        scaler.step(opt)  # skipped: the gradients are not finite
        scaler.update()
    row = records(tmp_path)["2"][0]
    assert row[F["gradInfCount"]] + row[F["gradNanCount"]] > 0
    assert row[F["updateRatio"]] == 0.0


class FakeScaler:
    """Any object with get_scale(): the user scales the loss by hand."""

    def get_scale(self) -> float:
        return 1024.0


def test_fake_scaler_and_no_scaler(tmp_path: Path) -> None:
    def run(name: str, scaler: object) -> float:
        model = mlp()
        with InsightWriter(str(tmp_path / name)) as writer:
            writer.watch(model, every=1, grad_scaler=scaler)
            (model(torch.ones(2, 4, dtype=torch.float64)).sum() * 1024.0).backward()
        return records(tmp_path / name)["2"][0][F["gradNorm"]]

    plain = mlp()
    plain(torch.ones(2, 4, dtype=torch.float64)).sum().backward()
    true_norm = torch.cat([p.grad.flatten() for p in plain[2].parameters()]).norm().item()
    np.testing.assert_allclose(run("fake", FakeScaler()), true_norm, rtol=1e-12)
    np.testing.assert_allclose(run("none", None), 1024 * true_norm, rtol=1e-12)  # recorded as scaled


def test_no_grad_and_inference_mode_steps_are_skipped_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = tiny_cnn()
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1)
        with torch.no_grad():
            model(torch.randn(2, 3, 8, 8))
        with torch.inference_mode():
            model(torch.randn(2, 3, 8, 8))
        model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert sorted(records(tmp_path)["0"]) == [2]
    assert sorted(records(tmp_path, metadata.RecordKind.ACTIVATION_STATS)["0"]) == [0, 1, 2]


def test_grads_false_records_no_gradients(tmp_path: Path) -> None:
    model = tiny_cnn()
    with InsightWriter(str(tmp_path)) as writer:
        handle = writer.watch(model, every=1, grads=False)
        assert not handle.grads
        model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert records(tmp_path) == {}


def test_watch_validates_gradient_options(tmp_path: Path) -> None:
    model = mlp()
    with InsightWriter(str(tmp_path)) as writer:
        with pytest.raises(ValueError, match="grad_accumulation"):
            writer.watch(model, grad_accumulation=0)
        with pytest.raises(TypeError, match="get_scale"):
            writer.watch(model, grad_scaler=object())
        with pytest.raises(TypeError, match="grads must be"):
            writer.watch(model, grads="yes")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="update_ratio"):
            writer.watch(model, update_ratio=1)  # type: ignore[arg-type]


def test_hooks_removed_by_close_unwatch_and_after_exception(tmp_path: Path) -> None:
    model = tiny_cnn()
    baseline = grad_hook_count(model)
    x = torch.randn(2, 3, 8, 8)

    writer = InsightWriter(str(tmp_path / "a"))
    writer.watch(model, every=1)
    out = model(x)  # a recorded forward: parameter hooks armed until its update is written
    assert grad_hook_count(model) > baseline
    writer.unwatch(model)
    assert grad_hook_count(model) == baseline
    out.sum().backward()  # the graph's output-gradient hooks outlive the watch harmlessly
    writer.close()

    with pytest.raises(RuntimeError, match="boom"):
        with InsightWriter(str(tmp_path / "b")) as writer2:
            writer2.watch(model, every=1)
            loss = model(x).sum()
            raise RuntimeError("boom")
    assert grad_hook_count(model) == baseline

    writer3 = InsightWriter(str(tmp_path / "c"))
    writer3.watch(model, every=1)
    model(x).sum().backward()
    writer3.close()  # writes the finished record, then drops the hooks
    assert grad_hook_count(model) == baseline
    assert sorted(records(tmp_path / "c")["0"]) == [0]
    del loss


def test_recording_gradients_never_changes_training(tmp_path: Path) -> None:
    """BatchNorm, Dropout, momentum SGD, clipping; gradient hooks on every step."""

    def final_state(watch: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(1234)
        model = nn.Sequential(tiny_cnn(seed=7), nn.Dropout(0.3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        gen = torch.Generator().manual_seed(0)
        writer = InsightWriter(str(tmp_path / str(watch)))
        if watch:
            writer.watch(model, every=1, grad_accumulation=1)
        grads_seen = []
        for _ in range(10):
            x, y = random_batch(gen)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            grads_seen.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        writer.close()
        state = state_copy(model)
        state["grads"] = torch.stack(grads_seen)
        return state

    assert_training_unchanged(final_state)
    assert records(tmp_path / "True")


# --- the /gradients route ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grads")
    write_run(root / "alpha", steps=12, every=4)
    model = tiny_cnn()
    with InsightWriter(str(root / "no_grads")) as writer:
        writer.watch(model, every=1, grads=False)
        model(torch.randn(2, 3, 8, 8)).sum().backward()
    return root


def test_gradients_route(logdir: Path) -> None:
    client = make_client(logdir)
    body = get_json(client, "/gradients?run=alpha")
    assert body["fields"] == list(metadata.GRAD_FIELDS)
    assert [layer["name"] for layer in body["layers"]] == ["0", "1", "2", "3", "4", "6"]
    assert body["layers"][0]["moduleType"] == "Conv2d" and body["layers"][0]["shape"] == [8, 4, 8, 8]
    assert body["steps"] == [0, 4, 8]
    stored = records(logdir / "alpha")
    for i, layer in enumerate(body["layers"]):
        for field in metadata.GRAD_FIELDS:
            for j, step in enumerate(body["steps"]):
                value = stored[layer["name"]][step][F[field]]
                shown = body["values"][field][i][j]
                assert shown is None if not np.isfinite(value) else shown == pytest.approx(value, rel=1e-12)
    relu = body["layers"].index(next(la for la in body["layers"] if la["name"] == "2"))
    assert body["values"]["gradNorm"][relu] == [None, None, None]  # a ReLU has no parameters
    some = get_json(client, "/gradients?run=alpha&fields=updateRatio,gradNorm")
    assert some["fields"] == ["updateRatio", "gradNorm"] and set(some["values"]) == {
        "updateRatio",
        "gradNorm",
    }
    assert some["values"]["gradNorm"] == body["values"]["gradNorm"]
    empty = get_json(client, "/gradients?run=no_grads")
    assert empty["layers"] == [] and empty["steps"] == [] and empty["values"]["gradNorm"] == []


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/gradients", 400, "missing query parameter 'run'"),
        ("/gradients?run=alpha&fields=gradNorm,bogus", 400, "unknown entries 'bogus'"),
        ("/gradients?run=alpha&fields=a&fields=b", 400, "given 2 times"),
        ("/gradients?run=nope", 404, "has no Insight data"),
    ],
)
def test_bad_gradient_requests(logdir: Path, url: str, status: int, message: str) -> None:
    body = get_json(make_client(logdir), url, status)
    assert message in body["error"]["message"]


def test_parameters_belong_to_the_innermost_watched_module() -> None:
    from tb_plugin_insight.capture.grads import attribute_parameters
    from tb_plugin_insight.capture.layers import select_layers

    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    model = nn.Sequential(block, nn.Linear(3, 2))
    chosen = select_layers(model, ["0", "0.1"])  # the block and its second Linear; "1" not watched
    owned = attribute_parameters(model, chosen)
    names = {id(p): n for n, p in model.named_parameters()}
    got = {names[id(p)]: chosen[i][1] for i, p in owned}
    assert got == {"0.0.weight": "0", "0.0.bias": "0", "0.1.weight": "0.1", "0.1.bias": "0.1"}


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_large_gradients_are_reduced_in_pieces_to_the_same_parts(layout: str) -> None:
    """Gradients above a piece (2^20 elements on the CPU) are reduced piece by piece: same parts, with
    NaN/Inf counted in whichever piece holds them; a view with gaps is reduced whole."""
    from tb_plugin_insight.capture import grads as grads_mod
    from tb_plugin_insight.capture import reduce

    gen = torch.Generator().manual_seed(0)
    g = torch.randn(40, 64, 33, 31, generator=gen)  # 2.6M elements: three pieces
    if layout == "channels_last":
        g = g.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        g = g[:, ::2]
    g[3, 5, 7, 9] = float("nan")
    g[-1, -1, -1, -1] = float("inf")
    assert (grads_mod._flat_view(g) is None) == (layout == "strided")
    for abs_stats in (True, False):
        got = grads_mod._grad_parts(g, abs_stats=abs_stats)
        want = reduce.grad_parts(g, abs_stats=abs_stats)
        used = [0, 1, 2, 3, 4, 5] if abs_stats else [0, 3, 4, 5]  # without abs_stats: NaN or unused
        np.testing.assert_allclose(got.numpy()[used], want.numpy()[used], rtol=1e-5)
    assert grads_mod._grad_parts(g)[3:].tolist() == [1, 1, g.numel()]
