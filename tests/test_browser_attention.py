"""End to end: the Insight tab's Attention view in headless Chromium against a real `tensorboard`.

Writes a run through the public API (a small ViT on F.scaled_dot_product_attention, `watch(probe=...)`
with attention every 2 steps), opens the Attention view and drives it: one cell per module × head, the
step slider redraws the cells (drawn on the probe image, or alone), a click on a patch shows where
that query attends (and Clear goes back), the health charts and alerts follow the thresholds typed
in, and nothing is logged to the console. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
import torch
from attention_models import TinyViT
from test_browser import ARTIFACTS, _wait_for, insight_page  # also skips this module without playwright
from test_browser import pytestmark as browser_marks
from test_browser_cam import TILE_HASH
from test_cam_recording import probe_batch, train

from tb_plugin_insight import InsightWriter

pytestmark = browser_marks

RUN = "vit"


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser_attention") / "logs"
    x, labels = probe_batch()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with InsightWriter(str(root / RUN)) as writer:
            train(TinyViT(fused=True), writer, 5, probe=(x, labels), cam_every=0, attention_every=2)
    return root


def _hash(frame, selector: str):
    return frame.evaluate(TILE_HASH, selector)


def test_attention_view(server: str, browser) -> None:
    url = f"{server}/#insight&p.insight.run={urllib.parse.quote(RUN)}"
    with insight_page(browser, url) as (page, frame, watch):
        _wait_for(page, lambda: frame.query_selector('[data-testid="view-attn"]'), "the view entry").click()
        _wait_for(page, lambda: frame.query_selector('[data-testid="attn-grid"]'), "the grid")
        cells = frame.query_selector_all('[data-testid^="attn-cell-"]')
        assert len(cells) == 4  # 2 blocks x 2 heads
        cell = '[data-testid="attn-cell-1-0"]'
        _wait_for(
            page, lambda: frame.query_selector('[data-testid="attn-on-image"]'), "the probe image loaded"
        )
        page.wait_for_timeout(300)  # the image's onload redraw
        last = _wait_for(page, lambda: _hash(frame, cell), "the cell drawn on the image")
        assert "class token" in frame.inner_text('[data-testid="attn-query"]')

        slider = frame.query_selector('[data-testid="attn-step-slider"]')
        assert slider.get_attribute("max") == "2"  # steps 0, 2, 4
        slider.fill("0")
        label = '[data-testid="attn-step-label"]'
        _wait_for(page, lambda: frame.get_attribute(label, "data-step") == "0", "step 0")
        first = _wait_for(page, lambda: (h := _hash(frame, cell)) != last and h, "another step's pixels")
        assert first != last

        frame.click(cell, position={"x": 80, "y": 80})  # the bottom-right patch of the 3 x 3 grid
        _wait_for(page, lambda: "patch (2, 2)" in frame.inner_text('[data-testid="attn-query"]'), "the query")
        _wait_for(page, lambda: _hash(frame, cell) != first, "that query's attention")
        page.screenshot(path=str(ARTIFACTS / "insight-attention.png"))
        frame.click('[data-testid="attn-query-clear"]')
        _wait_for(page, lambda: _hash(frame, cell) == first, "the class token's attention again")
        frame.click('[data-testid="attn-on-image"]')  # attention alone, without the probe image under it
        _wait_for(page, lambda: _hash(frame, cell) != first, "the cell without the image")

        _wait_for(
            page, lambda: frame.query_selector('[data-testid="attn-entropy-0"] polyline'), "entropy chart"
        )
        assert frame.query_selector('[data-testid="attn-alerts-none"]')
        frame.fill('[data-testid="attn-entropy-min"]', "0.9999")
        frame.press('[data-testid="attn-entropy-min"]', "Enter")
        alerts = _wait_for(page, lambda: frame.query_selector_all('[data-testid="attn-alert"]'), "alerts")
        assert all("entropy collapse" in a.inner_text() for a in alerts)
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)
