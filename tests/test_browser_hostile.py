"""Hostile names in the tab: a run, a layer and class names that are HTML/JavaScript payloads are shown as
text in every view (activations, layer charts, gradients, CAMs) and nothing of them executes.

Each payload, if it ran, would set `__pwned` on the plugin frame or on TensorBoard's page, or open a dialog.
"""

from __future__ import annotations

import urllib.parse

import pytest
import torch
from helpers import random_batch, sgd_step
from test_browser import (  # also skips this module when playwright/torch are missing
    ARTIFACTS,
    _insight_frame,
    _tensorboard,
    _wait_for,
    insight_page,
)
from test_browser import pytestmark as browser_marks
from torch import nn

from tb_plugin_insight import InsightWriter

pytestmark = browser_marks

MARK = "window.__pwned=1;try{parent.__pwned=1;top.__pwned=1}catch(e){}"
# No '"' or backslash in the run name: TensorBoard's Rust data server cannot read images of such runs
# (the plugin answers 422 with a message saying so; tests/test_fuzz_routes.py checks that).
RUN = f"<img src=x onerror={MARK}>"
LAYER = "<svg/onload=alert(2)>"  # module names cannot contain "."; an alert would show up as a dialog
CLASSES = [f"<script>{MARK}</script>", "<b>bold</b>", "javascript:alert(1)"]


def hostile_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("conv", nn.Conv2d(3, 4, 3, padding=1))
    model.add_module(LAYER, nn.ReLU())
    model.add_module("flat", nn.Flatten())
    model.add_module("head", nn.Linear(4 * 8 * 8, 3))
    return model


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hostile") / "logs"
    model = hostile_model()
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(3, 3, 8, 8, generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with InsightWriter(str(root / RUN)) as writer:
        writer.watch(
            model, every=1, probe=(probe, torch.tensor([0, 1, 2])), class_names=CLASSES, cam_every=1,
            cam_layer="conv",
        )  # fmt: skip
        for _ in range(3):
            sgd_step(model, opt, *random_batch(gen, batch=4))
    with _tensorboard(root) as base:
        yield base


def assert_inert(page, frame) -> None:
    assert page.evaluate("window.__pwned") is None and frame.evaluate("window.__pwned") is None
    injected = frame.evaluate(
        """() => [...document.querySelectorAll("*")]
              .filter((el) => [...el.attributes].some((a) => a.name.startsWith("on"))
                || (el.tagName === "IMG" && el.getAttribute("src") === "x")
                || (el.tagName === "SCRIPT" && /pwned|alert/.test(el.textContent)))
              .map((el) => el.outerHTML.slice(0, 120))"""
    )
    assert injected == [], injected


def test_hostile_names_are_text_in_every_view(server: str, browser) -> None:
    q = urllib.parse.quote
    url = f"{server}/#insight&p.insight.run={q(RUN)}&p.insight.view=stats"
    with insight_page(browser, url) as (page, frame, watch):
        _wait_for(page, lambda: frame.query_selector('[data-testid="heatmap"]'), "the heatmap")
        names = [el.inner_text() for el in frame.query_selector_all('[data-testid="run-name"]')]
        assert RUN in names
        labels = [el.inner_text() for el in frame.query_selector_all('[data-testid="layer-label"]')]
        assert LAYER in labels, labels
        frame.get_by_text(LAYER, exact=True).first.click()
        _wait_for(
            page,
            lambda: frame.query_selector(f'[data-testid="layer-charts"][data-layer="{LAYER}"]'),
            "the hostile layer's charts",
        )
        assert LAYER in frame.inner_text('[data-testid="layer-charts"]')
        assert_inert(page, frame)

        page.goto(f"{server}/#insight&p.insight.run={q(RUN)}&p.insight.view=grads")
        page.reload()
        frame = _wait_for(page, lambda: _insight_frame(page), "the Insight iframe")
        _wait_for(page, lambda: frame.query_selector('[data-testid="gradflow-chart"]'), "the gradient view")
        _wait_for(page, lambda: RUN in frame.inner_text("body"), "the run name in the gradient view")
        assert_inert(page, frame)

        page.goto(f"{server}/#insight&p.insight.run={q(RUN)}&p.insight.view=cam")
        page.reload()
        frame = _wait_for(page, lambda: _insight_frame(page), "the Insight iframe")
        _wait_for(page, lambda: frame.query_selector('[data-testid="true-label"]'), "the CAM grid's labels")
        trues = [el.inner_text() for el in frame.query_selector_all('[data-testid="true-label"]')]
        assert any(CLASSES[0] in t for t in trues) and any(CLASSES[1] in t for t in trues), trues
        page.wait_for_timeout(500)  # give any injected handler the chance to run
        assert_inert(page, frame)
        page.screenshot(path=str(ARTIFACTS / "insight-hostile-names.png"))
        assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
        unexpected = [e for e in watch.errors if "favicon" not in e]
        assert not unexpected, "console errors:\n" + "\n".join(unexpected)
