"""Gradient statistics of distributed jobs (2 gloo ranks on CPU, DDP and FSDP2): the records equal those of
the same model trained unsharded on the ranks' concatenated batches, training is bit-identical with and
without Insight (checked in the worker), nothing hangs (every launch has a timeout), and the gradient
noise scale equals a direct computation from each rank's own gradient. Under FSDP2 each rank records the
conv filters it holds, tile for tile those of the unsharded run, and no recorder warns or fails on any rank.

The ranks run tests/scripts/dist_grads_train.py, one process each (the environment torchrun would set),
all scenarios in one launch: starting processes is most of the cost.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_plugin import PREFIX, make_client
from torch import nn

from tb_plugin_insight import InsightWriter, metadata, read
from tb_plugin_insight.capture import dist_grads

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SCRIPT = Path(__file__).resolve().parent / "scripts" / "dist_grads_train.py"
_spec = importlib.util.spec_from_file_location("dist_grads_train", SCRIPT)
assert _spec is not None and _spec.loader is not None
worker = importlib.util.module_from_spec(_spec)
sys.modules["dist_grads_train"] = worker
_spec.loader.exec_module(worker)

PARAM_FIELDS = ["gradNorm", "gradMeanAbs", "gradMaxAbs", "gradNanCount", "gradInfCount", "gradNumel"]
PARAM_FIELDS += ["weightNorm", "updateRatio"]
RTOL = 1e-5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def dist_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every scenario trained by 2 ranks; rank 0's runs."""
    return launch(tmp_path_factory.mktemp("dist"), list(worker.SCENARIOS))


def launch(logdir: Path, scenarios: list[str]) -> Path:
    """`scenarios` trained by 2 ranks into `logdir`. Fails (never hangs) when a rank waits forever."""
    port = str(_free_port())
    procs = []
    for rank in range(worker.WORLD):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(worker.WORLD),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "OMP_NUM_THREADS": "1",
        }
        cmd = [sys.executable, str(SCRIPT), str(logdir), *scenarios]
        pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
        procs.append(subprocess.Popen(cmd, env=env, **pipe))  # type: ignore[call-overload]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=240)[0])
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        pytest.fail("a rank hung: " + " | ".join(p.communicate()[0][-2000:] for p in procs))
    for rank, (proc, out) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0 and f"rank {rank} done" in out, out[-4000:]
    return logdir


def reference(s: Any, logdir: Path) -> tuple[Any, list[list[torch.Tensor]]]:
    """The scenario trained unsharded on the concatenated batches, recorded in `logdir/<name>`; also the
    weights before each optimizer step."""
    model = worker.build_model()
    weights: list[list[torch.Tensor]] = []
    step_fn = torch.optim.SGD.step

    def remember(opt: Any, *args: Any, **kwargs: Any) -> Any:
        weights.append([p.detach().clone() for p in model.parameters()])
        return step_fn(opt, *args, **kwargs)

    declared = s.micro if s.name == "ddp_undeclared" else s.declared  # see test_undeclared_accumulation
    every = 1 if s.name == "ddp_undeclared" else s.every
    s_ref = dataclasses.replace(s, every=every, declared=declared, skip_sync=False)  # probe kept
    with InsightWriter(str(logdir / s.name)) as writer:
        torch.optim.SGD.step = remember  # type: ignore[method-assign]
        try:
            worker.train(model, s_ref, list(range(worker.WORLD)), None, writer)
        finally:
            torch.optim.SGD.step = step_fn  # type: ignore[method-assign]
    return read(str(logdir)).gradients(s.name), weights


def _by_step(frame: Any, fields: list[str]) -> dict[tuple[int, str], np.ndarray]:
    return {
        (int(step), layer): np.array([frame[f][i] for f in fields], dtype=np.float64)
        for i, (step, layer) in enumerate(zip(frame["step"], frame["layer"]))
    }


@pytest.mark.slow  # the 2-rank launch (shared by the module)
@pytest.mark.parametrize("name", ["ddp", "fsdp", "ddp_acc", "fsdp_acc"])
def test_recorded_gradients_equal_the_unsharded_run(name: str, dist_logdir: Path, tmp_path: Path) -> None:
    s = worker.SCENARIOS[name]
    expected, _ = reference(s, tmp_path)
    run = f"{name}/rank0" if s.ranks == "all" else name
    got = read(str(dist_logdir)).gradients(run)
    fields = PARAM_FIELDS + ["actGradNorm", "actGradNanCount", "actGradInfCount", "actGradNumel"]
    want, have = _by_step(expected, fields), _by_step(got, fields)
    assert sorted(have) == sorted(want) and want
    assert sorted({step for step, _ in want}) == list(range(0, worker.STEPS * s.micro, s.every))
    for key in want:
        np.testing.assert_allclose(have[key], want[key], rtol=RTOL, atol=1e-12, err_msg=f"{name} {key}")
    first = have[(0, "3")]  # the 16 x 64 layer: whole-parameter count, not one rank's shard
    assert first[fields.index("gradNumel")] == 16 * 64 + 16
    if s.ranks == "all":  # every rank records the same reduced statistics; only its own norm differs
        other = _by_step(read(str(dist_logdir)).gradients(f"{name}/rank1"), fields)
        assert sorted(other) == sorted(have)
        for key in have:
            np.testing.assert_array_equal(other[key], have[key])
        noise = [read(str(dist_logdir)).gradient_noise(f"{name}/rank{r}") for r in range(2)]
        assert list(noise[0]["gradSq"]) == list(noise[1]["gradSq"])
        assert list(noise[0]["rankGradSq"]) != list(noise[1]["rankGradSq"])


@pytest.mark.slow  # the 2-rank launch (shared by the module)
def test_fsdp_filter_tiles_are_those_of_the_unsharded_layer(dist_logdir: Path, tmp_path: Path) -> None:
    """FSDP2 splits the conv's 4 filters over the 2 ranks: each rank records the 2 it holds (no collective,
    no error on any rank: checked in the worker), tile for tile those of the unsharded run; feature
    visualisations and model-table counts are those of the unsharded model too."""
    s = worker.SCENARIOS["fsdp"]
    reference(s, tmp_path)
    want = read(str(tmp_path)).filters(s.name, "0")
    assert want.channels == (0, 1, 2, 3) and list(want.steps) == [0, 1, 2]
    step = (want.values.max() - want.values.min()) / 63  # 6-bit codes: one quantisation step
    for rank, held in enumerate([(0, 1), (2, 3)]):
        got = read(str(dist_logdir)).filters(f"{s.name}/rank{rank}", "0")
        assert got.channels == held and list(got.steps) == list(want.steps)
        np.testing.assert_allclose(got.values, want.values[:, list(held)], atol=step, rtol=0)
    vis = [read(str(dist_logdir)).feature_vis(f"{s.name}/rank{r}", "0") for r in range(2)]
    want_vis = read(str(tmp_path)).feature_vis(s.name, "0")
    assert list(want_vis.steps) == [0, 2] and want_vis.channels
    for got_vis in vis:  # the sharded model's forward gathers the weights: the same images on every rank
        assert list(got_vis.steps) == [0, 2] and got_vis.channels == want_vis.channels
        np.testing.assert_allclose(got_vis.values, want_vis.values, atol=2 / 255, rtol=0)
    table = read(str(dist_logdir)).model_table(f"{s.name}/rank0")  # DTensor.numel(): whole parameters
    want_table = read(str(tmp_path)).model_table(s.name)
    assert list(table["params"]) == list(want_table["params"]) and table["params"][0] == 112 + 1040 + 51


@pytest.mark.slow  # the 2-rank launch (shared by the module)
def test_undeclared_accumulation_reads_the_gradient_the_optimizer_applies(
    dist_logdir: Path, tmp_path: Path
) -> None:
    """Two micro-batches per step (no_sync), every=1, grad_accumulation left at 1: the records of the
    second micro-batches hold the accumulated gradient (the first ones have none), and nothing hangs."""
    s = worker.SCENARIOS["ddp_undeclared"]
    expected, _ = reference(s, tmp_path)  # declares the accumulation: records at steps 0, 2, 4
    got = _by_step(read(str(dist_logdir)).gradients(s.name), PARAM_FIELDS)
    want = _by_step(expected, PARAM_FIELDS)
    for (step, layer), values in want.items():
        np.testing.assert_allclose(got[(step + 1, layer)], values, rtol=RTOL, atol=1e-12)


@pytest.mark.slow  # the 2-rank launch (shared by the module)
def test_a_watch_on_rank_0_alone_falls_back_to_its_own_gradients(dist_logdir: Path, tmp_path: Path) -> None:
    """Only rank 0 watches: after a short handshake it records alone, with no collective (no hang); its
    first record was read before the optimizer step (after DDP's all-reduce), so it is still exact."""
    s = worker.SCENARIOS["ddp_rank0_only"]
    expected, _ = reference(s, tmp_path)
    got = _by_step(read(str(dist_logdir)).gradients(s.name), PARAM_FIELDS)
    want = _by_step(expected, PARAM_FIELDS)
    assert sorted(got) == sorted(want)
    for key in [k for k in want if k[0] == 0]:
        np.testing.assert_allclose(got[key], want[key], rtol=RTOL, atol=1e-12)


def _layer_params(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    return {name: list(m.parameters()) for name, m in model.named_children() if list(m.parameters())}


def expected_noise(s: Any, weights: list[list[torch.Tensor]]) -> dict[tuple[int, str], tuple[float, float]]:
    """(|G|^2, tr Σ) from the ranks' own gradients computed directly, at each optimizer step."""
    out = {}
    model = worker.build_model()
    for step, before in enumerate(weights):
        with torch.no_grad():
            for p, w in zip(model.parameters(), before):
                p.copy_(w)
        own = []
        for rank in range(worker.WORLD):
            total = [torch.zeros_like(p, dtype=torch.float64) for p in model.parameters()]
            for micro in range(s.micro):
                x, y = worker.batch(s.name, step, micro, rank)
                loss = nn.functional.cross_entropy(model(x), y) / s.micro
                for t, g in zip(total, torch.autograd.grad(loss, list(model.parameters()))):
                    t += g.double()
            own.append(total)
        ids = {id(p): i for i, p in enumerate(model.parameters())}
        groups = {name: [ids[id(p)] for p in ps] for name, ps in _layer_params(model).items()}
        groups["(model)"] = list(range(len(ids)))
        b_small, b_big = s.micro * worker.LOCAL_BATCH, worker.WORLD * s.micro * worker.LOCAL_BATCH
        for name, idx in groups.items():
            small = np.mean([sum(float(g[i].square().sum()) for i in idx) for g in own])
            big = sum(float(((own[0][i] + own[1][i]) / 2).square().sum()) for i in idx)
            g_sq = (b_big * big - b_small * small) / (b_big - b_small)
            trace = (small - big) / (1 / b_small - 1 / b_big)
            recorded = [f for f in range(step * s.micro, (step + 1) * s.micro) if f % s.every == 0]
            if recorded:  # a record is labelled with the first recorded forward of its optimizer step
                out[(recorded[0], name)] = (g_sq, trace)
    return out


@pytest.mark.slow  # the 2-rank launch (shared by the module)
@pytest.mark.parametrize("name", ["ddp", "fsdp_acc"])
def test_noise_scale_equals_a_direct_computation(name: str, dist_logdir: Path, tmp_path: Path) -> None:
    s = worker.SCENARIOS[name]
    _, weights = reference(s, tmp_path)
    frame = read(str(dist_logdir)).gradient_noise(name)
    got = _by_step(frame, list(metadata.NOISE_FIELDS))
    want = expected_noise(s, weights)
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for key, (g_sq, trace) in want.items():
        row = dict(zip(metadata.NOISE_FIELDS, got[key]))
        pair = [row["gradSq"], row["traceSigma"]]
        np.testing.assert_allclose(pair, [g_sq, trace], rtol=1e-4, err_msg=str(key))
        assert row["noiseScale"] == pytest.approx(trace / g_sq, rel=1e-4)
        assert (row["batchSmall"], row["batchBig"]) == (s.micro * 3, 2 * s.micro * 3)


def test_noise_components_recover_a_known_noise() -> None:
    """On synthetic gradients G + noise of known covariance, the estimates average to |G|^2 and tr Σ."""
    gen = torch.Generator().manual_seed(0)
    dim, ranks, b, trials = 50, 4, 8, 4000
    g_true = torch.randn(dim, generator=gen, dtype=torch.float64)
    sigma_diag = torch.rand(dim, generator=gen, dtype=torch.float64) * 4  # per-sample covariance, diagonal
    per_rank = (
        g_true + torch.randn(trials, ranks, dim, generator=gen, dtype=torch.float64) * (sigma_diag / b).sqrt()
    )
    small = per_rank.square().sum(-1).mean(-1)
    big = per_rank.mean(1).square().sum(-1)
    batches = torch.tensor(float(b)), torch.tensor(float(b * ranks))
    g_sq, trace = dist_grads.noise_components(small, big, *batches)
    assert float(g_sq.mean()) == pytest.approx(float(g_true.square().sum()), rel=0.02)
    assert float(trace.mean()) == pytest.approx(float(sigma_diag.sum()), rel=0.03)


@pytest.mark.slow  # the 2-rank launch (shared by the module)
def test_noise_route_serves_the_model_row_and_the_layers(dist_logdir: Path) -> None:
    client = make_client(dist_logdir)
    response = client.get(PREFIX + "/gradient_noise?run=ddp&fields=traceSigma,gradSq")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = json.loads(response.get_data(as_text=True))
    assert [layer["name"] for layer in body["layers"]] == ["(model)", "0", "3", "5"]
    assert body["steps"] == [0, 1, 2] and set(body["values"]) == {"traceSigma", "gradSq"}
    bad = client.get(PREFIX + "/gradient_noise?run=ddp&fields=gradNorm")
    assert bad.status_code == 400 and "gradNorm" in bad.get_data(as_text=True)


def test_rank_zero_only_watches_never_reduce_across_ranks(tmp_path: Path) -> None:
    """Trainer callbacks watch on rank 0 only: their gradients stay per rank (no collective to wait for)."""
    from tb_plugin_insight.integrations.trainer_watch import TrainerWatch
    from tb_plugin_insight.options import Gradients

    for options in ({}, {"gradients": Gradients(accumulation=1)}):
        with InsightWriter(str(tmp_path)) as writer:
            watch = TrainerWatch(writer, nn.Linear(2, 2), options)
            gradients = watch.handle._session.gradients
            assert gradients is not None and gradients.options.across_ranks is False
    with pytest.raises(TypeError, match="grad_across_ranks"):
        Gradients(across_ranks="yes")
