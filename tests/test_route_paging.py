"""Routes answer with what a view needs: /gradients per layer, per step, and thinned to max_steps
columns without hiding NaN/Inf."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import data_provider
from test_plugin import get_json, make_client

from tb_plugin_insight import InsightWriter, metadata, summary

LAYERS = ("conv", "relu", "fc")
STEPS = list(range(0, 100, 5))  # 20 recorded steps
F = {name: i for i, name in enumerate(metadata.GRAD_FIELDS)}
NAN_AT = 35  # not the last step of its column when thinned to 4 columns


def grad_row(layer: int, step: int) -> np.ndarray:
    row = np.arange(len(metadata.GRAD_FIELDS), dtype=np.float64) + 100 * layer + step / 1000
    row[F["gradNanCount"]] = 3 if (layer == 1 and step == NAN_AT) else 0
    row[F["gradInfCount"]] = 0
    return row


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("paging")
    with InsightWriter(str(root / "run")) as writer:
        for step in STEPS:
            values = [
                summary.gradient_stats_value(
                    name,
                    grad_row(i, step),
                    module_type="Conv2d",
                    shape=(2, 3),
                    order=i,
                    with_metadata=step == 0,
                )
                for i, name in enumerate(LAYERS)
            ]
            writer._write(summary.summary_of(values), step)
    return root


def test_without_paging_parameters_every_step_of_every_layer(logdir: Path) -> None:
    body = get_json(make_client(logdir), "/gradients?run=run")
    assert body["steps"] == STEPS and body["totalSteps"] == len(STEPS)
    assert [layer["name"] for layer in body["layers"]] == list(LAYERS)
    assert body["values"]["gradNorm"][2] == [pytest.approx(200 + s / 1000) for s in STEPS]


def test_one_layer(logdir: Path) -> None:
    body = get_json(make_client(logdir), "/gradients?run=run&layer=relu&fields=gradNorm,updateRatio")
    assert [layer["name"] for layer in body["layers"]] == ["relu"]
    assert body["steps"] == STEPS
    assert body["values"]["updateRatio"] == [
        [pytest.approx(100 + F["updateRatio"] + s / 1000) for s in STEPS]
    ]


def test_one_step_is_the_recorded_step_at_or_before(logdir: Path) -> None:
    client = make_client(logdir)
    body = get_json(client, "/gradients?run=run&step=37&fields=gradNorm")
    assert body["steps"] == [35] and body["totalSteps"] == len(STEPS)
    assert body["values"]["gradNorm"] == [[pytest.approx(100 * i + 0.035)] for i in range(3)]
    assert get_json(client, "/gradients?run=run&step=1000")["steps"] == [95]
    assert get_json(client, "/gradients?run=run&step=0")["steps"] == [0]


def test_max_steps_thins_columns_but_keeps_nan_counts(logdir: Path) -> None:
    client = make_client(logdir)
    query = "/gradients?run=run&max_steps=4&fields=gradNorm,gradNanCount"
    first = get_json(client, query)  # an unread run: a sample of its steps (see the test below)
    assert first["sampled"] is True and "totalSteps" not in first and len(first["steps"]) == 4
    body = get_json(client, query)
    assert "sampled" not in body
    assert body["steps"] == [20, 45, 70, 95] and body["totalSteps"] == 20
    assert body["values"]["gradNorm"][0] == [pytest.approx(s / 1000) for s in (20, 45, 70, 95)]
    assert body["values"]["gradNanCount"][1] == [0, 3, 0, 0]  # step 35 lies in the column shown as 45
    assert body["values"]["gradNanCount"][0] == [0, 0, 0, 0]
    same = get_json(make_client(logdir), "/gradients?run=run&max_steps=20")
    assert same["steps"] == STEPS


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("layer=nope", 404, "no gradient statistics of layer 'nope'"),
        ("step=-1", 400, "'step' must be a non-negative integer"),
        ("step=abc", 400, "'step' must be a non-negative integer"),
        ("max_steps=0", 400, "'max_steps' must be an integer from 1"),
        ("max_steps=x", 400, "'max_steps' must be an integer from 1"),
        ("max_steps=1&max_steps=2", 400, "given 2 times"),
    ],
)
def test_bad_paging_parameters(logdir: Path, query: str, status: int, message: str) -> None:
    body = get_json(make_client(logdir), f"/gradients?run=run&{query}", status)
    assert message in body["error"]["message"]


def _write_grads(run_dir: Path, steps: list[int]) -> None:
    with InsightWriter(str(run_dir)) as writer:
        for step in steps:
            values = [
                summary.gradient_stats_value(
                    name, grad_row(i, step), module_type="Conv2d", shape=(2, 3), order=i, with_metadata=True
                )
                for i, name in enumerate(LAYERS)
            ]
            writer._write(summary.summary_of(values), step)


def test_cached_tables_follow_new_data(tmp_path: Path) -> None:
    """Routes reuse one read per run until the run gets new records; then they show them (once the
    run's listing is older than its reuse time, listings.LISTING_TTL)."""
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from werkzeug.test import Client

    from tb_plugin_insight.plugin import listings
    from tb_plugin_insight.plugin.plugin import InsightPlugin

    _write_grads(tmp_path / "run", [0, 5])
    mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"insight": 0})
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(tmp_path))
    context = base_plugin.TBContext(
        data_provider=provider, logdir=str(tmp_path), sampling_hints={"insight": 0}
    )
    plugin = InsightPlugin(context)
    client = Client(application.TensorBoardWSGI([plugin]))
    now = [0.0]
    plugin._queries.listings.clock = lambda: now[0]
    assert get_json(client, "/gradients?run=run")["steps"] == [0, 5]
    assert get_json(client, "/gradients?run=run&layer=fc")["steps"] == [0, 5]
    _write_grads(tmp_path / "run", [10, 15])
    mux.Reload()
    assert get_json(client, "/gradients?run=run")["steps"] == [0, 5]  # the listing is reused a while
    now[0] += listings.LISTING_TTL
    assert get_json(client, "/gradients?run=run")["steps"] == [0, 5, 10, 15]
    assert get_json(client, "/gradients?run=run&step=12&fields=gradNorm")["values"]["gradNorm"][2] == [
        pytest.approx(200.010)
    ]


def test_stats_heatmap_max_steps(tmp_path: Path) -> None:
    with InsightWriter(str(tmp_path / "run")) as writer:
        for step in range(10):
            row = np.array([step, 1.0, -1.0, 2.0, 0.5, 2.0 if step == 3 else 0.0, 0.0, 100.0])
            value = summary.activation_stats_value(
                "conv", row, module_type="Conv2d", shape=(1,), order=0, with_metadata=step == 0
            )
            writer._write(summary.summary_of([value]), step)
    client = make_client(tmp_path)
    full = get_json(client, "/stats_heatmap?run=run&stat=mean")
    assert full["steps"] == list(range(10)) and full["totalSteps"] == 10
    mean = get_json(client, "/stats_heatmap?run=run&stat=mean&max_steps=3")
    assert mean["steps"] == [2, 5, 9] and mean["totalSteps"] == 10 and mean["values"] == [[2.0, 5.0, 9.0]]
    nans = get_json(client, "/stats_heatmap?run=run&stat=nanCount&max_steps=3")
    assert nans["values"] == [[0.0, 2.0, 0.0]]  # step 3's NaNs show in the column of step 5
    bad = get_json(client, "/stats_heatmap?run=run&stat=mean&max_steps=0", 400)
    assert "'max_steps' must be an integer" in bad["error"]["message"]


def _write_long_stats(run_dir: Path, steps: int, nan_at: int) -> None:
    """Two layers; mean = step + 100 * layer; layer 0 has 2 NaNs at `nan_at`."""
    with InsightWriter(str(run_dir)) as writer:
        for step in range(steps):
            values = [
                summary.activation_stats_value(
                    name,
                    np.array([step + 100 * i, 1, -1, 2, 0.5, 2 if (i, step) == (0, nan_at) else 0, 0, 9]),
                    module_type="Conv2d", shape=(1,), order=i, with_metadata=step == 0,
                )
                for i, name in enumerate(("conv", "relu"))
            ]  # fmt: skip
            writer._write(summary.summary_of(values), step)


def test_first_heatmap_of_an_unread_run_is_a_sample_then_every_step(tmp_path: Path) -> None:
    """The first /stats_heatmap?max_steps=K on a run nothing read yet: K of its steps as the data
    provider samples them (its `downsample`), each column that step's exact values, "sampled": true;
    the full table is read meanwhile and the next answer has the exact thinned columns."""
    _write_long_stats(tmp_path / "run", steps=40, nan_at=13)
    client = make_client(tmp_path)
    first = get_json(client, "/stats_heatmap?run=run&stat=mean&max_steps=8")
    assert first["sampled"] is True and "totalSteps" not in first and first["layers"] == ["conv", "relu"]
    steps = first["steps"]
    assert len(steps) == 8 and steps == sorted(set(steps)) and steps[-1] == 39  # the last step is kept
    assert first["values"] == [[float(s + 100 * i) for s in steps] for i in range(2)]
    exact = get_json(client, "/stats_heatmap?run=run&stat=mean&max_steps=8&encoding=f32")
    assert "sampled" not in exact and exact["totalSteps"] == 40
    assert exact["steps"] == [4, 9, 14, 19, 24, 29, 34, 39]  # each column shows its last step
    np.testing.assert_array_equal(
        _f32(exact["values"]), [[s + 100 * i for s in exact["steps"]] for i in range(2)]
    )
    again = get_json(client, "/stats_heatmap?run=run&stat=mean&max_steps=8")
    assert "sampled" not in again and again["steps"] == exact["steps"]


def test_nan_counts_and_short_runs_are_never_sampled(tmp_path: Path) -> None:
    """NaN/Inf counts need every step (a column is their maximum); a run with fewer steps than asked
    is read whole by the sample itself."""
    _write_long_stats(tmp_path / "long", steps=40, nan_at=13)
    _write_long_stats(tmp_path / "short", steps=6, nan_at=3)
    client = make_client(tmp_path)
    nans = get_json(client, "/stats_heatmap?run=long&stat=nanCount&max_steps=8")
    assert "sampled" not in nans and nans["totalSteps"] == 40
    assert nans["values"][0] == [0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # step 13 in the column of 14
    short = get_json(client, "/stats_heatmap?run=short&stat=mean&max_steps=8")
    assert "sampled" not in short and short["steps"] == list(range(6)) and short["totalSteps"] == 6


def _f32(matrix: dict) -> np.ndarray:
    import base64

    return np.frombuffer(base64.b64decode(matrix["f32"]), dtype="<f4").reshape(matrix["shape"])


def test_f32_encoding_carries_the_same_values(logdir: Path) -> None:
    """encoding=f32: each matrix as base64 float32 with its shape; NaN where JSON has null."""
    client = make_client(logdir)
    query = "/gradients?run=run&max_steps=4&fields=gradNorm,gradNanCount,updateRatio"
    get_json(client, query)  # the first answer on an unread run is a sample of its steps
    plain = get_json(client, query)
    packed = get_json(client, query + "&encoding=f32")
    assert packed["steps"] == plain["steps"] and packed["layers"] == plain["layers"]
    for field, rows in plain["values"].items():
        decoded = _f32(packed["values"][field])
        expected = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float32)
        np.testing.assert_array_equal(decoded, expected)
    empty_layer = get_json(client, "/gradients?run=run&layer=nope&encoding=f32", 404)
    assert "nope" in empty_layer["error"]["message"]
    bad = get_json(client, "/gradients?run=run&encoding=f64", 400)
    assert "'encoding' must be one of f32, json" in bad["error"]["message"]


def test_f32_heatmap_marks_missing_values_nan(tmp_path: Path) -> None:
    with InsightWriter(str(tmp_path / "run")) as writer:
        for step in range(4):
            values = [
                summary.activation_stats_value(
                    name, np.full(8, float(step + i)), module_type="ReLU", shape=(1,), order=i,
                    with_metadata=step == 2 * i,
                )
                for i, name in enumerate(("a", "b"))
                if name == "a" or step >= 2  # layer b is recorded from step 2 on
            ]  # fmt: skip
            writer._write(summary.summary_of(values), step)
    body = get_json(make_client(tmp_path), "/stats_heatmap?run=run&stat=mean&encoding=f32")
    assert body["layers"] == ["a", "b"] and body["steps"] == [0, 1, 2, 3]
    np.testing.assert_array_equal(_f32(body["values"]), [[0, 1, 2, 3], [np.nan, np.nan, 3, 4]])


def test_units_thinned_keep_spikes_and_exact_first_steps(tmp_path: Path) -> None:
    """/units?max_steps: each column is its steps' maximum; deadSince is the exact first step."""
    dead = {step: (0.5 if step == 13 else 0.25 if step >= 17 else 0.0) for step in range(20)}
    with InsightWriter(str(tmp_path / "run")) as writer:
        for step in range(20):
            values = [
                summary.activation_stats_value(
                    "relu", np.zeros(8), module_type="ReLU", shape=(1,), order=0, with_metadata=step == 0
                ),
                summary.unit_stats_value(
                    "relu", np.array([dead[step], 0.0, 4.0]), bounded=False, module_type="ReLU",
                    shape=(1,), order=0, with_metadata=step == 0,
                ),
            ]  # fmt: skip
            writer._write(summary.summary_of(values), step)
    client = make_client(tmp_path)
    full = get_json(client, "/units?run=run")
    assert full["steps"] == list(range(20)) and full["dead"] == [[dead[s] for s in range(20)]]
    thin = get_json(client, "/units?run=run&max_steps=4")
    assert thin["steps"] == [4, 9, 14, 19] and thin["totalSteps"] == 20
    assert thin["dead"] == [[0.0, 0.0, 0.5, 0.25]]  # the spike at step 13 is kept
    assert thin["deadSince"] == [13] and thin["saturatedSince"] == [None] and thin["channels"] == [4]
    packed = get_json(client, "/units?run=run&max_steps=4&encoding=f32")
    np.testing.assert_array_equal(_f32(packed["dead"]), [[0.0, 0.0, 0.5, 0.25]])
    assert (
        "'max_steps' must be an integer"
        in get_json(client, "/units?run=run&max_steps=0", 400)["error"]["message"]
    )


def test_json_bodies_with_nan_are_still_valid_json() -> None:
    """Bodies are dumped without TensorBoard's Cleanse; one holding NaN falls back to it."""
    from tb_plugin_insight.plugin import encode

    assert encode.json_bytes({"a": [1.5, None], "b": "x"}) == b'{"a":[1.5,null],"b":"x"}'
    assert encode.json_bytes({"a": float("nan")}) is None


def _write_stats(run_dir: Path) -> None:
    with InsightWriter(str(run_dir)) as writer:
        value = summary.activation_stats_value(
            "conv", np.zeros(8), module_type="Conv2d", shape=(1,), order=0, with_metadata=True
        )
        writer._write(summary.summary_of([value]), 0)


def test_a_slow_runs_listing_is_refreshed_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/runs: reused RUNS_TTL seconds; then a fast listing is redone at once, a slow one (SLOW_LISTING or
    more) in the background while the previous answer is served."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    from tb_plugin_insight.plugin import queries as queries_mod

    _write_stats(tmp_path / "a")
    mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"insight": 0})
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    queries = queries_mod.InsightQueries(data_provider.MultiplexerDataProvider(mux, str(tmp_path)), 0)
    now = [0.0]
    queries.listings.clock = lambda: now[0]
    ctx = context.RequestContext()
    names = lambda: [r["run"] for r in queries.runs(ctx, "")["runs"]]  # noqa: E731
    assert names() == ["a"]
    _write_stats(tmp_path / "b")
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    assert names() == ["a"]  # reused
    now[0] += queries_mod.RUNS_TTL
    assert names() == ["a", "b"]  # a fast listing is redone at once
    _write_stats(tmp_path / "c")
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    monkeypatch.setattr(queries_mod, "SLOW_LISTING", 0.0)  # every listing counts as slow
    monkeypatch.setattr(queries_mod, "REFRESH_DELAY", 0.0)
    now[0] += queries_mod.RUNS_TTL
    assert names() == ["a", "b"]  # the previous answer, while the refresh runs
    for thread in [t for t in __import__("threading").enumerate() if t.name == "insight-runs-refresh"]:
        thread.join(10)
    assert names() == ["a", "b", "c"]


def test_concurrent_first_requests_share_one_table_read(tmp_path: Path) -> None:
    """Several routes asking for one unread table at once (the tab does) wait for a single read; a
    request for one layer meanwhile reads that layer alone rather than wait."""
    import json
    import threading
    import time

    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from werkzeug.test import Client

    from tb_plugin_insight.plugin.plugin import InsightPlugin

    _write_long_stats(tmp_path / "run", steps=30, nan_at=3)
    mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"insight": 0})
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(tmp_path))
    reads = []

    class SlowCountingProvider:
        def __getattr__(self, name: str):  # everything else as the real provider
            return getattr(provider, name)

        def read_tensors(self, ctx, **kwargs):
            reads.append(kwargs["run_tag_filter"].tags)
            time.sleep(0.3)  # a slow read: the other requests arrive meanwhile
            return provider.read_tensors(ctx, **kwargs)

    context = base_plugin.TBContext(
        data_provider=SlowCountingProvider(), logdir=str(tmp_path), multiplexer=mux,
        sampling_hints={"insight": 0},
    )  # fmt: skip
    client = Client(application.TensorBoardWSGI([InsightPlugin(context)]))
    urls = [
        "/stats_heatmap?run=run&stat=mean",
        "/layer_stats?run=run&layer=conv",
        "/stats_heatmap?run=run&stat=std",
    ]
    bodies: dict[str, dict] = {}

    def get(url: str) -> None:
        response = client.get("/data/plugin/insight" + url)
        bodies[url] = json.loads(response.get_data(as_text=True))

    threads = [threading.Thread(target=get, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    conv = metadata.tag_for(metadata.RecordKind.ACTIVATION_STATS, "conv")
    relu = metadata.tag_for(metadata.RecordKind.ACTIVATION_STATS, "relu")
    # one read of the run's statistics table for both heatmaps, and the clicked layer read alone
    assert sorted(reads, key=len) == [frozenset({conv}), frozenset({conv, relu})]
    assert bodies[urls[0]]["steps"] == list(range(30)) and bodies[urls[1]]["steps"] == list(range(30))
    assert bodies[urls[2]]["values"][0] == [1.0] * 30


def test_one_layer_of_an_unread_run_reads_only_that_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/layer_stats and /gradients?layer= on a run whose table nothing read yet read that layer's tag
    alone (every step, the same answer as from the run's table); once the run's table is read, they
    answer from it without reading again."""
    _write_long_stats(tmp_path / "run", steps=40, nan_at=13)
    with InsightWriter(str(tmp_path / "run")) as writer:
        for step in STEPS:
            values = [
                summary.gradient_stats_value(
                    name, grad_row(i, step), module_type="Conv2d", shape=(2, 3), order=i,
                    with_metadata=step == 0,
                )
                for i, name in enumerate(LAYERS)
            ]  # fmt: skip
            writer._write(summary.summary_of(values), step)
    read_tags: list[list[str]] = []
    original = data_provider.MultiplexerDataProvider.read_tensors

    def recording(self, ctx, *, run_tag_filter, **kwargs):  # noqa: ANN001, ANN202
        read_tags.append(sorted(run_tag_filter.tags))
        return original(self, ctx, run_tag_filter=run_tag_filter, **kwargs)

    monkeypatch.setattr(data_provider.MultiplexerDataProvider, "read_tensors", recording)
    client = make_client(tmp_path)
    relu = get_json(client, "/layer_stats?run=run&layer=relu")
    grads = get_json(client, "/gradients?run=run&layer=fc&fields=gradNorm,gradNanCount")
    assert read_tags == [
        [metadata.tag_for(metadata.RecordKind.ACTIVATION_STATS, "relu")],
        [metadata.tag_for(metadata.RecordKind.GRADIENT_STATS, "fc")],
    ]
    assert relu["steps"] == list(range(40)) and relu["stats"]["mean"] == [100.0 + s for s in range(40)]
    assert relu["stats"]["nanCount"] == [0.0] * 40
    assert grads["steps"] == STEPS and grads["totalSteps"] == len(STEPS)
    assert grads["values"]["gradNorm"] == [[pytest.approx(200 + s / 1000) for s in STEPS]]

    conv = get_json(client, "/layer_stats?run=run&layer=conv")  # another click: its layer alone again
    assert conv["stats"]["nanCount"][13] == 2.0 and len(read_tags) == 3
    whole = get_json(client, "/gradients?run=run")  # the overview reads every layer
    assert len(read_tags[-1]) == len(LAYERS)
    get_json(client, "/stats_heatmap?run=run&stat=nanCount")  # counts: the full table, read once
    count = len(read_tags)
    assert get_json(client, "/layer_stats?run=run&layer=relu") == relu  # from the run's table
    assert get_json(client, "/gradients?run=run&layer=fc&fields=gradNorm,gradNanCount") == grads
    assert len(read_tags) == count and whole["totalSteps"] == len(STEPS)
    get_json(client, "/layer_stats?run=run&layer=nope", status=404)
    get_json(client, "/gradients?run=run&layer=nope", status=404)


def test_first_answers_on_an_unread_layer_table_run_are_samples_then_exact(tmp_path: Path) -> None:
    """Layer tables (v2): the gradient overview, /units, one layer's gradients and /layer_stats answer
    first from a sample of the steps ("sampled": true, no totalSteps: reading 300 layers x 10,000
    steps whole costs seconds), then exactly once the background read is done."""
    import torch
    from torch import nn

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    steps = 600  # more than LAYER_SAMPLE (500) and FIRST_SAMPLE (100)
    with InsightWriter(str(tmp_path / "run")) as writer:
        writer.watch(model, every=1, histograms=False)
        for _ in range(steps):
            opt.zero_grad()
            model(torch.randn(2, 3)).sum().backward()
            opt.step()
    queries = {
        "/gradients?run=run&max_steps=300&fields=gradNorm,gradNanCount": 100,
        "/units?run=run&max_steps=300": 100,
        "/gradients?run=run&layer=2&fields=gradNorm": 500,
        "/layer_stats?run=run&layer=0": 500,
    }
    for query, sample in queries.items():
        client = make_client(tmp_path)  # nothing read yet
        first = get_json(client, query)
        assert first.get("sampled") is True and "totalSteps" not in first, query
        assert len(first["steps"]) == sample and first["steps"][-1] == steps - 1, query
        exact = get_json(client, query)
        assert "sampled" not in exact, query
        assert set(first["steps"]) <= set(range(steps)), query
        if "max_steps" in query:
            assert exact["totalSteps"] == steps and len(exact["steps"]) == 300, query
        else:
            assert exact["steps"] == list(range(steps)), query
