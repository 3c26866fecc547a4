"""End to end: the Insight tab's Ranks view in headless Chromium against a real `tensorboard` process.

Family "job" has four ranks written as `InsightWriter(ranks="all")` writes them (test_ranks.write_family);
rank 2's inputs are 10x larger from step DEPART on. The view is listed because the logdir has a family; it
names rank 2 with its first step, shows the spread heatmap (the departing layer bright from DEPART on) and,
after a click on the alert, every rank's line of that layer with rank 2 far above the others. A family
whose name is markup shows as text (no dialog fires). A logdir without a family does not list the view.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from test_browser import ARTIFACTS, _wait_for, goto_insight, insight_page
from test_browser import pytestmark as browser_marks
from test_ranks import DEPART, ODD, STEPS, write_family

from conftest import tensorboard_process, write_run

pytestmark = browser_marks

HOSTILE = "<img src=x onerror=alert(1)>"
ALERT = '[data-testid="rank-alert"]'


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser_ranks") / "logs"
    with pytest.MonkeyPatch.context() as mp:
        write_family(root / "job", mp, 4, odd=ODD)
        write_family(root / HOSTILE, mp, 3, steps={2: 5})
    return root


def test_ranks_view(server: str, browser) -> None:
    q = urllib.parse.quote
    url = f"{server}/#insight&p.insight.run={q('job/rank0')}&p.insight.view=ranks"
    with insight_page(browser, url, height=1300) as (page, frame, watch):
        _wait_for(page, lambda: frame.query_selector('[data-testid="view-ranks"]'), "the Ranks view listed")
        summary = _wait_for(
            page, lambda: frame.query_selector('[data-testid="rank-departing-rank"]'), "a departing rank"
        )
        assert summary.get_attribute("data-rank") == str(ODD)
        assert f"from step {DEPART}" in summary.inner_text() and f"job/rank{ODD}" in summary.inner_text()
        alerts = frame.query_selector_all(ALERT)
        assert alerts and {a.get_attribute("data-rank") for a in alerts} == {str(ODD)}
        assert f"from step {DEPART}" in alerts[0].inner_text()

        # The spread heatmap: a row per layer, a column per recorded step.
        heatmap = frame.query_selector('[data-testid="rank-heatmap-card"] [data-testid="heatmap"]')
        assert heatmap.get_attribute("data-layers") == "5"  # activations: every layer
        assert heatmap.get_attribute("data-steps") == str(STEPS // 2)
        assert frame.get_attribute('[data-testid="rank-heatmap-card"]', "data-measure") == "deviation"

        # An alert's link shows that layer and statistic on every rank.
        target = next(a for a in alerts if a.get_attribute("data-layer") == "0")
        stat = target.get_attribute("data-stat")
        target.query_selector('[data-testid="rank-alert-layer"]').click()
        lines = '[data-testid="rank-lines"]'
        _wait_for(
            page,
            lambda: (
                frame.get_attribute(lines, "data-layer") == "0"
                and frame.get_attribute(lines, "data-stat") == stat
            ),
            "rank lines of layer 0",
        )
        assert frame.get_attribute(lines, "data-ranks") == "4"
        if target.get_attribute("data-kind") == "gradient":  # rows: the Linear layers (ReLUs have none)
            rows = '[data-testid="rank-heatmap-card"] [data-testid="heatmap"]'
            _wait_for(
                page, lambda: frame.get_attribute(rows, "data-layers") == "3", "the layers with gradients"
            )
        assert f"departing: rank {ODD}" in frame.inner_text(lines)
        assert frame.query_selector(f"{lines} canvas") is not None
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "insight-ranks.png"), full_page=True)

        # A threshold above every deviation clears the alerts; the URL keeps it.
        frame.fill('[data-testid="rank-threshold"]', "64")
        frame.fill('[data-testid="rank-sustain"]', "10")
        _wait_for(page, lambda: frame.query_selector('[data-testid="rank-alerts-none"]'), "no departures")
        assert "p.insight.rank.sustain=10" in page.evaluate("location.hash")

        # A deep link restores the view, family and rule.
        link = page.evaluate("location.hash")
        linked = page.context.new_page()
        lframe = goto_insight(linked, f"{server}/{link}", "the Insight iframe (deep link)")
        _wait_for(
            linked, lambda: lframe.query_selector('[data-testid="rank-alerts-none"]'), "the linked rule"
        )
        assert lframe.get_attribute('[data-testid="rank-family"]', "data-family") == "job"
        linked.close()

        # The family named with markup: its name is text, and rank 2 stopped early.
        frame.select_option('[data-testid="rank-family-select"]', HOSTILE)
        _wait_for(
            page,
            lambda: frame.get_attribute('[data-testid="rank-family"]', "data-family") == HOSTILE,
            "the hostile family",
        )
        assert HOSTILE in frame.inner_text('[data-testid="rank-family"] .ins-card-title')
        assert "rank 2 at step 4" in frame.inner_text('[data-testid="rank-stopped-early"]')
        assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)


def test_no_ranks_view_without_a_family(browser, tmp_path: Path) -> None:
    write_run(tmp_path / "solo", steps=2)
    write_run(tmp_path / "other" / "rank0", steps=2)  # one rank is no family
    with (
        tensorboard_process(tmp_path) as base,
        insight_page(browser, f"{base}/#insight") as (page, frame, watch),
    ):
        _wait_for(page, lambda: frame.query_selector('[data-testid="view-stats"]'), "the view index")
        assert frame.query_selector('[data-testid="view-ranks"]') is None
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)
