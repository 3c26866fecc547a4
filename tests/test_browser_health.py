"""End to end: transformer health in the Insight tab's statistics view, in headless Chromium against a
real `tensorboard` process.

A token model whose `plant` layer multiplies one hidden channel by 1000 from a known step on: the
"Transformer health" card lists a massive-activation alert for that layer from that step, naming the
channel; its link selects the layer, whose charts add the peak-to-RMS ratio and the massive count; the
heatmap's picker offers both health numbers; raising the threshold in the card clears the alert and goes
into the deep link, which restores it. Nothing is logged to the console. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
import torch
from attention_models import TinyViT
from test_browser import (  # also skips this module when playwright/torch are missing
    ARTIFACTS,
    PageWatch,
    _wait_for,
    goto_insight,
    insight_page,
)
from test_browser import pytestmark as browser_marks
from test_cam_recording import probe_batch as attention_probe
from test_cam_recording import train as train_vit
from test_health import CHANNEL, PLANT_STEP, TokenModel, train

from tb_plugin_insight import InsightWriter

pytestmark = browser_marks

RUN = "tokens"
ATTN_RUN = "vit"
CARD = '[data-testid="health-alerts"]'
MASSIVE = f'{CARD} [data-testid="health-alert"][data-kind="massive_activations"][data-layer="plant"]'


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser_health") / "logs"
    with torch.random.fork_rng(devices=[]):
        train(TokenModel(), root / RUN)
        torch.manual_seed(0)
        x, labels = attention_probe()
        with InsightWriter(str(root / ATTN_RUN)) as writer:
            train_vit(TinyViT(fused=True), writer, 3, probe=(x, labels), cam_every=1)
    return root


def test_health_card(server: str, browser) -> None:
    url = f"{server}/#insight&p.insight.run={urllib.parse.quote(RUN)}&p.insight.view=stats"
    with insight_page(browser, url, height=1400) as (page, frame, watch):
        alert = _wait_for(page, lambda: frame.query_selector(MASSIVE), "the massive-activation alert")
        assert alert.get_attribute("data-first-step") == str(PLANT_STEP)
        text = alert.inner_text()
        assert f"from step {PLANT_STEP}" in text and f"channel {CHANNEL}" in text, text
        kinds = {
            a.get_attribute("data-kind")
            for a in frame.query_selector_all(f'{CARD} [data-testid="health-alert"]')
        }
        assert kinds == {"massive_activations"}, kinds

        # The picker offers both health numbers; the heatmap shows the massive count.
        options = frame.eval_on_selector_all(
            '[data-testid="stat-select"] option', "els => els.map(e => e.value)"
        )
        assert {"peakToRms", "massiveCount"} <= set(options), options
        frame.select_option('[data-testid="stat-select"]', "massiveCount")
        _wait_for(
            page,
            lambda: (
                (el := frame.query_selector('[data-testid="heatmap"]'))
                and el.get_attribute("data-stat") == "massiveCount"
            ),
            "the massive-count heatmap",
        )

        # The alert's link selects the layer; its charts add the health numbers.
        alert.query_selector('[data-testid="health-alert-layer"]').click()
        _wait_for(
            page,
            lambda: frame.query_selector(
                '[data-testid="layer-charts"][data-layer="plant"] [data-chart="massiveCount"]'
            ),
            "the layer's massive-count chart",
        )
        assert frame.query_selector('[data-testid="layer-charts"] [data-chart="peakToRms"]')
        assert f"channel {CHANNEL}" in frame.inner_text(
            '[data-testid="layer-charts"] [data-chart="massiveCount"]'
        )
        page.screenshot(path=str(ARTIFACTS / "insight-health.png"), full_page=True)

        # A higher threshold clears the alert; it goes into the deep link.
        box = f'{CARD} [data-testid="health-threshold-massive_ratio"]'
        frame.fill(box, "100000")
        frame.press(box, "Enter")
        _wait_for(page, lambda: frame.query_selector('[data-testid="health-alerts-none"]'), "no alerts")
        _wait_for(
            page, lambda: "p.insight.health.massive=100000" in page.evaluate("location.hash"), "URL threshold"
        )

        # A bad value is not sent (the alerts stay as they are).
        frame.fill(box, "0.5")
        frame.press(box, "Enter")
        page.wait_for_timeout(300)
        assert frame.query_selector('[data-testid="health-alerts-none"]')

        link = page.evaluate("location.hash")
        other = page.context.new_page()
        other_watch = PageWatch(other)
        oframe = goto_insight(other, f"{server}/{link}", "the Insight iframe (deep link)")
        _wait_for(
            other, lambda: oframe.query_selector('[data-testid="health-alerts-none"]'), "the linked threshold"
        )
        assert oframe.input_value(box) == "100000"
        assert not other_watch.errors, "console errors:\n" + "\n".join(other_watch.errors)
        other.close()

        assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)


def test_health_card_lists_attention_alerts(server: str, browser) -> None:
    """Attention entropy collapse in the same card: per head, from its first step, with its threshold
    adjustable in the card (a near-uniform young model collapses nothing at the default 0.1)."""
    url = f"{server}/#insight&p.insight.run={ATTN_RUN}&p.insight.view=stats"
    collapse = f'{CARD} [data-testid="health-alert"][data-kind="entropy_collapse"]'
    with insight_page(browser, url, height=1400) as (page, frame, watch):
        box = f'{CARD} [data-testid="health-threshold-entropy_min"]'
        _wait_for(page, lambda: frame.query_selector(box), "the entropy threshold")
        answered = f'{CARD} [data-testid="health-alerts-none"], {CARD} [data-testid="health-alert"]'
        _wait_for(page, lambda: frame.query_selector(answered), "the alerts")
        assert not frame.query_selector(collapse)
        frame.fill(box, "0.999")
        frame.press(box, "Enter")
        _wait_for(page, lambda: len(frame.query_selector_all(collapse)) == 4, "a collapse alert per head")
        texts = [a.inner_text() for a in frame.query_selector_all(collapse)]
        assert all("from step 0" in t and "head" in t for t in texts), texts
        assert {a.get_attribute("data-layer") for a in frame.query_selector_all(collapse)} == {
            "blocks.0.attn",
            "blocks.1.attn",
        }
        _wait_for(
            page,
            lambda: "p.insight.health.entropyMin=0.999" in page.evaluate("location.hash"),
            "URL threshold",
        )
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)
