"""End to end: the CAM view says which layer was explained and why, in headless Chromium against a real
`tensorboard` process. Two runs written through `InsightWriter.watch`: a ViT with a class token (the
layer chosen automatically: the input of its last attention) and a channels-last model whose layer is
given with `cam_layer=` and `cam_layout="nhwc"`."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import cam_zoo as zoo
import pytest
import torch
from test_browser import (  # also skips this module when playwright/torch are missing
    ARTIFACTS,
    _wait_for,
    insight_page,
)
from test_browser import pytestmark as browser_marks
from torch import nn

from tb_plugin_insight import InsightWriter

pytestmark = browser_marks  # browser, slow, and skipped without the tensorboard executable

AUTO_RUN = "vit_auto"
GIVEN_RUN = "nhwc_given"
REASON = '[data-testid="cam-layer-reason"]'


def _train(run_dir: Path, model: nn.Module, **watch: object) -> None:
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(4, 3, zoo.SIZE, zoo.SIZE, generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with InsightWriter(str(run_dir)) as writer:
        writer.watch(model, every=1, probe=(probe, torch.tensor([0, 1, 2, 3])), cam_every=1, **watch)
        for _ in range(2):
            x = torch.randn(8, 3, zoo.SIZE, zoo.SIZE, generator=gen)
            loss = nn.functional.cross_entropy(model(x), torch.randint(0, zoo.CLASSES, (8,), generator=gen))
            opt.zero_grad()
            loss.backward()
            opt.step()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser_cam_layer") / "logs"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        _train(root / AUTO_RUN, zoo.OwnViT())
        _train(root / GIVEN_RUN, zoo.ChannelsLastNet(), cam_layer="norm", cam_layout="nhwc")
    return root


def _reason(frame, run: str, page) -> str:
    def shown() -> str:
        grid = frame.query_selector('[data-testid="overlay-grid"]')
        el = frame.query_selector(REASON)
        if not grid or grid.get_attribute("data-run") != run or not el:
            return ""
        return el.inner_text()

    return _wait_for(page, shown, f"the layer reason of run {run}")


def test_cam_view_says_which_layer_and_why(server: str, browser) -> None:
    for run, layer, words in (
        (AUTO_RUN, "blocks.1.norm1", "input of the last attention 'blocks.1.attn'"),
        (GIVEN_RUN, "norm", "given as cam_layer= (read as channels last (N, H, W, C))"),
    ):
        url = f"{server}/#insight&p.insight.run={urllib.parse.quote(run)}"
        with insight_page(browser, url) as (page, frame, watch):
            _wait_for(page, lambda: frame.query_selector('[data-testid="view-cam"]'), "the CAM view").click()
            text = _reason(frame, run, page)
            assert "Why this layer:" in text and words in text, text
            assert frame.eval_on_selector('[data-testid="cam-layer"]', "(el) => el.value") == layer
            page.screenshot(path=str(ARTIFACTS / f"insight-cam-layer-reason-{run}.png"))
            assert not watch.errors, watch.errors
