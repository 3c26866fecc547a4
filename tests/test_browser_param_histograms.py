"""End to end: the weight and gradient histograms in the layer panel of the Model view, in headless
Chromium against a real `tensorboard` process.

A small MLP recorded with histograms every 2 steps. The tab opens on the Model view with a Linear layer
selected by deep link: its panel shows one weight and one gradient histogram per parameter tensor
(weight and bias), at the last histogram step, with the counts the route serves; moving the activation
histogram's step slider to step 0 moves them too.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
from test_browser import (  # also skips this module when playwright/torch are missing
    ARTIFACTS,
    _tensorboard,
    _wait_for,
    insight_page,
)
from test_browser import pytestmark as browser_marks
from torch import nn

from tb_plugin_insight import InsightWriter

pytestmark = browser_marks

RUN = "phist"
LAYER = "2"
STEPS, EVERY = 6, 2


def _train(run_dir: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(1)
    with InsightWriter(str(run_dir)) as writer:
        writer.watch(model, every=EVERY, histogram_every=EVERY, histogram_bins=16)
        for _ in range(STEPS):
            x, y = torch.randn(12, 6, generator=gen), torch.randn(12, 4, generator=gen)
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("browser_phist") / "logs"
    with torch.random.fork_rng(devices=[]):
        _train(root / RUN)
    with _tensorboard(root) as base:
        yield base


def _served(server: str) -> dict:
    query = urllib.parse.urlencode({"run": RUN, "layer": LAYER})
    with urllib.request.urlopen(f"{server}/data/plugin/insight/param_histograms?{query}", timeout=10) as resp:
        return json.loads(resp.read())


def _shown(frame) -> dict[tuple[str, str], tuple[int, list[int]]]:
    """{(parameter, kind): (step, counts)} of the histograms in the open layer panel."""
    shown = {}
    for el in frame.query_selector_all('[data-testid="param-hist"]'):
        step, counts = el.get_attribute("data-step"), el.get_attribute("data-counts") or ""
        if step:
            shown[(el.get_attribute("data-param"), el.get_attribute("data-kind"))] = (
                int(step),
                [int(v) for v in counts.split(",")],
            )
    return shown


def _expected(served: dict, index: int) -> dict[tuple[str, str], tuple[int, list[int]]]:
    return {
        (p["name"], kind): (p[kind]["steps"][index], p[kind]["counts"][index])
        for p in served["params"]
        for kind in ("weights", "grads")
    }


def test_weight_and_gradient_histograms_follow_the_step_slider(server: str, browser) -> None:
    served = _served(server)
    assert [p["name"] for p in served["params"]] == ["2.weight", "2.bias"]
    last, first = _expected(served, -1), _expected(served, 0)
    assert last != first
    url = f"{server}/#insight&p.insight.view=model&p.insight.run={RUN}&p.insight.layer={LAYER}"
    with insight_page(browser, url, height=1600) as (page, frame, watch):
        _wait_for(
            page, lambda: len(frame.query_selector_all('[data-testid="param-hist"] canvas')) == 4, "bars"
        )
        _wait_for(page, lambda: _shown(frame) == last, "the histograms at the last step")
        assert {step for step, _ in last.values()} == {STEPS - EVERY}
        names = [
            el.get_attribute("data-param") for el in frame.query_selector_all('[data-testid="param-row"]')
        ]
        assert names == ["2.weight", "2.bias"]
        frame.query_selector('[data-testid="param-histograms"]').screenshot(
            path=str(ARTIFACTS / "insight-param-histograms.png")
        )
        frame.fill('[data-testid="hist-step-slider"]', "0")  # the activation histogram's player
        _wait_for(page, lambda: _shown(frame) == first, "the histograms at step 0")
        assert watch.errors == [] and watch.dialogs == []
        assert any("/param_histograms?" in r for r in watch.requests)
