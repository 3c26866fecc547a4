"""Schema v2 layer tables read through the routes: a run continued after an upgrade (v1 records, then
v2), a watch whose layers change (a second layer-table tag), damaged records, one record per step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from test_plugin import get_json, make_client

from tb_plugin_insight import metadata, summary

STATS = metadata.RecordKind.ACTIVATION_STATS_TABLE
UNITS = metadata.RecordKind.UNIT_STATS_TABLE
HIST = metadata.RecordKind.ACTIVATION_HISTOGRAM_TABLE
BINS = 4


def stats_row(layer: int, step: int) -> list[float]:
    mean = layer + step / 10  # every number says which layer and step it belongs to
    return [mean, 1.0, mean - 1, mean + 1, 0.0, 0.0, 0.0, 100.0]


def hist_row(layer: int, step: int) -> list[float]:
    return [-1.0 - layer, 1.0 + layer, 0.0, float(step), 1.0, 2.0, 3.0, float(layer)]


def layer_rows(names: list[str], bounded: bool = False) -> list[summary.LayerRow]:
    index = {"a": 0, "b": 1, "c": 2}
    return [(n, "Tanh" if n == "c" else "Linear", (2, 3), index[n], bounded and n == "c") for n in names]


def write(run_dir: Path) -> None:
    """Steps 0-2: v1 records of a, b; steps 3-4: v2 tables of a, b, c; steps 5-6: v2 tables of a, c."""
    writer = EventFileWriter(str(run_dir))
    index = {"a": 0, "b": 1, "c": 2}
    first: set[str] = set()

    def once(tag: str) -> bool:
        new = tag not in first
        first.add(tag)
        return new

    for step in range(7):
        values = []
        if step < 3:
            for name in ("a", "b"):
                tag = metadata.tag_for(metadata.RecordKind.ACTIVATION_STATS, name)
                common = {
                    "module_type": "Linear",
                    "shape": (2, 3),
                    "order": index[name],
                    "with_metadata": once(tag),
                }
                values.append(
                    summary.activation_stats_value(name, np.array(stats_row(index[name], step)), **common)
                )
                tag = metadata.tag_for(metadata.RecordKind.ACTIVATION_HISTOGRAM, name)
                common["with_metadata"] = once(tag)
                values.append(
                    summary.histogram_value(name, np.array(hist_row(index[name], step)), bins=BINS, **common)
                )
        else:
            names = ["a", "b", "c"] if step < 5 else ["a", "c"]
            layers = layer_rows(names)
            stats = np.array([stats_row(index[n], step) for n in names])
            tag = summary.layer_table_tag(STATS, layers)
            values.append(summary.layer_table_value(STATS, stats, layers, with_metadata=once(tag)))
            hist = np.array([hist_row(index[n], step) for n in names])
            tag = summary.layer_table_tag(HIST, layers)
            values.append(summary.layer_table_value(HIST, hist, layers, with_metadata=once(tag), bins=BINS))
            unit_layers = layer_rows(names, bounded=True)
            units = np.array([[0.5 * (n == "a"), 0.25 if n == "c" else np.nan, 8.0] for n in names])
            tag = summary.layer_table_tag(UNITS, unit_layers)
            values.append(summary.layer_table_value(UNITS, units, unit_layers, with_metadata=once(tag)))
        event = event_pb2.Event(step=step, wall_time=1000.0 + step, summary=summary.summary_of(values))
        writer.add_event(event)
    # a damaged layer table (wrong number of rows) at step 7: left out, not misread
    layers = layer_rows(["a", "c"])
    bad = summary.layer_table_value(STATS, np.ones((2, 8)), layers, with_metadata=False)
    bad.tensor.tensor_shape.dim[0].size = 1
    bad.tensor.tensor_content = np.ones((1, 8), np.float32).tobytes()
    writer.add_event(event_pb2.Event(step=7, wall_time=1007.0, summary=summary.summary_of([bad])))
    writer.close()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - werkzeug Client
    root = tmp_path_factory.mktemp("tables")
    write(root / "run")
    return make_client(root)


def test_layers_from_v1_tags_and_both_layer_tables(client) -> None:  # noqa: ANN001
    body = get_json(client, "/layers?run=run")
    # maxStep is the listing's (as in v1): the damaged table at step 7 counts there, not in the series
    assert [(e["name"], e["moduleType"], e["order"], e["maxStep"]) for e in body["layers"]] == [
        ("a", "Linear", 0, 7),
        ("b", "Linear", 1, 4),
        ("c", "Tanh", 2, 7),
    ]
    assert get_json(client, "/runs")["runs"] == [{"run": "run", "numLayers": 3, "maxStep": 7}]


def test_a_layer_series_spans_both_schemas_and_tags(client) -> None:  # noqa: ANN001
    for name, layer, steps in (
        ("a", 0, [0, 1, 2, 3, 4, 5, 6]),
        ("b", 1, [0, 1, 2, 3, 4]),
        ("c", 2, [3, 4, 5, 6]),
    ):
        body = get_json(client, f"/layer_stats?run=run&layer={name}")
        assert body["steps"] == steps
        assert body["wallTimes"] == [1000.0 + s for s in steps]
        np.testing.assert_allclose(body["stats"]["mean"], [layer + s / 10 for s in steps], rtol=1e-6)


def test_heatmap_rows_are_each_layer_at_each_step(client) -> None:  # noqa: ANN001
    body = get_json(client, "/stats_heatmap?run=run&stat=mean")
    assert body["layers"] == ["a", "b", "c"] and body["steps"] == list(range(7))
    for row, layer in enumerate(body["values"]):
        for step, value in enumerate(layer):
            present = (row < 2 and step < 5) or (row == 0) or (row == 2 and step >= 3)
            assert (value is None) == (not present), (row, step)
            if present:
                assert value == pytest.approx(row + step / 10, rel=1e-6)


def test_histograms_of_both_schemas(client) -> None:  # noqa: ANN001
    body = get_json(client, "/histograms?run=run&layer=b")
    assert body["bins"] == BINS and body["steps"] == [0, 1, 2, 3, 4]
    assert body["low"] == [-2.0] * 5 and body["overflow"] == [0, 1, 2, 3, 4]
    assert body["counts"] == [[1, 2, 3, 1]] * 5
    assert get_json(client, "/histograms?run=run&layer=c")["steps"] == [3, 4, 5, 6]


def test_units_from_layer_tables_keep_bounded_per_layer(client) -> None:  # noqa: ANN001
    body = get_json(client, "/units?run=run")
    assert [(e["name"], e["bounded"]) for e in body["layers"]] == [("a", False), ("b", False), ("c", True)]
    assert body["steps"] == [3, 4, 5, 6]
    assert body["dead"][0] == [0.5] * 4 and body["deadSince"] == [3, None, None]
    assert body["saturated"][2] == [0.25] * 4 and body["channels"] == [8, 8, 8]


def test_layer_table_records_per_step_do_not_grow_with_layers() -> None:
    few = summary.layer_table_value(STATS, np.zeros((2, 8)), layer_rows(["a", "b"]), with_metadata=True)
    many_layers = [(f"l{i}", "Linear", (2, 3), i, False) for i in range(300)]
    many = summary.layer_table_value(STATS, np.zeros((300, 8)), many_layers, with_metadata=True)
    assert few.tag != many.tag and few.tag.startswith("insight/layer_table/activation_stats/")
    parsed = metadata.parse_plugin_metadata(many.metadata.plugin_data.content)
    assert parsed.version == metadata.PROTO_VERSION and [e.name for e in parsed.layers][-1] == "l299"
    with pytest.raises(ValueError, match="must have shape"):
        summary.layer_table_value(STATS, np.zeros((3, 8)), layer_rows(["a", "b"]), with_metadata=False)


def test_a_single_table_view_equals_each_layers_own_rows() -> None:
    """build_table's no-copy view of one layer table (rows in another order than the layers', records
    read out of step order) holds what each layer's own rows say (tables.source_rows)."""
    from collections import namedtuple

    from tb_plugin_insight.plugin import layer_index, tables

    datum = namedtuple("datum", "step wall_time numpy")
    series = namedtuple("series", "max_step max_wall_time plugin_content")
    rng = np.random.default_rng(0)
    layers = [(f"l{i}", "Linear", (2,), order, False) for i, order in enumerate([2, 0, 1, 3])]
    value = summary.layer_table_value(STATS, np.zeros((4, 8)), layers, with_metadata=True)
    listing = {value.tag: series(9, 9.0, value.metadata.plugin_data.content)}
    records = [datum(s, 100.0 + s, rng.standard_normal((4, 8)).astype(np.float32)) for s in (3, 0, 9, 5)]
    sources = layer_index.layer_sources(listing, metadata.RecordKind.ACTIVATION_STATS)
    ordered = sorted(sources.values(), key=lambda s: s.data.order)
    table = tables.build_table(ordered, {value.tag: records}, metadata.STAT_FIELDS)
    assert [d.layer for d in table.layers] == ["l1", "l2", "l0", "l3"] and table.steps.tolist() == [
        0,
        3,
        5,
        9,
    ]
    for i, source in enumerate(ordered):
        steps, rows, walls = tables.source_rows(source, {value.tag: records}, {})
        assert steps.tolist() == table.steps[table.present[i]].tolist()
        np.testing.assert_array_equal(table.values[i][table.present[i]], rows)
        np.testing.assert_array_equal(table.wall_times[i][table.present[i]], walls)
        by_step = {d.step: d.numpy for d in records}
        np.testing.assert_array_equal(rows, [by_step[s][int(source.data.layer[1:])] for s in steps])
    picked = tables.field_matrix(table, "std", np.array([2, 0]), np.array([1, 3]))
    np.testing.assert_array_equal(picked, table.values[[2, 0]][:, [1, 3], 1])
    top = tables.field_max(table, "max", np.arange(4), np.arange(4), np.array([0, 2]))
    np.testing.assert_array_equal(
        top, np.stack([table.values[:, :2, 3].max(1), table.values[:, 2:, 3].max(1)], 1)
    )


def test_a_layer_that_runs_only_at_some_steps(tmp_path: Path) -> None:
    """The watched layers that ran differ between steps: each set is its own layer table, and every
    layer's series has exactly the steps it ran at."""
    import torch
    from torch import nn

    from tb_plugin_insight import InsightWriter

    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            x = self.a(x)
            return self.b(x) if self.calls % 2 else x  # b runs at steps 0, 2, 4

    torch.manual_seed(0)
    model = Branchy()
    with InsightWriter(str(tmp_path / "run")) as writer:
        writer.watch(model, every=1, grads=False)
        for _ in range(6):
            model(torch.randn(4, 3))
    client = make_client(tmp_path)
    assert get_json(client, "/layer_stats?run=run&layer=a")["steps"] == [0, 1, 2, 3, 4, 5]
    assert get_json(client, "/layer_stats?run=run&layer=b")["steps"] == [0, 2, 4]
    heatmap = get_json(client, "/stats_heatmap?run=run&stat=mean")
    assert heatmap["layers"] == ["a", "b"]
    assert [v is None for v in heatmap["values"][1]] == [False, True, False, True, False, True]
