"""The tab on a large logdir: TensorBoard start to first listing, route p95, first render, CAM scrubbing.

Run: `python -m bench.bench_tab [--logdir DIR] [--cold-only]` (without --logdir, `bench.make_large_logdir`
writes the default 100 runs x 50 layers x 1,000 steps + 20 CAM runs into a temporary directory first;
give it `--big-runs 9` for the 300-layer x 10,000-step runs, whose cold first requests are then timed
too, target < 1 s, next to the 50 x 1,000 target < 300 ms). `--cold-only`: TensorBoard's start and the
cold first requests only (no warm p95, no browser).

1. `tensorboard --logdir DIR` (default --load_fast): seconds from the process start to the first
   `/runs` answer listing a run (target < 10 s), and to all runs listed.
2. Warm server: every route `--requests` times on a stats run and a CAM run, as the tab asks for it
   (gzip accepted, like a browser); p95 per route (target < 200 ms), with the body and gzipped sizes.
   `/gradients` unpaged is measured too, for reference (the tab does not ask for it). Then the first
   request of each route of the Model and statistics views on runs not asked for before (a user
   opening another run: nothing of that run read yet): median and max over `COLD_RUNS` runs per
   route, each route on runs of its own.
3. Headless Chromium (/usr/bin/chromium), fresh pages after the server is warm, on runs not opened
   before. The number judged against the < 3 s target is **opening the tab**: TensorBoard loaded on
   its Scalars tab (`/#scalars&p.insight.run=RUN`, its charts drawn), then a click on "Insight" in
   TensorBoard's tab bar, like a user, to the Model view's table drawn (the tab's default view); and
   the same for the statistics view (`&p.insight.view=stats`) to its heatmap drawn (its first answer
   on an unread run is a sample of the steps; the heatmap of every step is timed too), with where the
   time goes inside the Insight iframe (iframe created, index.js loaded, first data answer, the view's
   data answer, drawn). Next to it: TensorBoard's own Scalars tab from navigation to its first chart
   drawn (what TensorBoard's page costs by itself: the reference floor), and from navigation to
   `/#insight` to the Model table / the heatmap drawn (TensorBoard's page load included).
4. Scrubbing the CAM step slider over 100 steps: time from moving the slider to the grid of that
   step drawn, per frame (first pass: fetch + decode; second pass: cached), and the overlay draw
   time the tab measures itself (target < 50 ms per frame).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

from bench import make_large_logdir

CHROMIUM = os.environ.get("INSIGHT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
FRAME_MARK = "plugin_entry.html?name=insight"

# In the page: move the slider like a user (input + change events), then resolve when the grid reports
# that step drawn with nothing pending (a MutationObserver: no polling delay); returns milliseconds.
SCRUB_JS = """async ({index, step}) => {
  const slider = document.querySelector('[data-testid="step-slider"]');
  const done = () => {
    const g = document.querySelector('[data-testid="overlay-grid"]');
    return g && g.getAttribute('data-step') === String(step) && g.getAttribute('data-pending') === '0';
  };
  const t0 = performance.now();
  const drawn = new Promise((resolve) => {
    const observer = new MutationObserver(() => { if (done()) { observer.disconnect(); resolve(); } });
    observer.observe(document.body, {subtree: true, attributes: true, childList: true});
  });
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
  setter.call(slider, String(index));
  slider.dispatchEvent(new Event('input', {bubbles: true}));
  slider.dispatchEvent(new Event('change', {bubbles: true}));
  if (!done()) await drawn;
  return performance.now() - t0;
}"""


COLD_RUNS = 5  # unread runs per route in measure_cold
COLD_TARGET_MS = 300.0  # first request on an unread 50-layer x 1,000-step run
BIG_COLD_TARGET_MS = 1000.0  # ... on an unread 300-layer x 10,000-step run
GZIP = {"Accept-Encoding": "gzip"}  # as every browser asks; TensorBoard then gzips JSON


@dataclasses.dataclass
class TabResult:
    first_listing_s: float = float("nan")
    all_runs_s: float = float("nan")
    runs_listed: int = 0
    route_p95_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    route_bytes: dict[str, int] = dataclasses.field(default_factory=dict)
    route_gzip_bytes: dict[str, int] = dataclasses.field(default_factory=dict)
    cold_ms: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)  # (median, max)
    cold_big_ms: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)  # big_* runs
    first_render_s: float = float("nan")  # from navigation, default (Model) view: its table drawn
    plugin_render_s: float = float("nan")  # the Insight iframe's own part: its start to the table drawn
    stats_render_s: float = float("nan")  # from navigation, statistics view: its heatmap drawn
    scalars_ref_s: list[float] = dataclasses.field(default_factory=list)  # TB Scalars: first chart drawn
    scalars_lines: bool = False  # with its lines (else axes only: no run selected above 40 runs)
    open_model_s: float = float("nan")  # click on the Insight tab -> Model table drawn (the target)
    open_stats_s: float = float("nan")  # click on the Insight tab -> heatmap drawn (the target)
    open_stats_exact_s: float = float("nan")  # ... -> heatmap of every step drawn (after a sample)
    open_big_stats_s: float = float("nan")  # ... on an unread 300-layer x 10,000-step run (target < 2 s)
    open_big_stats_exact_s: float = float("nan")  # ... its heatmap of every step drawn
    stats_render_exact_s: float = float("nan")  # from navigation, heatmap of every step drawn
    # where the time of opening the tab goes: {step: ms since the click}
    open_model_steps: dict[str, float] = dataclasses.field(default_factory=dict)
    open_stats_steps: dict[str, float] = dataclasses.field(default_factory=dict)
    slowest: list[str] = dataclasses.field(default_factory=list)  # the first render's slowest requests
    scrub_first_ms: float = float("nan")  # median per frame, steps never seen
    scrub_cached_ms: float = float("nan")  # median per frame, second pass
    scrub_p95_ms: float = float("nan")  # p95 over both passes
    draw_ms: float = float("nan")  # median overlay draw time measured by the tab


def _get(url: str, timeout: float = 60, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=timeout
        ) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:  # refused while starting, or timed out while loading: no answer yet
        return 0, b""


def _unzip(body: bytes) -> bytes:
    """A body as sent with GZIP accepted: TensorBoard gzips larger JSON answers only."""
    return gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _start(logdir: Path, port: int, log: Any) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("tensorboard")
    cmd = [str(exe), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def measure_start(base: str, start: float, expected_runs: int, result: TabResult, timeout: float) -> None:
    while time.monotonic() - start < timeout:
        status, body = _get(base + "/data/plugin/insight/runs", timeout=30) if _alive(base) else (0, b"")
        if status == 200:
            runs = json.loads(body)["runs"]
            if runs and result.first_listing_s != result.first_listing_s:  # NaN: first time
                result.first_listing_s = time.monotonic() - start
            result.runs_listed = len(runs)
            if len(runs) >= expected_runs:
                result.all_runs_s = time.monotonic() - start
                return
        time.sleep(0.1)


def _alive(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/data/plugins_listing", timeout=2):
            return True
    except OSError:
        return False


def wait_until_loaded(base: str, timeout: float) -> None:
    """The data server loads runs in passes: wait until the listing (runs, max steps) stops changing."""
    deadline = time.monotonic() + timeout
    previous, same = b"", 0
    while time.monotonic() < deadline and same < 3:
        _, body = _get(f"{base}/data/plugin/insight/runs")
        same = same + 1 if body == previous else 0
        previous = body
        time.sleep(1.0)


GRAD_OVERVIEW = (
    "fields=gradNorm,gradMeanAbs,gradMaxAbs,gradNanCount,gradInfCount,weightNorm,updateRatio,"
    "actGradNorm,actGradNanCount,actGradInfCount"
)


def stats_routes(p: str, run: str, layer: str) -> dict[str, str]:
    """The requests of the Model view (the default) and of the statistics and gradient views, as the
    tab makes them (frontend/src/api.ts)."""
    q = urllib.parse.quote
    r = q(run)
    return {
        "/layers": f"{p}/layers?run={r}",
        "/model": f"{p}/model?run={r}",
        "/units (max_steps=300)": f"{p}/units?run={r}&max_steps=300&encoding=f32",
        "/histograms (one layer)": f"{p}/histograms?run={r}&layer={q(layer)}",
        "/layer_stats": f"{p}/layer_stats?run={r}&layer={q(layer)}",
        "/stats_heatmap (max_steps=300)": f"{p}/stats_heatmap?run={r}&stat=mean&max_steps=300&encoding=f32",
        "/gradients (overview, max_steps=300)": f"{p}/gradients?run={r}&max_steps=300&encoding=f32"
        f"&{GRAD_OVERVIEW}",
        "/gradients (one layer)": f"{p}/gradients?run={r}&layer={q(layer)}&encoding=f32"
        "&fields=gradNorm,actGradNorm,updateRatio",
        # HTTP API only (tests, scripts): the tab never asks for one step; on an unread run it reads the
        # whole table (the data provider cannot read one step alone): reported, not judged.
        "/gradients (one step, API only)": f"{p}/gradients?run={r}&step=500&encoding=f32",
    }


def measure_routes(
    base: str, stats_run: str, cam_run: str, layer: str, requests: int, result: TabResult
) -> None:
    q = urllib.parse.quote
    p = f"{base}/data/plugin/insight"
    status, body = _get(f"{p}/maps?run={q(cam_run)}")
    series = (
        json.loads(body)["series"][0] if status == 200 else {"layer": "", "method": "gradcam", "steps": [0]}
    )
    cam_step = series["steps"][len(series["steps"]) // 2]
    routes = {
        "/runs": f"{p}/runs",
        **stats_routes(p, stats_run, layer),
        "/probe": f"{p}/probe?run={q(cam_run)}",
        "/probe_image": f"{p}/probe_image?run={q(cam_run)}",
        "/maps": f"{p}/maps?run={q(cam_run)}",
        "/map_image": f"{p}/map_image?run={q(cam_run)}&kind=cam&layer={q(series['layer'])}"
        f"&method={q(series['method'])}&step={cam_step}",
        "/predictions": f"{p}/predictions?run={q(cam_run)}",
        "/feature_map_layers": f"{p}/feature_map_layers?run={q(cam_run)}",
        "/index.js": f"{p}/index.js",
        "/gradients (overview as JSON, not used by the tab)": f"{p}/gradients?run={q(stats_run)}"
        f"&max_steps=300&{GRAD_OVERVIEW}",
        "/gradients (unpaged, not used by the tab)": f"{p}/gradients?run={q(stats_run)}",
    }
    for name, url in routes.items():
        status, body = _get(url)
        if status != 200:
            raise RuntimeError(f"{name} answered {status}: {body[:200]!r}")
        times = []
        for _ in range(requests):
            t = time.perf_counter()
            _, packed = _get(url, headers=GZIP)
            times.append((time.perf_counter() - t) * 1000)
        result.route_p95_ms[name] = _p95(times)
        result.route_bytes[name] = len(body)
        result.route_gzip_bytes[name] = len(packed)


def measure_cold(
    base: str, runs: list[str], layer: str, result: TabResult, big: bool = False
) -> dict[str, tuple[float, float]]:
    """The first request of each view route on runs nothing was read from yet: each route on runs of its
    own (len(runs) / routes of them), so one route's reads never warm another's. A sampled answer
    (heatmap, units, gradients, layer statistics) goes on reading the full table in the background:
    the next request waits until it is done.
    `big`: the runs are `big_*` ones (result.cold_big_ms)."""
    names = list(stats_routes("", "", layer))
    per_route = len(runs) // len(names)
    times: dict[str, list[float]] = {}
    for k, name in enumerate(names):  # a small logdir (--quick): one run per route, maybe read before
        for run in runs[k * per_route : (k + 1) * per_route] or [runs[k % len(runs)]]:
            url = stats_routes(f"{base}/data/plugin/insight", run, layer)[name]
            t = time.perf_counter()
            status, body = _get(url, headers=GZIP)
            if status != 200:
                raise RuntimeError(f"{name} answered {status}: {body[:200]!r}")
            times.setdefault(name, []).append((time.perf_counter() - t) * 1000)
            if b'"sampled": true' in _unzip(body):
                _get(url, timeout=600, headers=GZIP)  # answered once the background read is done
                time.sleep(1.0)
    cold = {name: (statistics.median(ts), max(ts)) for name, ts in times.items()}
    if big:
        result.cold_big_ms = cold
    else:
        result.cold_ms = cold
    return cold


SLOWEST_JS = """() => performance.getEntriesByType('resource')
  .map((e) => [e.duration, e.name.replace(location.origin, '')]).sort((a, b) => b[0] - a[0]).slice(0, 4)"""


# TensorBoard's Scalars tab (Polymer cards: open shadow roots, walked here): [line charts drawn with
# their axes, data lines drawn]. Above 40 runs TensorBoard selects no run by default: axes only.
SCALAR_CHARTS_JS = """() => {
  let charts = 0, lines = 0;
  const walk = (root) => {
    for (const el of root.querySelectorAll('vz-line-chart2')) {
      if ((el.shadowRoot || el).querySelector('svg')) charts++;
    }
    for (const el of root.querySelectorAll('path.line')) {
      if ((el.getAttribute('d') || '').length > 20) lines++;
    }
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot);
  };
  walk(document);
  return [charts, lines];
}"""
LINES_GRACE_S = 3.0  # after the first chart's axes, how long to wait for its lines (none above 40 runs)


def _scalars_drawn(page: Any, start: float) -> tuple[float, bool]:
    """(seconds since `start` to the first Scalars chart drawn, with its lines if any run is selected)."""
    _wait(page, lambda: page.evaluate(SCALAR_CHARTS_JS)[0] > 0, poll_ms=5)
    axes = time.perf_counter() - start
    try:
        _wait(page, lambda: page.evaluate(SCALAR_CHARTS_JS)[1] > 0, timeout_s=LINES_GRACE_S, poll_ms=5)
    except TimeoutError:
        return axes, False
    return time.perf_counter() - start, True


# In the Insight iframe: its resource timings (ms since the iframe's time origin).
FRAME_RESOURCES_JS = """() => performance.getEntriesByType('resource')
  .map((e) => [e.name.replace(location.origin, ''), e.responseEnd])"""


def _open_tab(
    page: Any,
    result: TabResult,
    base: str,
    hash_params: str,
    drawn: Callable[[Any], bool],
    data_route: str,
    exact: Callable[[Any], bool] | None = None,
) -> tuple[float, float, dict[str, float]]:
    """TensorBoard loaded on its Scalars tab (charts drawn), then a click on its "Insight" tab until
    `drawn(frame)`: (seconds navigation -> first scalar chart, seconds click -> drawn, {step: ms since
    the click} inside the Insight iframe). With `exact`, the steps go on until `exact(frame)` (a first
    answer from a sample of the steps replaced by every step)."""
    start = time.perf_counter()
    page.goto(f"{base}/#scalars&{hash_params}")
    scalars_s, result.scalars_lines = _scalars_drawn(page, start)
    tab = page.get_by_role("tab", name="Insight")
    page.wait_for_timeout(500)  # the page settles (charts' animations), as before a user's click
    clicked_at = page.evaluate("performance.timeOrigin + performance.now()")
    start = time.perf_counter()
    tab.click()
    frame = _wait(page, lambda: next((f for f in page.frames if FRAME_MARK in f.url), None), poll_ms=5)
    _wait(page, lambda: drawn(frame), poll_ms=5)
    open_s = time.perf_counter() - start
    frame_now = frame.evaluate("performance.now()")
    exact_now = None
    if exact is not None:
        _wait(page, lambda: exact(frame), poll_ms=5)
        exact_now = frame.evaluate("performance.now()")
    origin = frame.evaluate("performance.timeOrigin") - clicked_at  # iframe created, ms after the click
    ends = frame.evaluate(FRAME_RESOURCES_JS)
    data = [(url, end) for url, end in ends if "/data/plugin/insight/" in url and "index.js" not in url]
    steps = {"iframe created": origin}
    for url, end in ends:
        if url.endswith("/index.js"):
            steps["index.js loaded"] = origin + end
    if data:
        url, end = min(data, key=lambda item: item[1])
        steps[f"first data answer ({url.rsplit('/', 1)[-1].split('?')[0]})"] = origin + end
    view = [end for url, end in data if f"/{data_route}?" in url]
    if view:
        steps[f"/{data_route} answered"] = origin + view[0]
        if len(view) > 1:
            steps[f"/{data_route} answered again (all steps)"] = origin + view[-1]
    steps["drawn"] = origin + frame_now
    if exact_now is not None and exact_now - frame_now > 20:
        steps["every step drawn"] = origin + exact_now
    return scalars_s, open_s, steps


def measure_big_render(base: str, run: str, result: TabResult) -> None:
    """Opening the tab on the statistics view of an unread 300-layer x 10,000-step run (target: its
    heatmap drawn < 2 s after the click), then its heatmap of every step."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _, result.open_big_stats_s, steps = _open_tab(
                page,
                result,
                base,
                f"p.insight.run={urllib.parse.quote(run)}&p.insight.view=stats",
                lambda frame: _heatmap_drawn(frame, run),
                "stats_heatmap",
                lambda frame: _heatmap_drawn(frame, run, every_step=True),
            )
            exact_ms = steps.get("every step drawn", steps["drawn"]) - steps["drawn"]
            result.open_big_stats_exact_s = result.open_big_stats_s + exact_ms / 1000
            page.close()
        finally:
            browser.close()


def measure_browser(
    base: str, model_run: str, stats_run: str, cam_run: str, result: TabResult, open_runs: tuple[str, str]
) -> None:
    from playwright.sync_api import sync_playwright

    q = urllib.parse.quote
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # Opening the tab in a loaded TensorBoard (the target), with the Scalars reference.
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            scalars_s, result.open_model_s, result.open_model_steps = _open_tab(
                page,
                result,
                base,
                f"p.insight.run={q(open_runs[0])}",
                lambda frame: _model_table_drawn(frame, open_runs[0]),
                "model",
            )
            result.scalars_ref_s.append(scalars_s)
            page.close()
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            scalars_s, result.open_stats_s, result.open_stats_steps = _open_tab(
                page,
                result,
                base,
                f"p.insight.run={q(open_runs[1])}&p.insight.view=stats",
                lambda frame: _heatmap_drawn(frame, open_runs[1]),
                "stats_heatmap",
                lambda frame: _heatmap_drawn(frame, open_runs[1], every_step=True),
            )
            result.open_stats_exact_s = result.open_stats_s
            if "every step drawn" in result.open_stats_steps:
                drawn_ms = result.open_stats_steps["every step drawn"] - result.open_stats_steps["drawn"]
                result.open_stats_exact_s += drawn_ms / 1000
            result.scalars_ref_s.append(scalars_s)
            page.close()

            # From navigation to /#insight (TensorBoard's page load included).
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            page.goto(f"{base}/#insight&p.insight.run={q(model_run)}")
            frame = _wait(page, lambda: next((f for f in page.frames if FRAME_MARK in f.url), None))
            _wait(page, lambda: _model_table_drawn(frame, model_run), poll_ms=5)
            result.first_render_s = time.perf_counter() - start
            result.plugin_render_s = frame.evaluate("performance.now()") / 1000  # since the iframe began
            result.slowest = [
                f"{ms:.0f} ms {url[:90]}"
                for ms, url in page.evaluate(SLOWEST_JS) + frame.evaluate(SLOWEST_JS)
            ]
            page.close()

            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            page.goto(f"{base}/#insight&p.insight.run={q(stats_run)}&p.insight.view=stats")
            frame = _wait(page, lambda: next((f for f in page.frames if FRAME_MARK in f.url), None))
            _wait(page, lambda: _heatmap_drawn(frame, stats_run), poll_ms=5)
            result.stats_render_s = time.perf_counter() - start
            _wait(page, lambda: _heatmap_drawn(frame, stats_run, every_step=True), poll_ms=5)
            result.stats_render_exact_s = time.perf_counter() - start
            page.close()

            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/#insight&p.insight.run={q(cam_run)}")
            frame = _wait(page, lambda: next((f for f in page.frames if FRAME_MARK in f.url), None))
            _wait(page, lambda: frame.query_selector('[data-testid="view-cam"]')).click()
            _wait(page, lambda: _grid_at(frame, cam_run, None))
            slider = frame.query_selector('[data-testid="step-slider"]')
            _, body = _get(f"{base}/data/plugin/insight/maps?run={q(cam_run)}")
            steps = json.loads(body)["series"][0]["steps"]
            assert int(slider.get_attribute("max")) == len(steps) - 1
            first, cached = [], []
            for times in (first, cached):
                for index in range(1, len(steps)):
                    times.append(frame.evaluate(SCRUB_JS, {"index": index, "step": steps[index]}))
                frame.evaluate(SCRUB_JS, {"index": 0, "step": steps[0]})
            draws = frame.evaluate(
                "performance.getEntriesByName('insight-overlay-draw').map((e) => e.duration)"
            )
            result.scrub_first_ms = statistics.median(first)
            result.scrub_cached_ms = statistics.median(cached)
            result.scrub_p95_ms = _p95(first + cached)
            result.draw_ms = statistics.median(draws) if draws else float("nan")
        finally:
            browser.close()


def _model_table_drawn(frame: Any, run: str) -> bool:
    el = frame.query_selector('[data-testid="model-table"]')
    return bool(el and el.get_attribute("data-run") == run and int(el.get_attribute("data-rows") or 0) > 0)


def _heatmap_drawn(frame: Any, run: str, every_step: bool = False) -> bool:
    """The heatmap of `run` drawn: its first answer (maybe a sample of the steps), or with
    `every_step` the exact one."""
    el = frame.query_selector('[data-testid="heatmap"]')
    if not (el and el.get_attribute("data-run") == run and el.query_selector("canvas")):
        return False
    return not every_step or el.get_attribute("data-sampled") != "1"


def _grid_at(frame: Any, run: str, step: int | None) -> Any:
    """The overlay grid of `run` drawn (nothing pending), at `step` if given."""
    el = frame.query_selector('[data-testid="overlay-grid"]')
    if not el or el.get_attribute("data-run") != run or el.get_attribute("data-pending") != "0":
        return None
    return el if step is None or el.get_attribute("data-step") == str(step) else None


def _wait(page: Any, predicate: Any, timeout_s: float = 60, poll_ms: int = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        page.wait_for_timeout(poll_ms)
    raise TimeoutError("the tab did not reach the expected state")


def run(
    logdir: Path | None = None, requests: int = 20, quiet: bool = False, cold_only: bool = False
) -> TabResult:
    """Everything above on `logdir` (else a generated default one); `cold_only`: only TensorBoard's
    start and the first requests on unread runs (stats_* and big_* runs), no browser."""
    result = TabResult()
    with tempfile.TemporaryDirectory() as tmp:
        if logdir is None:
            logdir = Path(tmp) / "large"
            make_large_logdir.generate(logdir)
        elif make_large_logdir.add_scalars(logdir) and not quiet:
            print("  wrote the runs' training scalars (the Scalars tab's reference)")
        runs = sorted(p.name for p in logdir.iterdir() if p.is_dir())
        stats_runs = [r for r in runs if r.startswith("stats_")]
        big_runs = [r for r in runs if r.startswith("big_")]
        stats_run = stats_runs[0] if stats_runs else ""
        cam_run = next((r for r in runs if r.startswith("cams_")), None)
        layer = make_large_logdir.layer_names(50)[5]
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        with open(Path(tmp) / "tensorboard.log", "w+b") as log:
            start = time.monotonic()
            proc = _start(logdir, port, log)
            try:
                measure_start(base, start, len(runs), result, timeout=600)
                if not quiet:
                    print(
                        f"  first listing {result.first_listing_s:.1f} s, all runs {result.all_runs_s:.1f} s"
                    )
                wait_until_loaded(base, timeout=600)
                if not cold_only:
                    measure_routes(base, stats_run, cam_run, layer, requests, result)
                cold = stats_runs[3 : 3 + COLD_RUNS * len(stats_routes("", "", layer))]
                if stats_runs:
                    measure_cold(base, cold if not cold_only else stats_runs, layer, result)
                if len(big_runs) > 1 and Path(CHROMIUM).exists():
                    measure_big_render(base, big_runs[-1], result)  # a run of its own, unread
                    big_runs = big_runs[:-1]
                if big_runs:
                    measure_cold(base, big_runs, layer, result, big=True)
                if not quiet:
                    report_routes(result)
                    print("  routes measured", flush=True)
                if not cold_only:
                    measure_browser(
                        base, stats_runs[1], stats_runs[2], cam_run, result, (stats_runs[-2], stats_runs[-1])
                    )
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def report_routes(result: TabResult) -> None:
    print(f"{'route (warm server, gzip accepted)':45s} {'p95 ms':>8s} {'bytes':>10s} {'gzipped':>10s}")
    for name, ms in result.route_p95_ms.items():
        print(f"{name:45s} {ms:8.1f} {result.route_bytes[name]:10,d} {result.route_gzip_bytes[name]:10,d}")
    cold_tables = (
        ("50-layer x 1,000-step", result.cold_ms, COLD_TARGET_MS),
        ("300-layer x 10,000-step", result.cold_big_ms, BIG_COLD_TARGET_MS),
    )
    if result.open_big_stats_s == result.open_big_stats_s:  # measured (not NaN)
        print(
            f"opening the tab on the statistics view of an unread 300-layer x 10,000-step run:"
            f" heatmap drawn {result.open_big_stats_s:.2f} s (target < 2 s), every step"
            f" {result.open_big_stats_exact_s:.2f} s"
        )
    for size, cold, target in cold_tables:
        if not cold:
            continue
        print(f"{'first request on an unread ' + size + ' run':45s} {'median':>8s} {'max ms':>10s}  target")
        for name, (median, top) in cold.items():
            verdict = "not asked by the tab" if "API only" in name else "ok" if top < target else "MISSED"
            print(f"{name:45s} {median:8.1f} {top:10.1f}  < {target:.0f} ms {verdict}")


def report_render(result: TabResult) -> None:
    ref = ", ".join(f"{s:.2f}" for s in result.scalars_ref_s)
    print("first meaningful render in headless Chromium (target < 3 s: opening the tab)")
    print(f"  {'':48s} {'open the tab':>12s} {'from navigation':>16s}")
    for name, opened, navigated in (
        ("Model view (its table drawn)", result.open_model_s, result.first_render_s),
        ("statistics view (heatmap drawn, first answer)", result.open_stats_s, result.stats_render_s),
        (
            "statistics view (heatmap of every step drawn)",
            result.open_stats_exact_s,
            result.stats_render_exact_s,
        ),
    ):
        print(f"  {name:48s} {opened:10.2f} s {navigated:14.2f} s")
    what = "first chart drawn" if result.scalars_lines else "first chart's axes (no run selected)"
    print(f"  {'reference: TensorBoard Scalars, ' + what:48s} {'':>12s} {ref:>14s} s")
    print(f"  from navigation, {result.plugin_render_s:.2f} s of the Model view's is in the Insight iframe")
    timelines = (("Model view", result.open_model_steps), ("statistics view", result.open_stats_steps))
    for name, steps in timelines:
        timeline = ", ".join(f"{k} {v:.0f}" for k, v in steps.items())
        print(f"  opening the tab, {name}, ms after the click: {timeline}")
    print("  slowest requests of the first render from navigation: " + "; ".join(result.slowest))


def report(result: TabResult) -> None:
    print(f"TensorBoard start -> first Insight listing: {result.first_listing_s:.1f} s (target < 10 s)")
    print(f"TensorBoard start -> all {result.runs_listed} runs listed: {result.all_runs_s:.1f} s")
    report_routes(result)
    report_render(result)
    print(
        f"CAM slider, per frame: {result.scrub_first_ms:.0f} ms first pass (fetch + decode),"
        f" {result.scrub_cached_ms:.0f} ms cached, p95 {result.scrub_p95_ms:.0f} ms;"
        f" overlay draw {result.draw_ms:.1f} ms (target < 50 ms)"
    )


def browser_only(base: str) -> TabResult:
    """The browser measures against a TensorBoard already running at `base` (its logdir loaded)."""
    result = TabResult()
    _, body = _get(f"{base}/data/plugin/insight/runs")
    runs = [r["run"] for r in json.loads(body)["runs"]]
    stats_runs = [r for r in runs if r.startswith("stats_")]
    cam_run = next(r for r in runs if r.startswith("cams_"))
    measure_browser(base, stats_runs[1], stats_runs[2], cam_run, result, (stats_runs[-2], stats_runs[-1]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", type=Path, help="an existing large logdir (else one is generated)")
    parser.add_argument("--requests", type=int, default=20, help="requests per route")
    parser.add_argument(
        "--server", help="only the browser measures, against this running TensorBoard (e.g. a restarted one)"
    )
    parser.add_argument(
        "--cold-only", action="store_true", help="only the first requests on unread runs (no browser)"
    )
    args = parser.parse_args()
    if args.server:
        report_render(browser_only(args.server.rstrip("/")))
    elif args.cold_only:
        report_routes(run(args.logdir, args.requests, quiet=True, cold_only=True))
    else:
        report(run(args.logdir, args.requests))


if __name__ == "__main__":
    main()
