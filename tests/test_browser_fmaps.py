"""End to end: the Insight tab's Feature maps view in headless Chromium against a real `tensorboard`.

Writes a run through the public API (`watch(model, probe=..., maps_every=4, maps_k=K)` on the demo's
ShapesCNN, a few training steps), opens the Feature maps view and drives it: the grid shows every
probe image × the K recorded channels, the step slider shows other pixels at another step, the
channel picker narrows the columns (and names the recorded channels when given one that was not),
the colormap and the shared scale redraw, the first convolution's filters are shown as RGB kernels,
and nothing is logged to the console. Screenshots go to test-artifacts/.
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

RUN = "fmaps"
K = 4
PROBE_SIZE = 16
STEPS, EVERY = 9, 4  # maps at 0, 4, 8
MAP_STEPS = [0, 4, 8]
GRID = '[data-testid="fmap-grid"]'


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser_fmaps") / "logs"
    with torch.random.fork_rng(devices=[]):
        _train(
            root / RUN, STEPS, seed=0, cam_every=0, maps_every=EVERY, maps_k=K,
            maps_layers=["features.conv1", "features.relu2", "features.relu_last"],
        )  # fmt: skip
    return root


def _grid_at(frame, step: int):
    el = frame.query_selector(GRID)
    if el and el.get_attribute("data-step") == str(step) and el.get_attribute("data-pending") == "0":
        return el
    return None


def _cell(image: int, column: int) -> str:
    row = f'[data-testid="fmap-row"][data-image="{image}"]'
    return f'{GRID} {row} [data-testid="fmap-cell"][data-column="{column}"]'


def _hash_when_drawn(page, frame, selector: str, what: str) -> int:
    return _wait_for(page, lambda: frame.evaluate(TILE_HASH, selector), what, timeout_ms=10000)


def test_feature_maps_view(server: str, browser) -> None:
    url = f"{server}/#insight&p.insight.run={urllib.parse.quote(RUN)}"
    with insight_page(browser, url) as (page, frame, watch):
        _wait_for(page, lambda: frame.query_selector('[data-testid="view-fmaps"]'), "the view entry").click()

        # The last recorded step first: every probe image x the K recorded channels.
        grid = _wait_for(page, lambda: _grid_at(frame, MAP_STEPS[-1]), "the grid at the last step")
        layer = grid.get_attribute("data-layer")
        assert frame.eval_on_selector('[data-testid="fmap-layer"]', "(el) => el.value") == layer
        rows = frame.query_selector_all(f'{GRID} [data-testid="fmap-row"]')
        assert len(rows) == PROBE_SIZE
        assert len(frame.query_selector_all(f'{GRID} [data-testid="fmap-cell"]')) == PROBE_SIZE * K
        heads = [h.inner_text() for h in frame.query_selector_all(f'{GRID} [data-testid="fmap-colhead"]')]
        assert len(heads) == K and all(h.startswith("ch ") for h in heads), heads
        # How the tiles were stored, at the defaults (maps_max_side=32, maps_bits=6): conv1's 64 x 64
        # maps are pooled 2x, the others fit.
        stored = {"features.conv1": "pooled 2× from 64×64 · 6-bit"}
        assert frame.inner_text('[data-testid="fmap-storage"]').strip(" ·") == stored.get(layer, "6-bit")
        filters = frame.query_selector('[data-testid="filters-grid"]')
        assert filters is not None and filters.get_attribute("data-layout") == "rgb"
        _wait_for(page, lambda: filters.query_selector("canvas"), "the filters drawn")
        filters.scroll_into_view_if_needed()
        filters.screenshot(path=str(ARTIFACTS / "insight-filters.png"))

        # Two steps, different pixels.
        slider = frame.query_selector('[data-testid="fmap-step-slider"]')
        assert slider.get_attribute("max") == str(len(MAP_STEPS) - 1)
        slider.fill("0")
        _wait_for(page, lambda: _grid_at(frame, 0), "the grid at step 0")
        assert frame.inner_text('[data-testid="fmap-step-label"]').split()[-1] == "0"
        at_first = _hash_when_drawn(page, frame, _cell(0, 0), "a drawn map at step 0")
        page.screenshot(path=str(ARTIFACTS / "insight-feature-maps-first-step.png"))
        slider.fill("2")
        _wait_for(page, lambda: _grid_at(frame, MAP_STEPS[2]), "the grid at the third step")
        _wait_for(
            page,
            lambda: frame.get_attribute(_cell(0, 0), "data-step") == str(MAP_STEPS[2]),
            "the cell at the third step",
        )
        at_last = frame.evaluate(TILE_HASH, _cell(0, 0))
        assert at_last != at_first, "the feature map did not change with the step"

        # The colormap and the shared scale redraw.
        frame.select_option('[data-testid="fmap-colormap"]', "inferno")
        inferno = _wait_for(
            page, lambda: (h := frame.evaluate(TILE_HASH, _cell(0, 0))) != at_last and h, "an inferno redraw"
        )
        frame.select_option('[data-testid="fmap-scale"]', "shared")
        _wait_for(page, lambda: frame.evaluate(TILE_HASH, _cell(0, 0)) != inferno, "a shared-scale redraw")

        # The channel picker: one recorded channel; then one that was not recorded.
        first_channel = heads[1].split()[-1]
        frame.fill('[data-testid="fmap-channels"]', first_channel)
        frame.press('[data-testid="fmap-channels"]', "Enter")
        _wait_for(
            page,
            lambda: len(frame.query_selector_all(f'{GRID} [data-testid="fmap-cell"]')) == PROBE_SIZE,
            "one column after picking a channel",
        )
        assert frame.inner_text(f'{GRID} [data-testid="fmap-colhead"]') == f"ch {first_channel}"
        frame.fill('[data-testid="fmap-channels"]', "999")
        frame.press('[data-testid="fmap-channels"]', "Enter")
        error = _wait_for(
            page, lambda: frame.query_selector('[data-testid="fmap-channels-error"]'), "the error"
        )
        assert "999 was not recorded" in error.inner_text() and "maps_channels" in error.inner_text()
        page.screenshot(path=str(ARTIFACTS / "insight-feature-maps.png"))
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)
        assert not watch.dialogs, watch.dialogs
