"""tb_plugin_insight.read(): every kind as tidy data, equal to what the tab's routes answer.

On the committed v1 fixture (its answers are tests/fixtures/v1_expected.json) and on the same training
written by today's writer (schema v2 layer tables), compared with the plugin's routes in-process.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_plugin import get_json, make_client

import tb_plugin_insight
from tb_plugin_insight import metadata
from tb_plugin_insight.render import png

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import make_v1_logdir  # noqa: E402

EXPECTED = json.loads((FIXTURES / "v1_expected.json").read_text())
RUN = make_v1_logdir.RUN
LAYERS = ["0", "1", "2", "3", "4", "7"]


@pytest.fixture(scope="module")
def v1() -> Any:
    return tb_plugin_insight.read(FIXTURES / "v1_logdir")


@pytest.fixture(scope="module")
def v2_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("v2")
    make_v1_logdir.write(root / RUN)
    return root


@pytest.fixture(scope="module")
def v2(v2_logdir: Path) -> Any:
    return tb_plugin_insight.read(v2_logdir)


@pytest.fixture(scope="module")
def client(v2_logdir: Path) -> Any:
    return make_client(v2_logdir)


def _nan(values: Any) -> np.ndarray:
    """A JSON answer's numbers (None: not finite) as float64 with NaN."""
    return np.array(values, dtype=object).astype(float)


def _by_layer_step(frame: Any, field: str) -> dict[tuple[str, int], float]:
    return {(row.layer, int(row.step)): getattr(row, field) for row in frame.itertuples(index=False)}


def _assert_matrix(frame: Any, field: str, layers: list[str], steps: list[int], matrix: Any) -> None:
    """frame's `field` equals a route's values[layer][step] (None there: no row, or a NaN in it)."""
    found = _by_layer_step(frame, field)
    want = _nan(matrix)
    for i, layer in enumerate(layers):
        for j, step in enumerate(steps):
            got = found.get((layer, step), math.nan)
            assert np.isclose(got, want[i, j], rtol=1e-6, atol=0, equal_nan=True), (field, layer, step)
    assert {key[0] for key in found} <= set(layers) and {key[1] for key in found} <= set(steps)


# --- v1 fixture -------------------------------------------------------------------------------------


def test_v1_runs_and_layers(v1: Any) -> None:
    assert v1.runs == [RUN]
    assert v1.layers(RUN) == [entry["name"] for entry in EXPECTED["layers"]["layers"]]


def test_v1_stats_are_the_recorded_rows(v1: Any) -> None:
    frame = v1.stats(RUN)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["step", "layer", *metadata.STAT_FIELDS]
    assert frame["step"].is_monotonic_increasing  # one row per step and layer, by step
    assert not frame.duplicated(["step", "layer"]).any()
    for layer in LAYERS:
        want = EXPECTED[f"layer_stats_{layer}"]
        rows = frame[frame["layer"] == layer]
        assert rows["step"].tolist() == want["steps"] == [0, 2, 4, 6]
        for field in metadata.STAT_FIELDS:
            np.testing.assert_allclose(rows[field].to_numpy(), _nan(want["stats"][field]), rtol=1e-7)


def test_v1_gradients_and_units(v1: Any) -> None:
    grads = v1.gradients(RUN)
    assert list(grads.columns) == ["step", "layer", *metadata.GRAD_FIELDS]
    body = EXPECTED["gradients"]
    layers = [entry["name"] for entry in body["layers"]]
    for field in metadata.GRAD_FIELDS:
        _assert_matrix(grads, field, layers, body["steps"], body["values"][field])
    assert grads["gradNorm"].notna().any()
    units = v1.units(RUN)
    assert list(units.columns) == ["step", "layer", *metadata.UNIT_FIELDS]
    body = EXPECTED["units"]
    layers = [entry["name"] for entry in body["layers"]]
    _assert_matrix(units, "deadFraction", layers, body["steps"], body["dead"])
    _assert_matrix(units, "saturatedFraction", layers, body["steps"], body["saturated"])


def test_v1_histograms_have_their_edges(v1: Any) -> None:
    for layer in LAYERS:
        want = EXPECTED[f"histograms_{layer}"]
        hist = v1.histograms(RUN, layer)
        assert hist.steps.tolist() == want["steps"]
        assert hist.counts.shape == (len(want["steps"]), want["bins"]) == (4, 8)
        assert hist.edges.shape == (4, 9)
        np.testing.assert_array_equal(hist.counts, np.array(want["counts"]))
        np.testing.assert_allclose(hist.edges[:, 0], _nan(want["low"]))
        np.testing.assert_allclose(hist.edges[:, -1], _nan(want["high"]))
        assert np.all(np.diff(hist.edges, axis=1) > 0)
        assert hist.underflow.tolist() == want["underflow"] and hist.overflow.tolist() == want["overflow"]


def test_v1_model_table(v1: Any) -> None:
    table = v1.model_table(RUN)
    want = EXPECTED["model"]["rows"]
    assert table["name"].tolist() == [row["name"] for row in want]
    assert table["params"].tolist() == [row["params"] for row in want]
    assert table["output"].tolist() == [row["output"] for row in want]
    assert table["watched"].dtype == bool


def test_v1_cams_and_saliency_restore_the_raw_ranges(v1: Any) -> None:
    series = {(s["kind"], s["method"]): s for s in EXPECTED["maps"]["series"]}
    cam = v1.cams(RUN)  # one layer and method in the run: no need to name them
    want = series[("cam", "gradcam")]
    assert (cam.layer, cam.method, cam.probe) == ("4", "gradcam", "probe")
    assert cam.steps.tolist() == want["steps"]
    assert cam.values.shape == (3, 4, 6, 6)
    np.testing.assert_allclose(cam.values.min(axis=(2, 3)), want["rawMin"], atol=1e-9)
    np.testing.assert_allclose(cam.values.max(axis=(2, 3)), want["rawMax"], rtol=1e-6)
    sal = v1.saliency(RUN, method="gradient")
    want = series[("saliency", "gradient")]
    assert sal.values.shape == (3, 4, 12, 12) and sal.layer == ""
    np.testing.assert_allclose(sal.values.max(axis=(2, 3)), want["rawMax"], rtol=1e-6)


def test_v1_feature_maps_and_filters(v1: Any) -> None:
    want = EXPECTED["feature_maps"]
    maps = v1.feature_maps(RUN, "3")
    assert maps.steps.tolist() == want["steps"]
    assert maps.channels == tuple(want["channels"])
    assert maps.values.shape == (3, 4, 2, 6, 6)  # steps, images, channels, H, W
    last = maps.values[-1]
    np.testing.assert_allclose(last.min(axis=(2, 3)), want["scaleMin"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(last.max(axis=(2, 3)), want["scaleMax"], rtol=1e-6, atol=1e-7)
    filters = v1.filters(RUN, "0")
    assert filters.values.shape == (3, 4, 1, 3, 3, 3)  # RGB: one tile per filter
    want = EXPECTED["filters"]
    np.testing.assert_allclose(filters.values[-1].max(axis=(2, 3, 4)), want["scaleMax"], rtol=1e-6)


def test_v1_probe_and_predictions(v1: Any) -> None:
    images = v1.probe_images(RUN)
    assert images.shape == (4, 12, 12, 3) and images.dtype == np.uint8
    frame = v1.predictions(RUN)
    want = EXPECTED["predictions"]
    assert frame["step"].tolist() == [s for s in want["steps"] for _ in range(4)]
    assert frame["predicted"].tolist() == [c for row in want["predicted"] for c in row]


# --- v2 run: the reader answers what the plugin's routes answer --------------------------------------


def test_v2_is_layer_tables(v2_logdir: Path) -> None:
    from helpers import read_events

    tags = {v.tag for e in read_events(v2_logdir / RUN) for v in e.summary.value}
    assert any(tag.startswith("insight/layer_table/") for tag in tags)
    assert not any(tag.startswith("insight/activation_stats/") for tag in tags)


def test_v2_stats_equal_the_routes(v2: Any, client: Any) -> None:
    frame = v2.stats(RUN)
    assert v2.layers(RUN) == LAYERS
    assert len(frame) == 4 * len(LAYERS)
    for layer in LAYERS:
        body = get_json(client, f"/layer_stats?run={RUN}&layer={layer}")
        rows = frame[frame["layer"] == layer]
        assert rows["step"].tolist() == body["steps"]
        for field in metadata.STAT_FIELDS:
            np.testing.assert_array_equal(rows[field].to_numpy(), _nan(body["stats"][field]))


def test_v2_gradients_and_units_equal_the_routes(v2: Any, client: Any) -> None:
    body = get_json(client, f"/gradients?run={RUN}")
    layers = [entry["name"] for entry in body["layers"]]
    grads = v2.gradients(RUN)
    for field in metadata.GRAD_FIELDS:
        _assert_matrix(grads, field, layers, body["steps"], body["values"][field])
    body = get_json(client, f"/units?run={RUN}")
    units = v2.units(RUN)
    layers = [entry["name"] for entry in body["layers"]]
    _assert_matrix(units, "deadFraction", layers, body["steps"], body["dead"])
    _assert_matrix(units, "saturatedFraction", layers, body["steps"], body["saturated"])
    assert units["channels"].tolist()[-len(layers) :] == body["channels"]


def test_v2_histograms_equal_the_routes(v2: Any, client: Any) -> None:
    for layer in LAYERS:
        body = get_json(client, f"/histograms?run={RUN}&layer={layer}")
        hist = v2.histograms(RUN, layer)
        assert hist.steps.tolist() == body["steps"] and hist.module_type == body["moduleType"]
        np.testing.assert_array_equal(hist.counts, np.array(body["counts"]))
        np.testing.assert_array_equal(hist.edges[:, 0], _nan(body["low"]))
        np.testing.assert_array_equal(hist.edges[:, -1], _nan(body["high"]))


def test_v2_model_table_equals_the_route(v2: Any, client: Any) -> None:
    body = get_json(client, f"/model?run={RUN}")
    assert v2.model(RUN) == body
    table = v2.model_table(RUN)
    assert table.to_dict("records") == [{key: row.get(key) for key in table.columns} for row in body["rows"]]


def test_v2_maps_equal_the_stored_images(v2: Any, client: Any) -> None:
    series = {s["kind"]: s for s in get_json(client, f"/maps?run={RUN}")["series"]}
    for kind, maps in (("cam", v2.cams(RUN, layer="4", method="gradcam")), ("saliency", v2.saliency(RUN))):
        want = series[kind]
        assert maps.steps.tolist() == want["steps"]
        for i, step in enumerate(want["steps"]):
            url = (
                f"/map_image?run={RUN}&kind={kind}&layer={want['layer']}&method={want['method']}&step={step}"
            )
            codes = png.decode(client.get("/data/plugin/insight" + url).get_data())
            codes = codes.reshape(want["numImages"], want["height"], want["width"]) / 255.0
            low, high = np.array(want["rawMin"][i]), np.array(want["rawMax"][i])
            np.testing.assert_allclose(
                maps.values[i], low[:, None, None] + codes * (high - low)[:, None, None]
            )


def test_v2_feature_maps_equal_the_stored_tiles(v2: Any, client: Any) -> None:
    maps = v2.feature_maps(RUN, "0")
    for i, step in enumerate(maps.steps.tolist()):
        body = get_json(client, f"/feature_maps?run={RUN}&layer=0&step={step}")
        image = client.get(f"/data/plugin/insight/feature_map_image?run={RUN}&layer=0&step={step}").get_data()
        codes = png.ungrid(png.decode(image), body["height"], body["width"]) / 255.0
        low, high = np.array(body["scaleMin"]), np.array(body["scaleMax"])
        np.testing.assert_allclose(
            maps.values[i], low[..., None, None] + codes * (high - low)[..., None, None]
        )
        assert maps.channels == tuple(body["channels"])


@pytest.fixture(scope="module")
def featurevis_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few steps of the fixture's model with feature visualisations of layer "3" (2 channels)."""
    import torch

    from tb_plugin_insight import InsightWriter

    root = tmp_path_factory.mktemp("featurevis")
    net = make_v1_logdir.model()
    gen = torch.Generator().manual_seed(1)
    with InsightWriter(str(root / "fv")) as writer:
        writer.watch(
            net, every=2, probe=torch.randn(2, 3, 12, 12, generator=gen), cam_every=0, maps_every=0,
            featurevis_every=2, featurevis_layers=["3"], featurevis_channels=[4, 1], featurevis_steps=4,
        )  # fmt: skip
        for _ in range(3):
            net(torch.randn(4, 3, 12, 12, generator=gen)).sum().backward()
    return root


def test_feature_vis_equals_the_stored_strips(featurevis_logdir: Path) -> None:
    client = make_client(featurevis_logdir)
    listed = get_json(client, "/feature_vis_layers?run=fv")["featureVis"]
    assert [entry["layer"] for entry in listed] == ["3"]
    vis = tb_plugin_insight.read(featurevis_logdir).feature_vis("fv", "3")
    assert vis.steps.tolist() == listed[0]["steps"] == [0, 2]
    assert vis.channels == (4, 1)
    assert vis.values.shape[:2] == (2, 2) and vis.values.shape[2:4] == (12, 12)
    for i, step in enumerate(vis.steps.tolist()):
        image = client.get(f"/data/plugin/insight/feature_vis_image?run=fv&layer=3&step={step}").get_data()
        strip = png.ungrid(png.decode(image), 12, 12)[0] / 255.0
        np.testing.assert_array_equal(vis.values[i], strip)
    assert 0.0 <= vis.values.min() and vis.values.max() <= 1.0


def test_reading_needs_no_torch() -> None:
    """A process where importing torch fails reads every kind of the fixture (TensorBoard-only
    environments: the reader, like the plugin, must not import torch)."""
    import subprocess

    from test_plugin_imports import NO_TORCH

    code = NO_TORCH.split("for name in sys.argv")[0] + (
        "import tb_plugin_insight\n"
        f"r = tb_plugin_insight.read({str(FIXTURES / 'v1_logdir')!r})\n"
        "n = len(r.stats('run')) + len(r.gradients('run')) + len(r.units('run'))\n"
        "n += len(r.model_table('run')) + r.cams('run').values.size\n"
        "n += r.feature_maps('run', '3').values.size + r.histograms('run', '0').counts.size\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n"
        "print('read', n)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("read ") and int(out.stdout.split()[1]) > 0


# --- the numpy path, and errors ------------------------------------------------------------------------


def test_without_pandas_tables_are_dicts_of_arrays(v2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with_pandas = v2.gradients(RUN)
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    columns = v2.gradients(RUN)
    assert isinstance(columns, dict)
    assert list(columns) == ["step", "layer", *metadata.GRAD_FIELDS]
    assert columns["step"].dtype == np.int64 and columns["layer"].tolist() == with_pandas["layer"].tolist()
    for name in metadata.GRAD_FIELDS:
        assert isinstance(columns[name], np.ndarray)
        np.testing.assert_array_equal(columns[name], with_pandas[name].to_numpy())
    table = v2.model_table(RUN)
    assert isinstance(table, dict) and table["name"].dtype == object and table["params"].dtype == np.int64


def test_bad_names_say_what_exists(v2: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no run 'nope'.*runs: 'run'"):
        v2.stats("nope")
    with pytest.raises(ValueError, match="no layer 'nope'"):
        v2.histograms(RUN, "nope")
    with pytest.raises(ValueError, match=r"has no cam series.*layer='9'.*it has: \(probe='probe', layer='4'"):
        v2.cams(RUN, layer="9")
    with pytest.raises(ValueError, match="no feature maps of layer '7'"):
        v2.feature_maps(RUN, "7")
    with pytest.raises(ValueError, match="no such log directory"):
        tb_plugin_insight.read(tmp_path / "missing")
    empty = tb_plugin_insight.read(tmp_path)
    assert empty.runs == []


def test_reload_sees_what_was_written_since(tmp_path: Path) -> None:
    import shutil

    reader = tb_plugin_insight.read(tmp_path)
    assert reader.runs == []
    shutil.copytree(FIXTURES / "v1_logdir" / RUN, tmp_path / "later")
    assert reader.runs == []  # loaded once, when made
    reader.reload()
    assert reader.runs == ["later"]
    assert reader.stats("later")["step"].unique().tolist() == [0, 2, 4, 6]
