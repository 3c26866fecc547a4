"""Cost of the rank comparison against opening each rank's run in the existing views.

Run: `python -m bench.bench_ranks [--ranks 4 --layers 50 --steps 500 --repeats 3]`. A synthetic family
`job/rank<r>` (bench/make_large_logdir.py's run, a different seed per rank: v2 layer tables, as
InsightWriter writes them) is loaded once by TensorBoard's multiplexer; then, each with a fresh plugin
(nothing cached), side by side and alternating:

* per-rank views: `/stats_heatmap` and `/gradients` (300 columns, the tab's requests) of every rank;
* rank comparison: `/rank_alerts` (reads every rank's two tables once and checks 17 statistics), then
  `/rank_spread` of one statistic (the stacks are kept: numpy only).

The figure is the comparison's time over the per-rank views' (median and best of the repeats): reading
each rank's tables dominates both, so the ratio stays near 1 when the comparison reads nothing twice.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tensorboard.backend import application
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

from bench.make_large_logdir import write_stats_run
from tb_plugin_insight.plugin.plugin import InsightPlugin

PREFIX = "/data/plugin/insight"


def _clients(logdir: Path) -> tuple[object, str]:
    hints = {"insight": 0}
    mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance=hints)
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    return data_provider.MultiplexerDataProvider(mux, str(logdir)), str(logdir)


def _fresh(provider: object, logdir: str) -> Client:
    context = base_plugin.TBContext(data_provider=provider, logdir=logdir, sampling_hints={"insight": 0})
    return Client(application.TensorBoardWSGI([InsightPlugin(context)]))


def _timed(client: Client, urls: list[str]) -> float:
    start = time.perf_counter()
    for url in urls:
        response = client.get(PREFIX + url)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rank in range(args.ranks):
            write_stats_run(root / "job" / f"rank{rank}", args.layers, args.steps, seed=rank)
        provider, logdir = _clients(root)
        runs = [f"job/rank{r}" for r in range(args.ranks)]
        per_rank = [
            url
            for run in runs
            for url in (
                f"/stats_heatmap?run={run}&stat=mean&max_steps=300",
                f"/gradients?run={run}&max_steps=300",
            )
        ]
        comparison = [
            "/rank_alerts?family=job",
            "/rank_spread?family=job&kind=activation&stat=std&max_steps=300",
        ]
        ratios, views, ranks = [], [], []
        for _ in range(args.repeats):
            a = _timed(_fresh(provider, logdir), per_rank)
            b = _timed(_fresh(provider, logdir), comparison)
            views.append(a)
            ranks.append(b)
            ratios.append(b / a)
    print(f"family: {args.ranks} ranks x {args.layers} layers x {args.steps} steps")
    print(f"per-rank views (every rank):  median {statistics.median(views):.2f} s, best {min(views):.2f} s")
    print(f"rank comparison:              median {statistics.median(ranks):.2f} s, best {min(ranks):.2f} s")
    print(f"comparison / per-rank views:  median {statistics.median(ratios):.2f}x, best {min(ratios):.2f}x")


if __name__ == "__main__":
    main()
