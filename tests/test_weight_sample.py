"""The sampled update ratio (capture/weight_sample.py): exact on small parameters, within its documented
error on large ones, bounded memory, positions fixed and drawn without the global RNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from helpers import assert_training_unchanged, state_copy
from test_gradients import F, records
from torch import nn

from tb_plugin_insight import InsightWriter
from tb_plugin_insight.capture import weight_sample
from tb_plugin_insight.capture.weight_sample import WeightSample, draw_positions, sample_bytes, sample_size


def estimate(w: torch.Tensor, update: torch.Tensor, k: int = 4096) -> tuple[float, float]:
    """(estimated, exact) ||Δw|| / ||w|| of one parameter updated by `update`."""
    sample = WeightSample([w], k)
    before = sample.take(0, w)
    exact_weight = w.norm().item()
    w += update
    got = sample.delta_sq(0, before, w, torch.float64).sqrt().item() / exact_weight
    return got, update.norm().item() / exact_weight


def test_positions_are_distinct_sorted_fixed_and_leave_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    for numel in (5000, 40_000, 10_000_000):
        where = draw_positions(numel, 4096, seed=3)
        assert where is not None and where.dtype == torch.int64
        assert 4096 * (1 - 4096 / numel) <= where.numel() <= 4096
        assert torch.equal(where, where.unique())  # sorted, distinct
        assert 0 <= int(where[0]) and int(where[-1]) < numel
        assert torch.equal(where, draw_positions(numel, 4096, seed=3))  # the same every time
        assert not torch.equal(where, draw_positions(numel, 4096, seed=4))
    assert draw_positions(4096, 4096, seed=3) is None  # small: the whole parameter
    assert torch.equal(torch.get_rng_state(), state)


def test_small_parameters_are_exact() -> None:
    gen = torch.Generator().manual_seed(0)
    for shape in ((64, 64), (4096,), (3, 5, 7)):
        w = torch.randn(shape, generator=gen, dtype=torch.float64)
        got, exact = estimate(w, 0.01 * torch.randn(shape, generator=gen, dtype=torch.float64))
        assert got == exact or math.isclose(got, exact, rel_tol=1e-14)


def test_dense_updates_are_within_the_documented_error() -> None:
    """Gaussian updates: relative error of the ratio ~ 1/sqrt(2m) (module doc); no bias."""
    gen = torch.Generator().manual_seed(1)
    errors = []
    for _ in range(40):
        w = torch.randn(256, 1024, generator=gen)
        got, exact = estimate(w, 1e-3 * torch.randn(256, 1024, generator=gen))
        errors.append(got / exact - 1)
    m = draw_positions(256 * 1024, 4096, weight_sample.SEED).numel()
    predicted = 1 / math.sqrt(2 * m)  # 1.1 %
    rms = math.sqrt(np.mean(np.square(errors)))
    assert 0.6 * predicted < rms < 1.5 * predicted
    assert max(abs(e) for e in errors) < 5 * predicted
    assert abs(np.mean(errors)) < 3 * predicted / math.sqrt(len(errors)) + 1e-3  # unbiased up to O(1/m)


def test_sparse_updates_are_worse_as_documented() -> None:
    """A fraction f of the entries moves: error ~ sqrt(3/f)/(2 sqrt(m)) for Gaussian moves; a move outside
    the sample is not seen at all."""
    gen = torch.Generator().manual_seed(2)
    n, f = 512 * 512, 0.05
    errors = []
    for _ in range(20):
        w = torch.randn(n, generator=gen)
        update = torch.zeros(n)
        rows = torch.randperm(n, generator=gen)[: int(f * n)]
        update[rows] = 1e-3 * torch.randn(rows.numel(), generator=gen)
        got, exact = estimate(w, update)
        errors.append(got / exact - 1)
    predicted = math.sqrt(3 / f) / (2 * math.sqrt(4096))  # Gaussian moves: cv = sqrt(3/f)
    rms = math.sqrt(np.mean(np.square(errors)))
    assert 0.6 * predicted < rms < 1.5 * predicted
    w = torch.randn(n, generator=gen)
    one = torch.zeros(n)
    where = draw_positions(n, 4096, weight_sample.SEED)
    missed = next(i for i in range(n) if i not in set(where.tolist()))
    one[missed] = 1.0
    assert estimate(w, one)[0] == 0.0  # the single moved entry is outside the sample


def test_bfloat16_parameters() -> None:
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(300, 300, generator=gen).bfloat16()
    sample = WeightSample([w])
    before = sample.take(0, w)
    assert before.dtype == torch.bfloat16 and before.numel() <= 4096
    old = w.clone()
    w.add_(torch.full_like(w, 0.5))
    got = sample.delta_sq(0, before, w, torch.float64).sqrt().item()
    exact = (w.float() - old.float()).norm().item()
    assert math.isclose(got, exact, rel_tol=0.05)


def test_memory_budget_shrinks_the_sample_for_many_parameters() -> None:
    few = [torch.empty(1000, 1000) for _ in range(4)]
    assert sample_size(few) == 4096
    many = [torch.empty(5000) for _ in range(20_000)]  # 400 MB in 20,000 tensors just above K
    k = sample_size(many)
    sizes = [(p.numel(), p.element_size()) for p in many]
    budget = 0.01 * 400e6 + 16 * 2**20
    assert 64 <= k < 4096 and sample_bytes(sizes, k) <= budget < sample_bytes(sizes, 2 * k)


def big_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(300, 200), nn.Tanh(), nn.Dropout(0.2), nn.Linear(200, 10))


def test_recorded_ratio_of_a_large_layer_is_within_tolerance_and_a_small_one_exact(tmp_path: Path) -> None:
    model = big_mlp()  # layer 0: 60,000 weights (sampled) + 200 biases; layer 3: 2,010 (exact)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    exact: dict[str, dict[int, float]] = {"0": {}, "3": {}}
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=2)
        for step in range(6):
            loss = model(torch.randn(32, 300, generator=gen)).square().mean()
            opt.zero_grad()
            loss.backward()
            before = {
                name: torch.cat([p.detach().flatten().clone() for p in model[int(name)].parameters()])
                for name in exact
            }
            opt.step()
            for name, old in before.items():
                new = torch.cat([p.detach().flatten() for p in model[int(name)].parameters()])
                exact[name][step] = float((new - old).norm() / old.norm())
    got = records(tmp_path)
    for step in (0, 2, 4):
        np.testing.assert_allclose(got["3"][step][F["updateRatio"]], exact["3"][step], rtol=1e-6)
        np.testing.assert_allclose(got["0"][step][F["updateRatio"]], exact["0"][step], rtol=0.05)  # ~5 sd
        assert got["0"][step][F["updateRatio"]] != exact["0"][step]


def test_samples_are_bounded_and_released(tmp_path: Path) -> None:
    model = big_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1)
        recorder = writer._recorders[id(model)].gradients
        assert recorder is not None
        loss = model(torch.randn(4, 300)).square().mean()
        loss.backward()
        pending = recorder._pending
        kept = [r.before.numel() for r in pending.params.values()]
        assert sorted(kept) == [10, 200, 2000, 4096]  # bias, bias, weight whole; 60,000 weights sampled
        opt.step()
        assert recorder._sample.kept_bytes() <= 4096 * 8
        writer.unwatch(model)
        assert recorder._sample.kept_bytes() == 0


def test_sampling_never_changes_training(tmp_path: Path) -> None:
    """Dropout draws from the global RNG after every sampled layer: any draw of Insight's would show."""

    def final_state(watch: bool) -> dict[str, torch.Tensor]:
        model = big_mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        writer = InsightWriter(str(tmp_path / str(watch)))
        if watch:
            writer.watch(model, every=1)
        torch.manual_seed(99)
        for _ in range(4):
            loss = model(torch.randn(8, 300)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        writer.close()
        return {**state_copy(model), "rng": torch.get_rng_state()}

    assert_training_unchanged(final_state)
    assert records(tmp_path / "True")
