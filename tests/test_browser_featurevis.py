"""End to end: feature visualisations in the Insight tab's Feature maps view, in headless Chromium
against a real `tensorboard`.

Writes a run through the public API (`watch(model, probe=..., maps_every=4, featurevis_every=4)` on the
demo's ShapesCNN, a few training steps), opens the Feature maps view and checks the feature-
visualisation grid beside the layer's feature maps: one tile per recorded channel, labelled with its
channel index in the maps' column order, drawn from the recorded strip; the step player shows other
pixels at another step; nothing is logged to the console. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
import torch
from test_browser import (  # also skips this module when playwright/torch are missing
    ARTIFACTS,
    _wait_for,
    insight_page,
)
from test_browser import pytestmark as browser_marks
from test_browser_cam import TILE_HASH, _train

pytestmark = browser_marks

RUN = "featurevis"
LAYER = "features.relu_last"
K_MAPS, K_VIS = 4, 3
STEPS, EVERY = 9, 4  # maps and visualisations at 0, 4, 8
VIS_STEPS = [0, 4, 8]
PANEL = '[data-testid="fvis-panel"]'


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser_featurevis") / "logs"
    with torch.random.fork_rng(devices=[]):
        _train(
            root / RUN, STEPS, seed=0, cam_every=0, maps_every=EVERY, maps_k=K_MAPS, maps_layers=[LAYER],
            featurevis_every=EVERY, featurevis_layers=[LAYER], featurevis_channels=K_VIS, featurevis_steps=8,
        )  # fmt: skip
    return root


def _panel_at(frame, step: int):
    el = frame.query_selector(PANEL)
    if el and el.get_attribute("data-step") == str(step) and el.get_attribute("data-pending") == "0":
        return el
    return None


def _tile(j: int) -> str:
    return f'{PANEL} [data-testid="fvis-tile"]:nth-child({j + 1}) canvas'


def test_feature_visualisation_grid(server: str, browser) -> None:
    url = f"{server}/#insight&p.insight.run={urllib.parse.quote(RUN)}"
    with insight_page(browser, url) as (page, frame, watch):
        _wait_for(page, lambda: frame.query_selector('[data-testid="view-fmaps"]'), "the view entry").click()

        # The layer with feature maps and visualisations is shown first, at the last recorded step.
        panel = _wait_for(page, lambda: _panel_at(frame, VIS_STEPS[-1]), "the last step's visualisations")
        assert panel.get_attribute("data-layer") == LAYER
        assert frame.eval_on_selector('[data-testid="fmap-layer"]', "(el) => el.value") == LAYER
        tiles = frame.query_selector_all(f'{PANEL} [data-testid="fvis-tile"]')
        assert len(tiles) == K_VIS
        labels = [t.inner_text() for t in frame.query_selector_all(f'{PANEL} [data-testid="fvis-label"]')]
        # The maps' first K_VIS columns, in the same order, each tile labelled with its channel index.
        _wait_for(page, lambda: frame.query_selector('[data-testid="fmap-grid"]'), "the feature maps beside")
        heads = [h.inner_text() for h in frame.query_selector_all('[data-testid="fmap-colhead"]')]
        assert len(heads) == K_MAPS and labels == heads[:K_VIS], (labels, heads)
        assert [t.get_attribute("data-channel") for t in tiles] == [h.split()[-1] for h in heads[:K_VIS]]
        assert frame.get_attribute(f'{PANEL} [data-testid="fvis-grid"]', "data-layout") == "rgb"
        slider = frame.query_selector('[data-testid="fvis-step-slider"]')
        assert slider.get_attribute("max") == str(len(VIS_STEPS) - 1)
        assert frame.inner_text('[data-testid="fvis-step-label"]').split()[-1] == str(VIS_STEPS[-1])

        # Every tile is drawn, and differs from the others.
        hashes = [
            _wait_for(page, lambda j=j: frame.evaluate(TILE_HASH, _tile(j)), f"tile {j} drawn")
            for j in range(K_VIS)
        ]
        assert len(set(hashes)) == K_VIS, hashes
        frame.query_selector(PANEL).scroll_into_view_if_needed()
        shot = ARTIFACTS / "insight-featurevis.png"
        frame.query_selector('[data-testid="fmap-panel"]').screenshot(path=str(shot))

        # The step player: the first step shows other pixels.
        slider.fill("0")
        _wait_for(page, lambda: _panel_at(frame, 0), "the visualisations at step 0")
        assert frame.inner_text('[data-testid="fvis-step-label"]').split()[-1] == "0"
        first = _wait_for(page, lambda: frame.evaluate(TILE_HASH, _tile(0)), "tile 0 at step 0")
        assert first != hashes[0], "the visualisation did not change with the step"

        # Play moves through the steps (and loops back).
        frame.click('[data-testid="fvis-play"]')
        _wait_for(page, lambda: _panel_at(frame, VIS_STEPS[1]), "play reaching the second step")
        frame.click('[data-testid="fvis-play"]')
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)
        assert not watch.dialogs, watch.dialogs
