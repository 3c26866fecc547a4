"""Write, then read back through a real `tensorboard` process on both data backends.

The default (`--load_fast=auto`) runs the Rust data server, which keeps 100 records per tag for custom
plugins unless told otherwise; the loader's keep-all default must make every step come back.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import tensorboard_process, write_run

STEPS = 160


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tb") / "logs"
    write_run(root / "run one", steps=STEPS, every=1)
    return root


def fetch(base: str, route: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{base}/data/plugin/insight/{route}", timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.slow
@pytest.mark.parametrize("load_fast", ["auto", "false"])
def test_every_step_comes_back(logdir: Path, load_fast: str) -> None:
    with tensorboard_process(logdir, f"--load_fast={load_fast}") as base:
        with urllib.request.urlopen(base + "/data/plugins_listing", timeout=30) as resp:
            listing = json.loads(resp.read())
        assert listing["insight"]["enabled"] is True
        assert listing["insight"]["tab_name"] == "Insight"
        status, runs = fetch(base, "runs")
        assert status == 200 and runs["runs"][0]["run"] == "run one"
        status, heatmap = fetch(base, "stats_heatmap?run=run%20one&stat=mean")
        assert status == 200
        assert heatmap["steps"] == list(range(STEPS))
        assert all(None not in row for row in heatmap["values"])
        status, series = fetch(base, "layer_stats?run=run%20one&layer=0")
        assert status == 200 and series["steps"] == list(range(STEPS))
        status, error = fetch(base, "layer_stats?run=run%20one&layer=missing")
        assert status == 404 and "missing" in error["error"]["message"]


@pytest.mark.slow
def test_user_sampling_choice_wins(logdir: Path) -> None:
    with tensorboard_process(logdir, "--samples_per_plugin", "insight=5") as base:
        status, heatmap = fetch(base, "stats_heatmap?run=run%20one&stat=mean")
        assert status == 200 and len(heatmap["steps"]) == 5
