"""The rank comparison on a real DDP job: torchrun, 3 gloo ranks on CPU, each writing its own run
(`ranks="all"`); rank 2 is fed 10x larger inputs from step DEPART on. The runs line up step for step,
the replicas' weight norms agree exactly, and the alert names rank 2 from DEPART."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from test_plugin import get_json, make_client

SCRIPT = Path(__file__).resolve().parent / "scripts" / "ranks_train.py"
STEPS, ODD, DEPART, WORLD = 8, 2, 3, 3


@pytest.mark.slow
def test_ddp_ranks_line_up_and_the_odd_rank_is_named(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    exe = Path(sys.executable).with_name("torchrun")
    cmd = [str(exe), "--standalone", f"--nproc_per_node={WORLD}", str(SCRIPT), str(logdir / "ddp"),
           str(STEPS), str(ODD), str(DEPART)]  # fmt: skip
    try:
        done = subprocess.run(
            cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"DDP training hung: {err.stdout!r} {err.stderr!r}")
    assert done.returncode == 0 and all(f"rank {r} done" in done.stdout for r in range(WORLD)), done.stderr[
        -3000:
    ]

    client = make_client(logdir)
    family = get_json(client, "/rank_families")["families"]
    assert [(f["family"], f["ranks"], f["maxSteps"]) for f in family] == [
        ("ddp", [0, 1, 2], [STEPS - 1] * WORLD)
    ]

    def spread(kind: str, stat: str) -> dict:
        return get_json(
            client, "/rank_spread?" + urllib.parse.urlencode({"family": "ddp", "kind": kind, "stat": stat})
        )

    weights = spread("gradient", "weightNorm")
    assert weights["steps"] == list(range(STEPS)) and weights["lastSteps"] == [STEPS - 1] * WORLD
    rows = [i for i, layer in enumerate(weights["layers"]) if layer["moduleType"] == "Linear"]
    assert np.array([weights["relativeSpread"][i] for i in rows], dtype=float).max() == 0  # replicas agree

    alerts = get_json(client, "/rank_alerts?family=ddp")
    assert [(r["rank"], r["firstStep"]) for r in alerts["departingRanks"]] == [(ODD, DEPART)]
    first = {(a["kind"], a["layer"], a["stat"]): a["firstStep"] for a in alerts["alerts"]}
    assert first[("activation", "0", "std")] == DEPART
