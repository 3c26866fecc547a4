"""End to end: the Insight tab's CAM view in headless Chromium against a real `tensorboard` process.

Writes a logdir through the public API (`InsightWriter.watch(model, probe=(images, labels),
cam_every=K, class_names=[...])`, then a few training steps): two runs with CAMs at different steps
and a run without a probe. Opens the CAM view and drives it: the grid shows every probe image with
its labels at the first recorded step, the step slider and play change the drawn step and the
pixels, opacity/colormap redraw, methods and a second run show side by side (the second run at the
nearest earlier step), the detail panel and PNG downloads work, the selection survives as a deep
link (also in dark mode), a run without a probe shows how to record one, the per-frame draw time
stays under budget, and nothing is logged to the console. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import statistics
import urllib.parse
from pathlib import Path

import pytest
import torch
from helpers import train_on_slices
from test_browser import (  # also skips this module when playwright/torch are missing
    ARTIFACTS,
    PageWatch,
    _wait_for,
    goto_insight,
    insight_page,
)
from test_browser import pytestmark as browser_marks

from demo.models import ShapesCNN
from demo.shapes import ShapesData, make_shapes
from tb_plugin_insight import InsightWriter

pytestmark = browser_marks  # browser, slow, and skipped without the tensorboard executable

RUN_A = "cam_a"
RUN_B = "cam_b"
RUN_NO_PROBE = "no_probe"
CLASSES = list(ShapesData.CLASSES)
PROBE_SIZE = 16
STEPS_A, EVERY_A = 13, 4  # CAMs at 0, 4, 8, 12
STEPS_B, EVERY_B = 10, 3  # CAMs at 0, 3, 6, 9
CAM_STEPS_A = list(range(0, STEPS_A, EVERY_A))
DRAW_BUDGET_MS = 50.0


def _train(run_dir: Path, steps: int, seed: int, probe: bool = True, **watch: object) -> None:
    torch.manual_seed(seed)
    data = make_shapes(16 * steps, size=64, seed=seed)
    probe_set = make_shapes(PROBE_SIZE, size=64, seed=1234)  # the same probe for every run
    model = ShapesCNN(width=8, seed=seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    with InsightWriter(str(run_dir)) as writer:
        if probe:
            writer.watch(
                model,
                every=4,
                probe=(probe_set.images, probe_set.labels),
                class_names=CLASSES,
                **watch,
            )
        else:
            writer.watch(model, every=4)
        train_on_slices(model, opt, data.images, data.labels, steps)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser_cam") / "logs"
    with torch.random.fork_rng(devices=[]):
        _train(root / RUN_A, STEPS_A, seed=0, cam_every=EVERY_A, cam_methods=["gradcam", "layercam"])
        _train(root / RUN_B, STEPS_B, seed=1, cam_every=EVERY_B, cam_methods=["gradcam"])
        _train(root / RUN_NO_PROBE, 3, seed=2, probe=False)
    return root


GRID = '[data-testid="overlay-grid"]'
TILE_HASH = """(sel) => {
  const c = document.querySelector(sel);
  if (!c || !c.width) return null;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 0;
  for (let i = 0; i < d.length; i += 7) h = (Math.imul(h, 31) + d[i]) >>> 0;
  return h;
}"""


def _tile(image: int, method: str = "gradcam", slot: int = 0) -> str:
    tile = f'[data-testid="overlay-tile"][data-image="{image}"][data-method="{method}"][data-slot="{slot}"]'
    return f"{GRID} {tile}"


def _grid_at(frame, step: int, run: str = RUN_A):
    el = frame.query_selector(GRID)
    if (
        el
        and el.get_attribute("data-step") == str(step)
        and el.get_attribute("data-pending") == "0"
        and el.get_attribute("data-run") == run
    ):
        return el
    return None


def _draws(frame) -> int:
    return int(frame.get_attribute(GRID, "data-draws") or 0)


def _changed_pixels(page, frame, selector: str, before: int, what: str) -> int:
    return _wait_for(
        page,
        lambda: (h := frame.evaluate(TILE_HASH, selector)) is not None and h != before and h,
        what,
        timeout_ms=10000,
    )


def _download(page, frame, selector: str, tmp_path: Path, name: str) -> tuple[str, bytes]:
    with page.expect_download() as info:
        frame.click(selector)
    download = info.value
    target = tmp_path / name
    download.save_as(str(target))
    return download.suggested_filename, target.read_bytes()


def test_cam_view(server: str, browser, tmp_path: Path) -> None:
    q = urllib.parse.quote
    url = f"{server}/#insight&p.insight.run={q(RUN_A)}"
    with insight_page(browser, url, accept_downloads=True) as (page, frame, watch):
        _wait_for(
            page, lambda: frame.query_selector('[data-testid="view-cam"]'), "the CAM view entry"
        ).click()

        # The grid: every probe image at the first recorded step, with its labels.
        grid = _wait_for(page, lambda: _grid_at(frame, 0), "the overlay grid at step 0")
        assert grid.get_attribute("data-images") == str(PROBE_SIZE)
        assert len(frame.query_selector_all(f'{GRID} [data-testid="overlay-cell"]')) == PROBE_SIZE
        assert len(frame.query_selector_all(f'{GRID} [data-testid="overlay-tile"]')) == PROBE_SIZE
        trues = [el.inner_text() for el in frame.query_selector_all(f'{GRID} [data-testid="true-label"]')]
        assert len(trues) == PROBE_SIZE and all(t.split()[-1] in CLASSES for t in trues), trues
        preds = frame.query_selector_all(f'{GRID} [data-testid="pred-label"]')
        assert len(preds) == PROBE_SIZE
        assert all(p.get_attribute("data-correct") in ("true", "false") for p in preds)
        assert all("%" in p.inner_text() for p in preds)
        colors = {
            p.get_attribute("data-correct"): p.evaluate("(el) => getComputedStyle(el).color") for p in preds
        }
        if len(colors) == 2:
            assert colors["true"] != colors["false"]
        slider = frame.query_selector('[data-testid="step-slider"]')
        assert slider.get_attribute("max") == str(len(CAM_STEPS_A) - 1)
        assert frame.inner_text('[data-testid="step-label"]').split()[-1] == "0"
        page.screenshot(path=str(ARTIFACTS / "insight-cam-first-step.png"))

        # The slider: another step is drawn, with other pixels.
        tile0 = _tile(0)
        at_first = frame.evaluate(TILE_HASH, tile0)
        slider.fill("2")
        _wait_for(page, lambda: _grid_at(frame, CAM_STEPS_A[2]), "the grid at the third step")
        assert frame.inner_text('[data-testid="step-label"]').split()[-1] == str(CAM_STEPS_A[2])
        at_third = frame.evaluate(TILE_HASH, tile0)
        assert at_third != at_first, "the overlay did not change with the step"

        # Opacity and colormap redraw the overlay.
        frame.fill('[data-testid="cam-opacity"]', "0.9")
        opaque = _changed_pixels(page, frame, tile0, at_third, "a redraw after the opacity change")
        frame.select_option('[data-testid="cam-colormap"]', "viridis")
        _changed_pixels(page, frame, tile0, opaque, "a redraw after the colormap change")

        # A shared scale (from the stored raw ranges) dims every image but the strongest one.
        tiles = [_tile(i) for i in range(8)]
        per_image = [frame.evaluate(TILE_HASH, t) for t in tiles]
        frame.select_option('[data-testid="cam-norm"]', "shared")
        _wait_for(
            page,
            lambda: sum(frame.evaluate(TILE_HASH, t) != h for t, h in zip(tiles, per_image)) >= 4,
            "most tiles to change under a shared scale",
            timeout_ms=10000,
        )
        frame.select_option('[data-testid="cam-norm"]', "image")

        # Scrub back and forth (decoded steps come from the LRU): per-frame draw time.
        for index in [0, 1, 2, 3, 2, 1, 0, 3, 1, 2]:
            slider.fill(str(index))
            _wait_for(page, lambda i=index: _grid_at(frame, CAM_STEPS_A[i]), f"step index {index}")
        full = frame.evaluate(
            f"""performance.getEntriesByName('insight-overlay-draw')
                .filter((e) => e.detail && e.detail.tiles >= {PROBE_SIZE}).map((e) => e.duration)"""
        )
        assert len(full) >= 10, full
        median = statistics.median(full)
        what = f"{PROBE_SIZE} tiles, 64x64 images, 8x8 maps, 160 px"
        print(
            f"\ninsight-overlay-draw ({what}): median {median:.2f} ms,",
            f"max {max(full):.2f} ms, {len(full)} frames",
        )
        assert median < DRAW_BUDGET_MS

        # Play animates the steps (and loops); pause stops.
        play = frame.query_selector('[data-testid="play-button"]')
        play.click()
        assert play.get_attribute("aria-pressed") == "true"
        seen: set[str] = set()
        _wait_for(
            page,
            lambda: seen.add(frame.get_attribute(GRID, "data-step")) or len(seen) >= 3,
            "three steps while playing",
            timeout_ms=10000,
        )
        play.click()
        assert play.get_attribute("aria-pressed") == "false"

        # Methods side by side: one tile per method, the column headers name them.
        slider.fill("1")  # step 4
        _wait_for(page, lambda: _grid_at(frame, CAM_STEPS_A[1]), "step 4")
        frame.check('[data-testid="cam-method"][value="layercam"]')
        _wait_for(
            page,
            lambda: (
                len(frame.query_selector_all(f'{GRID} [data-testid="overlay-tile"]')) == 2 * PROBE_SIZE
                and _grid_at(frame, CAM_STEPS_A[1])
            ),
            "two tiles per image",
        )
        heads = frame.query_selector('[data-testid="overlay-cell"][data-image="0"]').inner_text()
        assert "gradcam" in heads and "layercam" in heads
        assert frame.evaluate(TILE_HASH, _tile(0, "layercam")) != frame.evaluate(TILE_HASH, tile0)

        # A second run next to the first: the same step if recorded, else the nearest earlier one.
        frame.select_option('[data-testid="cam-compare"]', RUN_B)
        _wait_for(
            page,
            lambda: len(frame.query_selector_all(f'{GRID} [data-testid="overlay-tile"]')) == 4 * PROBE_SIZE,
            "four tiles per image",
        )
        b_tile = _tile(0, "gradcam", slot=1)
        _wait_for(page, lambda: frame.get_attribute(b_tile, "data-step") == "3", "run B's map at step 3")
        cell = frame.query_selector('[data-testid="overlay-cell"][data-image="0"]').inner_text()
        assert "step 3" in cell, "run B's tile must say it shows the nearest earlier step"
        assert "not recorded" in cell, "run B has no layercam maps"
        assert len(frame.query_selector_all(f'{GRID} [data-testid="pred-label"]')) == 2 * PROBE_SIZE

        # Click an image: the detail panel shows its tiles bigger; downloads are PNGs.
        frame.click('[data-testid="overlay-cell"][data-image="3"] .ins-cam-tiles')
        detail = _wait_for(
            page,
            lambda: frame.query_selector('[data-testid="overlay-detail"][data-image="3"]'),
            "the detail panel",
        )
        _wait_for(
            page, lambda: len(detail.query_selector_all('[data-testid="overlay-tile"]')) == 4, "4 tiles"
        )
        big = detail.query_selector('[data-testid="overlay-tile"]').bounding_box()["width"]
        small = frame.query_selector(tile0).bounding_box()["width"]
        assert big > small * 1.3, (big, small)
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "insight-cam-compare-detail.png"))
        name, data = _download(page, frame, '[data-testid="download-detail"]', tmp_path, "one.png")
        assert name.endswith("img3.png") and data[:8] == b"\x89PNG\r\n\x1a\n", name
        name, grid_png = _download(page, frame, '[data-testid="download-grid"]', tmp_path, "grid.png")
        assert name.endswith(".png") and grid_png[:8] == b"\x89PNG\r\n\x1a\n" and len(grid_png) > len(data)

        # Deep link: the selection is in the parent URL and restores in a fresh page (dark mode too).
        _wait_for(page, lambda: "p.insight.cam.image=3" in page.evaluate("location.hash"), "the URL")
        link = page.evaluate("location.hash")
        for key in ("view=cam", f"run={RUN_A}", "cam.step=4", "cam.methods=gradcam%2Clayercam",
                    "cam.cmap=viridis", "cam.opacity=0.9", f"cam.compare={RUN_B}"):  # fmt: skip
            assert f"p.insight.{key}" in link, (key, link)
        dark = page.context.new_page()
        dark_watch = PageWatch(dark)
        dframe = goto_insight(dark, f"{server}/?darkMode=true{link}", "the Insight iframe (deep link)")
        _wait_for(dark, lambda: _grid_at(dframe, 4), "the deep-linked step")
        _wait_for(
            dark, lambda: dframe.query_selector('[data-testid="overlay-detail"][data-image="3"]'), "detail"
        )
        assert dframe.eval_on_selector('[data-testid="cam-colormap"]', "(el) => el.value") == "viridis"
        assert dframe.eval_on_selector('[data-testid="cam-opacity"]', "(el) => el.value") == "0.9"
        assert dframe.eval_on_selector('[data-testid="cam-compare"]', "(el) => el.value") == RUN_B
        checked = dframe.eval_on_selector_all(
            '[data-testid="cam-method"]', "(els) => els.filter((e) => e.checked).map((e) => e.value)"
        )
        assert checked == ["gradcam", "layercam"]
        assert dframe.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(48, 48, 48)"
        dark.wait_for_timeout(300)
        dark.screenshot(path=str(ARTIFACTS / "insight-cam-dark.png"))
        assert not dark_watch.errors, "console errors:\n" + "\n".join(dark_watch.errors)
        dark.close()

        # A run without a probe says how to record one.
        frame.click('[data-testid="detail-close"]')
        frame.get_by_test_id("run-list").get_by_text(RUN_NO_PROBE, exact=True).click()
        empty = _wait_for(page, lambda: frame.query_selector('[data-testid="cam-empty"]'), "the empty state")
        text = empty.inner_text()
        assert "probe=(images" in text and "cam_every=" in text
        page.screenshot(path=str(ARTIFACTS / "insight-cam-empty.png"))

        metrics = {"overlayDrawMs": full, "overlayDrawMedianMs": median}
        (ARTIFACTS / "browser-cam-metrics.json").write_text(json.dumps(metrics, indent=2))
        assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)
