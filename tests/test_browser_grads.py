"""End to end: the Insight tab's gradient view, and saliency maps in the overlay viewer, in headless
Chromium against a real `tensorboard` process.

A run trains a small MLP whose first layer's gradients are deliberately damped (a backward-only gate
multiplies them by 1e-6): the gradient view shows the gradient-flow chart at a step chosen with the slider,
the layer × step heatmap, and a "vanishing" alert for that layer whose link selects it; loosening the
threshold clears the alert. A second run records input saliency of a probe (no CAMs): the overlay viewer
opens on its saliency maps. Nothing is logged to the console. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
from helpers import edit_gradient, sgd_step, train_on_slices
from test_browser import (  # also skips this module when playwright/torch are missing
    ARTIFACTS,
    PageWatch,
    _wait_for,
    goto_insight,
    insight_page,
)
from test_browser import pytestmark as browser_marks
from torch import nn

from demo.models import ShapesCNN
from demo.shapes import ShapesData, make_shapes
from tb_plugin_insight import InsightWriter

pytestmark = browser_marks

RUN_GRADS = "grads"
RUN_SALIENCY = "saliency"
STEPS, EVERY = 30, 3
DAMPED = "0"


class Damp(nn.Module):
    """Identity forward; the gradient flowing back through it is multiplied by 1e-6."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return edit_gradient(x, lambda grad: grad * 1e-6)


def _train_grads(run_dir: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(8, 32), Damp(), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
        nn.Linear(32, 4),
    )  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    with InsightWriter(str(run_dir)) as writer:
        writer.watch(model, every=EVERY)
        for step in range(STEPS):
            x = torch.randn(16, 8, generator=gen)
            y = torch.randint(0, 4, (16,), generator=gen)
            loss = sgd_step(model, opt, x, y)
            writer.add_scalar("loss", loss.item(), step)


def _train_saliency(run_dir: Path) -> None:
    data = make_shapes(16 * 4, size=64, seed=3)
    probe = make_shapes(8, size=64, seed=1234)
    model = ShapesCNN(width=8, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    with InsightWriter(str(run_dir)) as writer:
        writer.watch(
            model, every=2, probe=(probe.images, probe.labels), class_names=list(ShapesData.CLASSES),
            cam_every=0, saliency_every=2, saliency_methods=["gradient", "smoothgrad"],
            saliency_options={"smoothgrad": {"samples": 4}},
            saliency_max_side=32,  # stored pooled 2x (32 x 32) and drawn over the 64 x 64 images
        )  # fmt: skip
        train_on_slices(model, opt, data.images, data.labels, 4)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser_grads") / "logs"
    with torch.random.fork_rng(devices=[]):
        _train_grads(root / RUN_GRADS)
        _train_saliency(root / RUN_SALIENCY)
    return root


CHART = '[data-testid="gradflow-chart"]'
CANVAS_INK = """(sel) => {
  const c = document.querySelector(sel + ' canvas');
  if (!c || !c.width) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ink++;
  return ink;
}"""


QUADRANT_SUMS = """(sel) => {
  const c = document.querySelector(sel);  // an overlay tile is a canvas
  if (!c || !c.width) return null;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const sums = [0, 0, 0, 0];
  for (let y = 0; y < c.height; y++)
    for (let x = 0; x < c.width; x++) {
      const i = (y * c.width + x) * 4;
      sums[(y >= c.height / 2 ? 2 : 0) + (x >= c.width / 2 ? 1 : 0)] += d[i] + d[i + 1] + d[i + 2];
    }
  return sums;
}"""


def _vanishing_alert(frame, layer: str = DAMPED):
    return frame.query_selector(f'[data-testid="grad-alert"][data-kind="vanishing"][data-layer="{layer}"]')


def test_gradient_view(server: str, browser) -> None:
    q = urllib.parse.quote
    url = f"{server}/#insight&p.insight.run={q(RUN_GRADS)}&p.insight.view=grads"
    with insight_page(browser, url, height=1100) as (page, frame, watch):
        chart = _wait_for(page, lambda: frame.query_selector(CHART), "the gradient-flow chart")
        steps = list(range(0, STEPS, EVERY))
        assert chart.get_attribute("data-layers") == "4"  # the four Linear layers, input to output
        assert chart.get_attribute("data-step") == str(steps[-1])  # opens at the last recorded step
        _wait_for(page, lambda: frame.evaluate(CANVAS_INK, CHART) > 500, "bars drawn on the chart")

        # The alert for the deliberately damped layer, from the first recorded step.
        alert = _wait_for(page, lambda: _vanishing_alert(frame), "a vanishing alert for the damped layer")
        assert "from step 0" in alert.inner_text()
        shown = frame.query_selector_all('[data-testid="grad-alert"]')
        kinds = {(a.get_attribute("data-kind"), a.get_attribute("data-layer")) for a in shown}
        assert kinds == {("vanishing", DAMPED)}, kinds

        # Heatmap of the parameter-gradient norm: one row per layer with parameters, a column per step.
        heatmap = frame.query_selector('[data-testid="grad-heatmap-card"] [data-testid="heatmap"]')
        assert heatmap.get_attribute("data-layers") == "4"
        assert heatmap.get_attribute("data-steps") == str(len(steps))
        page.screenshot(path=str(ARTIFACTS / "insight-gradients.png"), full_page=True)

        # The alert's link selects the layer at the step the alert first appeared.
        alert.query_selector('[data-testid="grad-alert-layer"]').click()
        _wait_for(
            page,
            lambda: frame.query_selector(f'[data-testid="grad-layer-charts"][data-layer="{DAMPED}"]'),
            "the damped layer's charts",
        )
        _wait_for(page, lambda: frame.get_attribute(CHART, "data-step") == "0", "the chart at step 0")
        assert frame.inner_text('[data-testid="grad-step-label"]').split()[-1] == "0"
        labels = frame.query_selector_all('[data-testid="grad-heatmap-card"] .ins-hm-label.selected')
        assert [el.inner_text() for el in labels] == [DAMPED]
        _wait_for(page, lambda: "p.insight.layer=0" in page.evaluate("location.hash"), "the layer in the URL")

        # The slider moves through the recorded steps; the URL follows.
        frame.fill('[data-testid="grad-step-slider"]', "4")
        _wait_for(page, lambda: frame.get_attribute(CHART, "data-step") == str(steps[4]), "step index 4")
        _wait_for(
            page, lambda: f"p.insight.grad.step={steps[4]}" in page.evaluate("location.hash"), "URL step"
        )

        # Clicking a bar selects that layer.
        box = frame.query_selector(f"{CHART} .u-over").bounding_box()
        page.mouse.click(box["x"] + box["width"] * 7 / 8, box["y"] + box["height"] - 4)  # the last layer
        _wait_for(
            page,
            lambda: frame.query_selector('[data-testid="grad-layer-charts"][data-layer="7"]'),
            "the last layer selected by a click on its bar",
        )

        # A looser vanishing threshold clears the alert.
        frame.fill('[data-testid="grad-vanish"]', "-8")
        _wait_for(page, lambda: frame.query_selector('[data-testid="grad-alerts-none"]'), "no alerts")
        assert "p.insight.grad.vanish=-8" in page.evaluate("location.hash")
        page.screenshot(path=str(ARTIFACTS / "insight-gradients-layer.png"), full_page=True)

        # A deep link restores the view, step and threshold (dark mode too).
        link = page.evaluate("location.hash")
        dark = page.context.new_page()
        dark_watch = PageWatch(dark)
        dframe = goto_insight(dark, f"{server}/?darkMode=true{link}", "the Insight iframe (deep link)")
        _wait_for(dark, lambda: dframe.get_attribute(CHART, "data-step") == str(steps[4]), "the linked step")
        _wait_for(
            dark, lambda: dframe.query_selector('[data-testid="grad-alerts-none"]'), "the linked threshold"
        )
        dark.wait_for_timeout(300)
        dark.screenshot(path=str(ARTIFACTS / "insight-gradients-dark.png"), full_page=True)
        assert not dark_watch.errors, "console errors:\n" + "\n".join(dark_watch.errors)
        dark.close()

        # The saliency run: the overlay viewer opens on its saliency maps (no CAMs recorded).
        frame.get_by_test_id("run-list").get_by_text(RUN_SALIENCY, exact=True).click()
        frame.click('[data-testid="view-cam"]')
        grid = '[data-testid="overlay-grid"]'
        _wait_for(
            page,
            lambda: (
                (el := frame.query_selector(grid))
                and el.get_attribute("data-run") == RUN_SALIENCY
                and el.get_attribute("data-pending") == "0"
                and el.get_attribute("data-step") == "0"
            ),
            "the saliency grid at step 0",
        )
        tiles = frame.query_selector_all(f'{grid} [data-testid="overlay-tile"][data-method="gradient"]')
        assert len(tiles) == 8
        # Pooled maps (32 x 32) cover the whole 64 x 64 image: the overlay changes every quadrant.
        with urllib.request.urlopen(f"{server}/data/plugin/insight/maps?run={RUN_SALIENCY}") as resp:
            stored = json.load(resp)["series"][0]
        assert (stored["height"], stored["poolFactor"], stored["sourceHeight"]) == (32, 2, 64)
        tile = f'{grid} [data-testid="overlay-tile"]'
        shown = frame.evaluate(QUADRANT_SUMS, tile)
        assert shown and min(shown) > 0, shown
        frame.fill('[data-testid="cam-opacity"]', "0")
        bare = _wait_for(
            page,
            lambda: (q := frame.evaluate(QUADRANT_SUMS, tile)) != shown and q,
            "a redraw without the overlay",
        )
        assert all(a != b for a, b in zip(shown, bare)), (shown, bare)
        frame.fill('[data-testid="cam-opacity"]', "0.7")
        assert "Saliency" in frame.inner_text('[data-view="cam"] .ins-card-title')
        assert (
            frame.evaluate(CANVAS_INK.replace(" + ' canvas'", ""), f'{grid} [data-testid="overlay-tile"]') > 0
        )
        frame.check('[data-testid="cam-method"][value="smoothgrad"]')
        _wait_for(
            page,
            lambda: len(frame.query_selector_all(f'{grid} [data-testid="overlay-tile"]')) == 16,
            "gradient and smoothgrad side by side",
        )
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "insight-saliency.png"), full_page=True)

        assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)
