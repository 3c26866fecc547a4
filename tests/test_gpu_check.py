"""bench/gpu_check.py without a GPU: it skips cleanly, its CPU dry run goes through every check, and its
table judges the figures it is given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import gpu_check
from bench.gpu_check import Counts, Identical, Memory, Overhead

ROOT = Path(__file__).resolve().parent.parent


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script runs the real check")
def test_without_cuda_it_says_so_and_exits_0() -> None:
    done = run_script()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == gpu_check.SKIPPED == "no CUDA device: gpu_check skipped"


@pytest.mark.slow
def test_dry_run_on_the_cpu_runs_every_check(tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    done = run_script("--dry-run-cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert text.strip() in done.stdout
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    checks = [row.split(" | ")[0].lstrip("| ") for row in rows]
    assert checks.count("overhead at the defaults (bf16 autocast)") == 2  # ResNet-50 and the GPT
    assert checks.count("synchronisations, a statistics step and the next") == 2
    assert checks.count("synchronisations, two unrecorded steps") == 2
    assert checks.count("bit-identical weights, everything recorded") == 2
    assert checks.count("peak memory") == 2
    for row in rows:
        if row.startswith("| bit-identical"):
            assert "| identical | deterministic |" in row  # on the CPU training is deterministic
        if row.startswith("| overhead"):
            assert "ms/step" in row and "x (recorded steps" in row
    assert "dry run" in text.splitlines()[0]


def test_table_verdicts() -> None:
    base = Counts(1, 1, 1)  # loss.item(): one sync, one copy, one wait
    good = Overhead("m", 1.02, 1.0, 1.02, 1.2, {"base": base, "statistics": Counts(1, 3, 1)})
    bad = Overhead("m", 1.1, 1.0, 1.1, 2.0, {"base": base, "statistics": Counts(3, 3, 3)})
    memory_ok = Memory("m", 100 * gpu_check.MB, 160 * gpu_check.MB, 100 * gpu_check.MB)  # +60 <= 66 MB
    memory_bad = Memory("m", 100 * gpu_check.MB, 170 * gpu_check.MB, 100 * gpu_check.MB)
    rows = gpu_check.table(
        [good, bad],
        [Identical("m", True, True), Identical("m", False, False)],
        [memory_ok, memory_bad],
        False,
    ).splitlines()[2:]
    verdicts = [row.rstrip(" |").rsplit("| ", 1)[-1] for row in rows]
    assert verdicts == ["met", "MISSED", "met", "MISSED", "met", "no verdict", "met", "MISSED"]
    assert "+2 syncs, +2 D2H copies, +2 waits" in rows[3]
