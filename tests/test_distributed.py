"""DDP under torchrun (2 processes, gloo, CPU) with Insight recording everything: no hang, and rank 0
alone writes by default (one run per rank with ranks="all").

Rank 0's probe passes (CAMs, saliency) run on the model inside DDP and never reach DDP's forward or the
parameters' gradient accumulators, so they start no collective the other rank would have to join; with
ranks="first" only rank 0 runs them, so any such collective would hang (caught by the timeout); the script
also counts DDP's forwards (exactly one per training step). (TORCH_DISTRIBUTED_DEBUG=DETAIL, which would
check collectives, crashes torch 2.13's gloo on CPU even without Insight.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_model_matrix import read_back

from conftest import tiny_cnn
from tb_plugin_insight import InsightWriter

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SCRIPT = Path(__file__).resolve().parent / "scripts" / "ddp_train.py"
STEPS = 5


def torchrun(logdir: Path, ranks: str) -> str:
    exe = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(exe), "--standalone", "--nproc_per_node=2", str(SCRIPT), str(logdir), ranks, str(STEPS)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"DDP training with Insight hung: {err.stdout!r} {err.stderr!r}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 0 done" in done.stdout and "rank 1 done" in done.stdout, done.stdout
    return done.stdout


@pytest.mark.slow
def test_ddp_with_torchrun_finishes_and_only_rank_0_writes(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    out = torchrun(logdir / "ddp", "first")
    assert "rank 1 watching" in out and "active=True" in out  # rank 1: the gradient hooks, no file
    runs = sorted(p.parent.relative_to(logdir).as_posix() for p in logdir.rglob("events.out.tfevents.*"))
    assert runs == ["ddp"], runs  # one event file: rank 1 wrote nothing, not even its scalars
    read = read_back(logdir, "ddp")
    assert "module.0" not in read["layers"] and "0" in read["layers"]  # names as without DDP
    assert read["stats"]["0"]["steps"] == list(range(STEPS))
    assert read["gradients"]["steps"] == list(range(STEPS))
    assert {(s["kind"], tuple(s["steps"])) for s in read["maps"]["series"]} == {
        ("cam", (0, 2, 4)),
        ("saliency", (0, 2, 4)),
    }


@pytest.mark.parametrize(
    ("rank", "ranks", "run"),
    [(0, "first", "exp"), (1, "first", None), (1, "all", "exp/rank1"), (0, "all", "exp/rank0")],
)
def test_rank_from_torchrun_environment_decides_who_writes(
    rank: int, ranks: str, run: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "2")
    model = tiny_cnn()
    with InsightWriter(str(tmp_path / "exp"), ranks=ranks) as writer:
        handle = writer.watch(model, every=1)
        assert handle.active == (run is not None) and writer.rank == rank
        model(torch.randn(2, 3, 8, 8)).sum().backward()
        writer.add_scalar("loss", 1.0, 0)
    files = [p.parent.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("events.out.tfevents.*")]
    assert files == ([] if run is None else [run])
    if run is not None:
        assert read_back(tmp_path, run)["stats"]["0"]["steps"] == [0]


def test_bad_ranks_option_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'first'.*'all'"):
        InsightWriter(str(tmp_path), ranks="rank0")
