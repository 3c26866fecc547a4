"""End to end: the Insight tab in headless Chromium against a real `tensorboard` process.

Writes a small logdir through the public API (`InsightWriter.watch`), including a run whose name is
HTML, starts `tensorboard`, opens `/#insight` and drives the plugin iframe: the heatmap shows the
model's layers and steps, clicking a layer shows its line charts, the hostile run name stays text,
deep links and TensorBoard's reload button work, dark mode follows the host, and the tab logs no
console errors. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
torch = pytest.importorskip("torch")
from helpers import random_batch, sgd_step  # noqa: E402
from torch import nn  # noqa: E402

from conftest import tensorboard_process  # noqa: E402
from tb_plugin_insight import InsightWriter  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(sys.executable).with_name("tensorboard").exists(),
        reason="the tensorboard executable is not installed next to this python",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("INSIGHT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEPS = 24
HOSTILE_STEPS = 6
MAIN_RUN = "train"
HOSTILE_RUN = "<img src=x onerror=alert(1)>"
FRAME_MARK = "plugin_entry.html?name=insight"


def _tiny_cnn(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 3 * 3, 4),
    )


def _write_run(run_dir: Path, steps: int, seed: int) -> list[str]:
    model = _tiny_cnn(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = InsightWriter(str(run_dir))
    try:
        handle = w.watch(model, every=1)
        for step in range(steps):
            loss = sgd_step(model, opt, *random_batch(gen, classes=4))
            w.add_scalar("loss", loss.item(), step)
        return list(handle.layers)
    finally:
        w.close()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("browser") / "logs"
    layers = _write_run(root / MAIN_RUN, STEPS, seed=0)
    _write_run(root / HOSTILE_RUN, HOSTILE_STEPS, seed=1)
    return root, layers


# One way to run tensorboard for every test: conftest's.
_tensorboard = tensorboard_process


def _wait_for(page, predicate, what: str, timeout_ms: int = 20000):
    """Poll `predicate()` with page.wait_for_timeout until it returns something truthy."""
    waited = 0
    while True:
        value = predicate()
        if value:
            return value
        if waited >= timeout_ms:
            raise AssertionError(f"timed out after {timeout_ms} ms waiting for {what}")
        page.wait_for_timeout(100)
        waited += 100


def _insight_frame(page):
    return next((f for f in page.frames if FRAME_MARK in f.url), None)


def _heatmap_ready(frame, run: str, stat: str = "mean"):
    el = frame.query_selector('[data-testid="heatmap"]')
    if el and el.get_attribute("data-run") == run and el.get_attribute("data-stat") == stat:
        return el
    return None


@pytest.fixture(scope="module")
def server(logdir: tuple[Path, list[str]]) -> Iterator[str]:
    with _tensorboard(logdir[0]) as base:
        yield base


class PageWatch:
    """Console errors, uncaught exceptions, dialogs and plugin requests seen by a page."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("dialog", self._dialog)
        page.on(
            "request", lambda req: self.requests.append(req.url) if "/plugin/insight/" in req.url else None
        )

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.errors.append(f"console.error: {msg.text} @ {msg.location.get('url', '')}")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


def goto_insight(page, url: str, what: str = "the Insight iframe"):
    """Open `url` (a TensorBoard page) and wait for the Insight iframe; returns the frame."""
    page.goto(url)
    return _wait_for(page, lambda: _insight_frame(page), what)


@contextlib.contextmanager
def insight_page(
    browser, url: str, *, width: int = 1400, height: int = 1000, **context_options: Any
) -> Iterator[tuple[Any, Any, PageWatch]]:
    """A new browser context of that viewport, its page watched by PageWatch and opened at `url` with the
    Insight iframe loaded: yields (page, frame, watch); closes the context after."""
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": height}, **context_options)
    try:
        page = context.new_page()
        watch = PageWatch(page)
        yield page, goto_insight(page, url), watch
    finally:
        context.close()


def test_insight_tab(server: str, logdir: tuple[Path, list[str]], browser, tmp_path: Path) -> None:
    _, layers = logdir
    # Deep link: run and layer come from the parent URL's hash.
    linked = layers[-1]
    q = urllib.parse.quote
    link = f"{server}/#insight&p.insight.view=stats&p.insight.run={q(MAIN_RUN)}&p.insight.layer={q(linked)}"
    with insight_page(browser, link, height=900) as (page, frame, watch):
        heatmap = _wait_for(
            page, lambda: _heatmap_ready(frame, MAIN_RUN), "the heatmap of the deep-linked run"
        )
        _wait_for(
            page,
            lambda: frame.query_selector(f'[data-testid="layer-charts"][data-layer="{linked}"]'),
            "the charts of the deep-linked layer",
        )

        # Heatmap: model layers in model order as text, one column per recorded step.
        assert heatmap.get_attribute("data-layers") == str(len(layers))
        assert heatmap.get_attribute("data-steps") == str(STEPS)
        labels = [el.inner_text() for el in frame.query_selector_all('[data-testid="layer-label"]')]
        assert labels == layers
        ticks = [int(el.inner_text()) for el in frame.query_selector_all(".ins-hm-tick")]
        assert len(ticks) >= 3 and ticks[0] == 0 and ticks == sorted(ticks) and ticks[-1] < STEPS
        draws = frame.evaluate("performance.getEntriesByName('insight-heatmap-draw').map((e) => e.duration)")
        assert draws, "no insight-heatmap-draw performance measure was recorded"
        # The canvas really shows colour (not just the no-data hatch): sample its centre pixel.
        painted = frame.evaluate(
            """() => {
              const c = document.querySelector('[data-testid="heatmap"] canvas');
              const d = c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
              return [d[0], d[1], d[2], d[3]];
            }"""
        )
        assert painted[3] == 255 and painted[:3] != [0, 0, 0]

        # Hover shows a tooltip with layer, step and value.
        plot = frame.query_selector(".ins-hm-plot")
        box = plot.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + 5)
        tooltip = _wait_for(page, lambda: frame.query_selector('[data-testid="heatmap-tooltip"]'), "tooltip")
        tip = tooltip.inner_text()
        assert layers[0] in tip and "step" in tip
        page.screenshot(path=str(ARTIFACTS / "insight-heatmap.png"))

        # Click a layer name: line charts over steps for that layer; the URL keeps it.
        target = layers[1]
        frame.query_selector_all('[data-testid="layer-label"]')[1].click()
        charts = _wait_for(
            page,
            lambda: frame.query_selector(f'[data-testid="layer-charts"][data-layer="{target}"]'),
            "the layer charts",
        )
        _wait_for(page, lambda: len(charts.query_selector_all(".uplot canvas")) >= 4, "four uPlot charts")
        assert frame.query_selector(".ins-hm-label.selected").inner_text() == target
        assert f"p.insight.layer={urllib.parse.quote(target)}" in page.evaluate("location.hash")
        assert page.evaluate("location.hash").startswith("#insight")
        page.mouse.move(1, 1)
        page.screenshot(path=str(ARTIFACTS / "insight-layer-charts.png"), full_page=True)

        # Another statistic: the heatmap refetches and redraws.
        frame.select_option('[data-testid="stat-select"]', "zeroFraction")
        _wait_for(page, lambda: _heatmap_ready(frame, MAIN_RUN, "zeroFraction"), "the zeroFraction heatmap")
        assert "p.insight.stat=zeroFraction" in page.evaluate("location.hash")

        # TensorBoard's reload button reaches the tab over the plugin IPC and refetches its views.
        before = sum("stats_heatmap" in u for u in watch.requests)
        page.click("button.reload-button")
        _wait_for(
            page,
            lambda: sum("stats_heatmap" in u for u in watch.requests) > before,
            "a heatmap refetch after TensorBoard's reload",
            timeout_ms=10000,
        )
        assert _heatmap_ready(frame, MAIN_RUN, "zeroFraction"), "reload lost the selection"
        assert frame.query_selector(f'[data-testid="layer-charts"][data-layer="{target}"]')

        # The hostile run name is literal text everywhere; no element or script came from it.
        names = [el.inner_text() for el in frame.query_selector_all('[data-testid="run-name"]')]
        assert HOSTILE_RUN in names
        frame.get_by_text(HOSTILE_RUN, exact=True).first.click()
        _wait_for(
            page, lambda: _heatmap_ready(frame, HOSTILE_RUN, "zeroFraction"), "the hostile run's heatmap"
        )
        assert frame.query_selector('[data-testid="heatmap"]').get_attribute("data-steps") == str(
            HOSTILE_STEPS
        )
        assert frame.query_selector(".ins-card-sub").inner_text() == HOSTILE_RUN
        assert frame.query_selector("img") is None
        page.screenshot(path=str(ARTIFACTS / "insight-hostile-run.png"))

        metrics = {"heatmapDrawMs": draws, "requests": len(watch.requests)}
        (ARTIFACTS / "browser-metrics.json").write_text(json.dumps(metrics, indent=2))
        assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)


def test_dark_mode_and_empty_logdir(browser, tmp_path: Path) -> None:
    """With no Insight data the tab shows its empty state; it follows TensorBoard's dark mode."""
    empty = tmp_path / "logs"
    empty.mkdir()
    with _tensorboard(empty) as base:
        # An inactive plugin still loads when its tab is opened by URL.
        url = f"{base}/?darkMode=true#insight"
        with insight_page(browser, url, width=1200, height=700) as (page, frame, watch):
            empty_state = _wait_for(
                page, lambda: frame.query_selector('[data-testid="empty-state"]'), "empty state"
            )
            assert "No Insight data yet" in empty_state.inner_text()
            assert "writer.watch(model)" in empty_state.inner_text()
            _wait_for(
                page, lambda: frame.evaluate("document.documentElement.classList.contains('dark')"), "dark"
            )
            bg = frame.evaluate("getComputedStyle(document.body).backgroundColor")
            assert bg == "rgb(48, 48, 48)"
            page.screenshot(path=str(ARTIFACTS / "insight-empty-dark.png"))
            assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)
