"""End to end: a model of 300 watched layers (a flat nn.Sequential of 150 x (Linear, Tanh)) in the Insight
tab, in headless Chromium against a real `tensorboard` process.

Such a run once opened the Gradients view to a flow chart without bars (uPlot's log axis looped over the
decades of vanished gradients, ~1e-40, and threw) and a heatmap of 300 thin rows. Now the rows group
(ranges of 20 siblings, since the Sequential has no dotted prefix), folded to at most ~60 rows by default:
the statistics heatmap and the gradient view show the groups, unfold one, filter by name, and the flow
chart draws its bars. Nothing is logged to the console. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
import torch
from helpers import sgd_step
from test_browser import (  # also skips this module when playwright/torch are missing
    ARTIFACTS,
    _wait_for,
    insight_page,
)
from test_browser import pytestmark as browser_marks
from test_browser_grads import CANVAS_INK
from torch import nn

from tb_plugin_insight import InsightWriter

pytestmark = browser_marks

RUN = "deep"
BLOCKS = 150  # x (Linear, Tanh): 300 watched layers
STEPS = 30


def _train(run_dir: Path) -> list[str]:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(BLOCKS):
        layers += [nn.Linear(8, 8), nn.Tanh()]
    model = nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    with InsightWriter(str(run_dir)) as writer:
        handle = writer.watch(model, every=1)
        for step in range(STEPS):
            x = torch.randn(4, 8, generator=gen)
            y = torch.randint(0, 8, (4,), generator=gen)
            loss = sgd_step(model, opt, x, y)
            writer.add_scalar("loss", loss.item(), step)
        return handle.layers


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser_manylayers") / "logs"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            names = _train(root / RUN)
    finally:
        torch.set_num_threads(threads)
    assert len(names) == 2 * BLOCKS
    return root


def _rows(frame, card: str) -> tuple[list[str], list[str]]:
    groups = [
        g.get_attribute("data-group") for g in frame.query_selector_all(f"{card} [data-testid='layer-group']")
    ]
    layers = [el.inner_text() for el in frame.query_selector_all(f"{card} [data-testid='layer-label']")]
    return groups, layers


def test_statistics_heatmap_groups_300_layers(server: str, browser) -> None:
    q = urllib.parse.quote
    url = f"{server}/#insight&p.insight.run={q(RUN)}&p.insight.view=stats"
    card = "[data-testid='heatmap-card']"
    with insight_page(browser, url, height=1200) as (page, frame, watch):
        heatmap = _wait_for(
            page, lambda: frame.query_selector(f"{card} [data-testid='heatmap'] canvas"), "the heatmap", 60000
        )
        assert heatmap is not None
        # Folded by default: 15 ranges of 20 layers (0 … 19, 20 … 39, …), each one aggregated row.
        groups, layers = _rows(frame, card)
        assert groups[:2] == ["[0 … 19]", "[20 … 39]"] and len(groups) == 15, groups
        assert layers == []
        assert frame.query_selector(f"{card} [data-testid='heatmap']").get_attribute("data-layers") == "15"

        # Unfold one group: its header stays, its 20 layers show in model order.
        frame.query_selector(f"{card} [data-testid='layer-group'][data-group='[20 … 39]']").click()
        _wait_for(page, lambda: len(_rows(frame, card)[1]) == 20, "the unfolded group's layers")
        groups, layers = _rows(frame, card)
        assert layers == [str(i) for i in range(20, 40)] and len(groups) == 15
        open_group = frame.query_selector(f"{card} [data-testid='layer-group'][data-group='[20 … 39]']")
        assert open_group.get_attribute("data-open") == "1"
        # A layer in it opens its charts, as without groups.
        frame.query_selector_all(f"{card} [data-testid='layer-label']")[3].click()
        _wait_for(
            page,
            lambda: frame.query_selector("[data-testid='layer-charts'][data-layer='23']"),
            "layer 23's charts",
        )
        page.screenshot(path=str(ARTIFACTS / "insight-manylayers-stats.png"))

        # Filter by module type: only the Tanh layers (odd indices) remain, still grouped.
        frame.fill("[data-testid='stats-group-filter']", "tanh")
        _wait_for(
            page,
            lambda: "150 layers" in frame.inner_text("[data-testid='stats-group-summary']"),
            "the filter",
        )
        # Filter by name: a handful of layers, unfolded.
        frame.fill("[data-testid='stats-group-filter']", "29")
        _wait_for(
            page,
            lambda: (
                _rows(frame, card)[1]
                == ["29", "129", "229", "290", "291", "292", "293", "294", "295", "296", "297", "298", "299"]
            ),
            "the name filter",
        )
        assert watch.errors == [], watch.errors
        assert watch.dialogs == []


def test_gradient_view_groups_300_layers(server: str, browser) -> None:
    q = urllib.parse.quote
    url = f"{server}/#insight&p.insight.run={q(RUN)}&p.insight.view=grads"
    card = "[data-testid='grad-heatmap-card']"
    with insight_page(browser, url, height=1600) as (page, frame, watch):
        chart = _wait_for(
            page, lambda: frame.query_selector("[data-testid='gradflow-chart']"), "the flow chart", 60000
        )
        # One bar per folded group of Linear layers; the bars are drawn.
        assert chart.get_attribute("data-layers") == "15" and chart.get_attribute("data-groups") == "15"
        _wait_for(
            page,
            lambda: frame.evaluate(CANVAS_INK, "[data-testid='gradflow-chart']") > 500,
            "bars on the flow chart",
        )
        # Its legend is one line, not a column squeezed beside the plot.
        legend = frame.query_selector("[data-testid='gradflow-chart'] .u-legend").bounding_box()
        assert legend["height"] < 60 and legend["width"] > 200, legend

        groups, layers = _rows(frame, card)
        assert len(groups) == 15 and layers == []
        # Unfolding a group from the heatmap shows its 10 Linear layers there and 10 bars in the chart.
        frame.query_selector(f"{card} [data-testid='layer-group'][data-group='[0 … 19]']").click()
        _wait_for(
            page, lambda: _rows(frame, card)[1] == [str(i) for i in range(0, 20, 2)], "the unfolded group"
        )
        _wait_for(
            page, lambda: chart.get_attribute("data-layers") == "24", "the chart's bars of the unfolded group"
        )
        page.screenshot(path=str(ARTIFACTS / "insight-manylayers-grads.png"))

        # The filter narrows every card of the view.
        frame.fill("[data-testid='grads-group-filter']", "14")
        _wait_for(
            page,
            lambda: _rows(frame, card)[1] == ["14", "114", "140", "142", "144", "146", "148", "214"],
            "the name filter",
        )
        assert chart.get_attribute("data-layers") == "8"
        assert watch.errors == [], watch.errors
        assert watch.dialogs == []
