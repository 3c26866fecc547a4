"""Views on a run nothing read yet: a sampled answer drawn first, then every step."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from test_browser import PageWatch, _insight_frame, _wait_for  # noqa: E402
from test_route_paging import _write_long_stats  # noqa: E402

STEPS = 150  # more than the server's first sample (queries.FIRST_SAMPLE = 100)

# In the Insight iframe, from its start: every (data-sampled:data-steps) state the heatmap went through.
RECORD_HEATMAP_STATES = """(() => {
  if (!location.href.includes('plugin_entry.html')) return;
  const states = (window.__heatmapStates = []);
  new MutationObserver(() => {
    const el = document.querySelector('[data-testid="heatmap"]');
    if (!el || !el.querySelector('canvas')) return;
    const state = el.getAttribute('data-sampled') + ':' + el.getAttribute('data-steps');
    if (states[states.length - 1] !== state) states.push(state);
  }).observe(document, {subtree: true, childList: true, attributes: true});
})()"""


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("first_render")
    _write_long_stats(root / "long run", steps=STEPS, nan_at=7)
    _write_watched_run(root / "grad run", steps=STEPS)
    return root


def _write_watched_run(run_dir: Path, steps: int) -> None:
    """A watched MLP (layer tables: every layer's gradients of a step in one record), every step."""
    import torch
    from torch import nn

    from tb_plugin_insight import InsightWriter

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with InsightWriter(str(run_dir)) as writer:
        writer.watch(model, every=1, histograms=False)
        for _ in range(steps):
            opt.zero_grad()
            model(torch.randn(2, 3)).sum().backward()
            opt.step()


def test_unread_run_draws_a_sample_then_every_step(server: str, browser) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(RECORD_HEATMAP_STATES)
    try:
        page = context.new_page()
        watch = PageWatch(page)
        page.goto(f"{server}/#insight&p.insight.view=stats&p.insight.run={urllib.parse.quote('long run')}")
        frame = _wait_for(page, lambda: _insight_frame(page), "the Insight iframe")
        exact = '[data-testid="heatmap"][data-run="long run"][data-sampled="0"]'
        heatmap = _wait_for(page, lambda: frame.query_selector(exact), "the heatmap of every step")
        assert heatmap.get_attribute("data-steps") == str(STEPS)
        states = frame.evaluate("window.__heatmapStates")
        assert states[0] == "1:100" and states[-1] == f"0:{STEPS}", states  # a sample of 100 steps first
        assert frame.query_selector('[data-testid="heatmap-sampled"]') is None
        stats_requests = [url for url in watch.requests if "/stats_heatmap?" in url]
        assert len(stats_requests) == 2, stats_requests  # the sample, then every step
        assert not watch.errors and not watch.dialogs, watch.errors + watch.dialogs
    finally:
        context.close()


def test_unread_run_gradients_draw_a_sample_then_every_step(server: str, browser) -> None:
    """The gradient overview: a sample of the steps with a hint, then the exact answer (no hint)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        watch = PageWatch(page)
        page.goto(f"{server}/#insight&p.insight.view=grads&p.insight.run={urllib.parse.quote('grad run')}")
        frame = _wait_for(page, lambda: _insight_frame(page), "the Insight iframe")
        view = '[data-testid="grad-view"][data-run="grad run"]'
        _wait_for(page, lambda: frame.query_selector(view), "the gradient view")

        def exact_requests() -> list[str]:
            done = frame.query_selector('[data-testid="grad-sampled"]') is None
            overview = [url for url in watch.requests if "/gradients?" in url and "max_steps=" in url]
            return overview if done and len(overview) == 2 else []

        assert _wait_for(page, exact_requests, "the overview of every step")  # the sample, then exact
        assert not watch.errors and not watch.dialogs, watch.errors + watch.dialogs
    finally:
        page.close()
