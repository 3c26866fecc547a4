"""End to end: the Model view (model table, unit alerts, layer panel) in headless Chromium against a
real `tensorboard` process.

A ShapesCNN run with one ReLU channel killed on purpose (its BatchNorm scale 0 and bias -100), CAMs of
a probe, and a module with an HTML name. Opens the tab on the Model view by deep link: the table lists
every module (the hostile name as text), folds and unfolds by depth and filters; the dead-channel alert
names the killed layer and selects it; clicking a table row opens that layer's panel with its
statistics, its histogram and its feature maps, each at two different steps; the CAM link of the CAM
layer opens the CAM view. A second run recorded without a model table lists its recorded layers
instead, and they open too.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
from helpers import train_on_slices
from test_browser import (  # also skips this module when playwright/torch are missing
    ARTIFACTS,
    _tensorboard,
    _wait_for,
    insight_page,
)
from test_browser import pytestmark as browser_marks
from test_browser_fmaps import TILE_HASH
from torch import nn

from demo.models import ShapesCNN
from demo.shapes import ShapesData, make_shapes
from tb_plugin_insight import InsightWriter

pytestmark = browser_marks

RUN = "layers"
FLAT_RUN = "no_table"
STEPS, EVERY = 6, 2
HOSTILE = "<b>x</b>"
DEAD_LAYER = "features.relu1"
OPENED = "features.relu2"


def _train(run_dir: Path) -> None:
    data = make_shapes(16 * STEPS, size=64, seed=3)
    probe = make_shapes(4, size=64, seed=1234)
    model = ShapesCNN(width=4, seed=0)
    model.add_module(HOSTILE, nn.Identity())  # never called: no output shape
    with torch.no_grad():
        model.features.bn1.weight[0] = 0.0
        model.features.bn1.bias[0] = -100.0  # relu1's channel 0 never fires
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with InsightWriter(str(run_dir)) as writer:
        writer.watch(
            model, every=EVERY, probe=(probe.images, probe.labels), class_names=list(ShapesData.CLASSES),
            cam_every=EVERY, maps_every=EVERY, histogram_every=EVERY,
        )  # fmt: skip
        train_on_slices(model, opt, data.images, data.labels, STEPS)


def _train_without_table(run_dir: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with InsightWriter(str(run_dir)) as writer:
        writer.watch(model, every=1, model_table=False)
        for _ in range(2):
            model(torch.randn(5, 4))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("browser_layerview") / "logs"
    with torch.random.fork_rng(devices=[]):
        _train(root / RUN)
        _train_without_table(root / FLAT_RUN)
    with _tensorboard(root) as base:
        yield base


def _rows(frame) -> list[str]:
    return [el.get_attribute("data-name") for el in frame.query_selector_all('[data-testid="model-row"]')]


def _hist_step(frame) -> int | None:
    label = frame.query_selector(
        f'[data-testid="layer-panel"][data-layer="{OPENED}"] [data-testid="hist-step-label"]'
    )
    return int(label.get_attribute("data-step")) if label else None


def _served_histograms(server: str) -> dict:
    query = urllib.parse.urlencode({"run": RUN, "layer": OPENED})
    with urllib.request.urlopen(f"{server}/data/plugin/insight/histograms?{query}", timeout=10) as resp:
        return json.loads(resp.read())


def _shown_counts(frame) -> list[int]:
    text = frame.query_selector('[data-testid="hist-step-summary"]').get_attribute("data-counts")
    return [int(v) for v in text.split(",")]


def _fmap_grid_at(frame, selector: str, step: int):
    el = frame.query_selector(selector)
    if el and el.get_attribute("data-step") == str(step) and el.get_attribute("data-pending") == "0":
        return el
    return None


def test_model_view(server: str, browser) -> None:
    url = f"{server}/#insight&p.insight.view=model&p.insight.run={RUN}"
    with insight_page(browser, url, height=1300) as (page, frame, watch):
        _wait_for(page, lambda: len(_rows(frame)) > 3, "the model table")

        # Default depth 2: the model, its children and grandchildren; the hostile name is text.
        rows = _rows(frame)
        assert rows[:3] == ["", "features", "features.conv1"] and HOSTILE in rows
        names = [el.inner_text() for el in frame.query_selector_all('[data-testid="model-row-name"]')]
        assert HOSTILE in names and frame.query_selector("tbody b") is None
        first_conv = frame.query_selector(
            '[data-testid="model-row"][data-name="features.conv1"]'
        ).inner_text()
        assert "[16, 4, 64, 64]" in first_conv and "108" in first_conv  # output shape, 3*4*3*3 weights

        frame.click(f'[data-testid="model-row"][data-name="{OPENED}"]')
        _wait_for(page, lambda: frame.query_selector('[data-testid="layer-histogram"] canvas'), "a histogram")
        page.mouse.move(1, 1)
        page.screenshot(path=str(ARTIFACTS / "insight-model-view.png"))

        # Fold all, unfold one row, filter.
        frame.click('[data-testid="model-fold-all"]')
        _wait_for(
            page,
            lambda: _rows(frame) == ["", "features", "gap", "flatten", "classifier", HOSTILE],
            "folded rows",
        )
        frame.click('[data-testid="model-row"][data-name="features"] [data-testid="model-fold"]')
        _wait_for(page, lambda: "features.relu2" in _rows(frame), "features unfolded")
        frame.fill('[data-testid="model-filter"]', "relu_last")
        _wait_for(page, lambda: _rows(frame) == ["", "features", "features.relu_last"], "filtered rows")
        frame.fill('[data-testid="model-filter"]', "")

        # The dead channel shows up as an alert from the first recorded step; its link selects the layer.
        alert = _wait_for(
            page,
            lambda: frame.query_selector(
                f'[data-testid="unit-alert"][data-kind="dead"][data-layer="{DEAD_LAYER}"]'
            ),
            "the dead-channel alert",
        )
        assert "since step 0" in alert.inner_text()
        alert.query_selector('[data-testid="unit-alert-layer"]').click()
        _wait_for(
            page,
            lambda: frame.query_selector(f'[data-testid="layer-panel"][data-layer="{DEAD_LAYER}"]'),
            "panel",
        )
        units = _wait_for(
            page, lambda: frame.query_selector('[data-testid="layer-units"] .uplot'), "units chart"
        )
        assert units is not None

        # Click a row of the table: that layer's panel with its statistics and histogram.
        frame.click(f'[data-testid="model-row"][data-name="{OPENED}"]')
        _wait_for(
            page,
            lambda: frame.query_selector(f'[data-testid="layer-charts"][data-layer="{OPENED}"] .uplot'),
            "the layer's statistics",
        )
        heat = _wait_for(
            page,
            lambda: frame.query_selector(
                f'[data-testid="layer-histogram"][data-layer="{OPENED}"] [data-testid="histogram-heatmap"]'
            ),
            "the layer's histogram",
        )
        assert (
            heat.get_attribute("data-steps") == str(STEPS // EVERY)
            and heat.get_attribute("data-bins") == "32"
        )
        assert _hist_step(frame) == STEPS - EVERY  # the last recorded step
        sub = frame.query_selector('[data-testid="layer-histogram"] .ins-card-sub').inner_text()
        assert f"every {EVERY} steps" in sub  # the cadence (watch(histogram_every=EVERY)) is named
        served = _served_histograms(server)
        assert _shown_counts(frame) == served["counts"][-1]
        assert f"p.insight.layer={urllib.parse.quote(OPENED)}" in page.evaluate("location.hash")
        assert "p.insight.view=" not in page.evaluate("location.hash")  # the Model view is the default
        frame.query_selector('[data-testid="layer-histogram"]').screenshot(
            path=str(ARTIFACTS / "insight-layer-histogram.png")
        )

        # Another step of the same histogram (slider to the first recorded step).
        frame.fill('[data-testid="hist-step-slider"]', "0")
        _wait_for(page, lambda: _hist_step(frame) == 0, "the histogram at step 0")
        assert _shown_counts(frame) == served["counts"][0] != served["counts"][-1]
        assert frame.query_selector('[data-testid="hist-step-summary"]').inner_text().startswith("in range")
        total = int(frame.query_selector('[data-testid="hist-step-summary"]').get_attribute("data-total"))
        assert 0 < total <= 16 * 8 * 32 * 32  # relu2's output: batch 16, 8 channels, 32 x 32

        # The same panel shows the layer's feature maps of the probe, at two different steps.
        fmaps = '[data-testid="layer-fmaps"]'
        grid = f'{fmaps} [data-testid="fmap-grid"]'
        cell = f'{grid} [data-testid="fmap-row"][data-image="0"] [data-testid="fmap-cell"][data-column="0"]'
        last = STEPS - EVERY
        _wait_for(page, lambda: _fmap_grid_at(frame, grid, last), "the layer's feature maps")
        at_last = _wait_for(page, lambda: frame.evaluate(TILE_HASH, cell), "a drawn feature map")
        frame.fill(f'{fmaps} [data-testid="fmap-step-slider"]', "0")
        _wait_for(page, lambda: _fmap_grid_at(frame, grid, 0), "the layer's feature maps at step 0")
        _wait_for(page, lambda: frame.get_attribute(cell, "data-step") == "0", "the cell at step 0")
        assert frame.evaluate(TILE_HASH, cell) != at_last, "the feature map did not change with the step"

        # The CAM layer's panel links to its CAMs.
        frame.click('[data-testid="model-row"][data-name="features.relu_last"]')
        link = _wait_for(
            page, lambda: frame.query_selector('[data-testid="layer-cam-link"] button'), "CAM link"
        )
        link.click()
        _wait_for(page, lambda: frame.query_selector('main[data-view="cam"]'), "the CAM view")

        # A run without a model table lists its recorded layers, which still open their panels.
        frame.click('[data-testid="view-model"]')
        frame.get_by_text(FLAT_RUN, exact=True).first.click()
        _wait_for(
            page, lambda: frame.query_selector('[data-testid="model-table-missing"]'), "the fallback note"
        )
        _wait_for(page, lambda: _rows(frame) == ["0", "1", "2"], "the recorded layers")
        frame.click('[data-testid="model-row"][data-name="1"]')
        _wait_for(
            page,
            lambda: frame.query_selector(
                '[data-testid="layer-histogram"][data-layer="1"] [data-testid="histogram-heatmap"]'
            ),
            "the flat run's histogram",
        )

        assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)
