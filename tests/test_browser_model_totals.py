"""End to end: torchinfo's columns and totals in the Model view, and FullGrad's whole-model CAMs in the
CAM view, in headless Chromium against a real `tensorboard`.

A ShapesCNN run watched with its model table (the default) and FullGrad CAMs without a layer: the table
shows a Kernel shape and a Mult-Adds column (humanised like torchinfo, "1.23 M") and the totals block
under it with the values the `/model` route serves; a run recorded without a model table shows neither.
The CAM view names FullGrad's layer "whole model" and its method "FullGrad". No console errors.
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
from test_browser_layerview import FLAT_RUN, _rows, _train_without_table

from demo.models import ShapesCNN
from demo.shapes import ShapesData, make_shapes
from tb_plugin_insight import InsightWriter

pytestmark = browser_marks

RUN = "torchinfo"
STEPS, EVERY = 4, 2


def _train(run_dir: Path) -> None:
    data = make_shapes(8 * STEPS, size=64, seed=3)
    probe = make_shapes(4, size=64, seed=1234)
    model = ShapesCNN(width=4, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with InsightWriter(str(run_dir)) as writer:
        writer.watch(
            model, every=EVERY, probe=(probe.images, probe.labels), class_names=list(ShapesData.CLASSES),
            cam_every=EVERY, cam_methods=["fullgrad"],
        )  # fmt: skip
        train_on_slices(model, opt, data.images, data.labels, STEPS)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("browser_model_totals") / "logs"
    with torch.random.fork_rng(devices=[]):
        _train(root / RUN)
        _train_without_table(root / FLAT_RUN)
    with _tensorboard(root) as base:
        yield base


def _served_model(server: str) -> dict:
    query = urllib.parse.urlencode({"run": RUN})
    with urllib.request.urlopen(f"{server}/data/plugin/insight/model?{query}", timeout=10) as resp:
        return json.loads(resp.read())


def _humanised(n: int) -> str:
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n) if n else "–"


def test_model_table_shows_torchinfo_columns_and_totals(server: str, browser) -> None:
    served = _served_model(server)
    totals = served["totals"]
    url = f"{server}/#insight&p.insight.view=model&p.insight.run={RUN}"
    with insight_page(browser, url, height=1200) as (page, frame, watch):
        _wait_for(page, lambda: len(_rows(frame)) > 3, "the model table")
        heads = [h.inner_text() for h in frame.query_selector_all('[data-testid="model-table"] th')]
        assert "Mult-Adds" in heads and "Kernel shape" in heads, heads
        conv = next(r for r in served["rows"] if r["name"] == "features.conv1")
        row = '[data-testid="model-row"][data-name="features.conv1"]'
        assert conv["multAdds"] > 0
        assert frame.inner_text(f'{row} [data-testid="model-multadds"]') == _humanised(conv["multAdds"])
        assert frame.inner_text(f'{row} [data-testid="model-kernel"]') == "[3, 3]"
        relu = '[data-testid="model-row"][data-name="features.relu1"] [data-testid="model-kernel"]'
        assert frame.inner_text(relu) == ""  # no kernel: nothing, not "undefined"

        block = _wait_for(page, lambda: frame.query_selector('[data-testid="model-totals"]'), "the totals")
        entries = block.query_selector_all('[data-testid="model-total"]')
        lines = [line.inner_text().split("\n") for line in entries]
        shown = {label.strip(): value.strip() for label, value in lines}
        assert shown["Total params"] == f"{totals['totalParams']:,}"
        assert shown["Trainable params"] == f"{totals['trainableParams']:,}"
        assert shown["Non-trainable params"] == f"{totals['nonTrainableParams']:,}"
        assert shown["Total mult-adds (M)"] == f"{totals['totalMultAdds'] / 1e6:.2f}"
        assert shown["Input size (MB)"] == f"{totals['inputSizeBytes'] / 1e6:.2f}"
        assert shown["Forward/backward pass size (MB)"] == f"{totals['forwardBackwardSizeBytes'] / 1e6:.2f}"
        assert shown["Params size (MB)"] == f"{totals['paramsSizeBytes'] / 1e6:.2f}"
        assert shown["Estimated total size (MB)"] == f"{totals['estimatedTotalSizeBytes'] / 1e6:.2f}"
        assert "undefined" not in frame.inner_text('[data-testid="model-table-card"]')
        frame.query_selector('[data-testid="model-table-card"]').screenshot(
            path=str(ARTIFACTS / "insight-model-totals.png")
        )

        # A run without a model table: its recorded layers, without torchinfo's columns or totals.
        frame.get_by_text(FLAT_RUN, exact=True).first.click()
        _wait_for(page, lambda: _rows(frame) == ["0", "1", "2"], "the recorded layers")
        heads = [h.inner_text() for h in frame.query_selector_all('[data-testid="model-table"] th')]
        assert "Mult-Adds" not in heads and frame.query_selector('[data-testid="model-totals"]') is None
        assert "undefined" not in frame.inner_text('[data-testid="model-table-card"]')
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)


def test_fullgrad_cams_are_of_the_whole_model(server: str, browser) -> None:
    url = f"{server}/#insight&p.insight.view=cam&p.insight.run={RUN}"
    with insight_page(browser, url) as (page, frame, watch):
        _wait_for(
            page,
            lambda: frame.query_selector('[data-testid="overlay-grid"][data-pending="0"]'),
            "the FullGrad overlays",
        )
        sub = frame.inner_text('[data-testid="cam-card"] .ins-card-sub')
        assert sub.endswith("· whole model"), sub
        layer = frame.eval_on_selector(
            '[data-testid="cam-layer"]', "(el) => el.options[el.selectedIndex].textContent"
        )
        assert layer == "whole model"
        method = frame.query_selector('[data-testid="cam-method"][value="fullgrad"]')
        assert method is not None and method.is_checked()
        assert "FullGrad" in frame.inner_text('[data-testid="cam-methods"]')
        page.screenshot(path=str(ARTIFACTS / "insight-fullgrad.png"))
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)
        assert not watch.dialogs, watch.dialogs
