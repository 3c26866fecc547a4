"""End to end: the gradient noise card of the Gradients view, for a run recorded by 2 DDP ranks (gloo, CPU),
in headless Chromium against a real `tensorboard` process; no console errors. Screenshot in
test-artifacts/."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from test_browser import ARTIFACTS, _wait_for, insight_page  # also skips this module without playwright
from test_browser import pytestmark as browser_marks
from test_dist_grads import launch

pytestmark = browser_marks


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return launch(tmp_path_factory.mktemp("browser_dist"), ["ddp"])


def test_noise_card_shows_the_smoothed_noise_scale(server: str, browser) -> None:
    url = f"{server}/#insight&p.insight.run={urllib.parse.quote('ddp')}&p.insight.view=grads"
    with insight_page(browser, url, height=1400) as (page, frame, watch):
        card = _wait_for(page, lambda: frame.query_selector('[data-testid="grad-noise"]'), "the noise card")
        help_text = card.query_selector('[data-testid="grad-noise-help"]').inner_text()
        assert "tr(Σ)/|G|²" in help_text and "moving averages" in help_text
        assert "batch of all ranks: 6" in card.inner_text()
        _wait_for(page, lambda: card.query_selector("canvas"), "the noise chart")
        card.scroll_into_view_if_needed()
        ARTIFACTS.mkdir(exist_ok=True)
        card.screenshot(path=str(ARTIFACTS / "gradient-noise-card.png"))
        assert not watch.errors, watch.errors
