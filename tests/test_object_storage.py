"""Logdirs on object storage: an `s3://` logdir written, read back and served like a local one.

A local S3-compatible server (moto's standalone server, in a thread on 127.0.0.1, no network) stands in
for S3. TensorBoard's file layer reaches it through boto3 with `S3_ENDPOINT`, as users would point it at
MinIO or Ceph. The same training is written to a local folder and to the bucket; every record read back
from the bucket (through `tb_plugin_insight.read` and through the plugin's routes on TensorBoard's Python
data provider) must equal the local run's. Skipped, saying why, without boto3 or moto[server].
"""

from __future__ import annotations

import json
import logging
import ntpath
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import random_batch, sgd_step
from test_cam_recording import probe_batch
from test_everything_recorded import model_with_everything
from test_plugin import PREFIX, make_client

import tb_plugin_insight
from conftest import tensorboard_process
from tb_plugin_insight import CAM, FeatureMaps, Gradients, Histograms, InsightWriter, logdirs

BUCKET = "insight-test"
RUN = "exp"
STEPS = 4


def _needs_tensorboards_stub() -> None:
    if not hasattr(logdirs.gfile(), "get_filesystem"):
        pytest.skip("TensorFlow is installed: TensorBoard uses TensorFlow's gfile, not the stub tested here")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on a free port of 127.0.0.1 with one empty bucket; yields its endpoint URL.

    Credentials are dummies, and no AWS config file of the machine is read."""
    boto3 = pytest.importorskip("boto3", reason="boto3 is needed for s3:// logdirs (the [s3] extra)")
    server_mod = pytest.importorskip("moto.server", reason="moto[server] provides the local S3 server")
    if not hasattr(logdirs.gfile(), "get_filesystem"):
        pytest.skip(
            "TensorFlow is installed: TensorBoard uses its gfile, whose S3 support this does not set up"
        )
    quiet = logging.getLogger("werkzeug")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # moto's server logs every request
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    nowhere = str(tmp_path_factory.mktemp("aws") / "none")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": nowhere,
            "AWS_SHARED_CREDENTIALS_FILE": nowhere,
            "S3_ENDPOINT": endpoint,  # TensorBoard's gfile stub (and the tensorboard process below)
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        # The stub reads S3_ENDPOINT once, when it is first imported; in this process that may have
        # happened before this fixture ran, so its S3 filesystem is pointed at the server here too.
        patch.setattr(logdirs.gfile().get_filesystem("s3://x/y"), "_s3_endpoint", endpoint)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        try:
            yield endpoint
        finally:
            server.stop()
            quiet.setLevel(level)


def train(log_dir: str) -> None:
    """A few steps recording statistics, gradients, histograms, CAMs and feature maps of a probe."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = model_with_everything()
        gen = torch.Generator().manual_seed(1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with InsightWriter(log_dir) as writer:
            writer.watch(
                model,
                every=1,
                probe=probe_batch(),
                cam=CAM(every=2, methods=["gradcam", "gradcam++"]),
                feature_maps=FeatureMaps(every=2, k=2),
                gradients=Gradients(update_ratio=True),
                histograms=Histograms(every=2, bins=8),
            )
            for step in range(STEPS):
                loss = sgd_step(model, opt, *random_batch(gen, size=12))
                writer.add_scalar("loss", loss.item(), step)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def logdirs_pair(s3: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(local logdir, s3 logdir), each holding run `exp` of the same training."""
    local = tmp_path_factory.mktemp("local")
    train(str(local / RUN))
    remote = f"s3://{BUCKET}/runs"
    train(f"{remote}/{RUN}")
    return str(local), remote


def _objects(endpoint: str, prefix: str) -> list[str]:
    import boto3

    listing = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [entry["Key"] for entry in listing.get("Contents", [])]


def test_the_writer_writes_into_the_bucket(s3: str, logdirs_pair: tuple[str, str]) -> None:
    keys = _objects(s3, f"runs/{RUN}/")
    assert any("/events.out.tfevents." in key for key in keys), keys
    assert all(key.startswith(f"runs/{RUN}/") for key in keys)


def test_reader_reads_the_bucket_like_the_local_run(logdirs_pair: tuple[str, str]) -> None:
    local, remote = (tb_plugin_insight.read(path) for path in logdirs_pair)
    assert remote.runs == local.runs == [RUN]
    layers = local.layers(RUN)
    assert remote.layers(RUN) == layers and layers
    for table in ("stats", "gradients", "units"):
        mine, theirs = getattr(remote, table)(RUN), getattr(local, table)(RUN)
        assert len(mine) == len(theirs) > 0, table
        for column in theirs.columns:
            want, got = theirs[column].to_numpy(), mine[column].to_numpy()
            if want.dtype.kind == "f":
                np.testing.assert_array_equal(got, want, err_msg=f"{table}.{column}")
            else:
                assert list(got) == list(want), (table, column)
    for method in ("gradcam", "gradcam++"):
        mine, theirs = remote.cams(RUN, method=method), local.cams(RUN, method=method)
        assert mine.steps.tolist() == theirs.steps.tolist() == [0, 2]
        np.testing.assert_array_equal(mine.values, theirs.values)
    fmap_layer = local.map_series(RUN)[0]["layer"]
    mine_maps, theirs_maps = remote.feature_maps(RUN, fmap_layer), local.feature_maps(RUN, fmap_layer)
    assert mine_maps.steps.tolist() == theirs_maps.steps.tolist() == [0, 2]
    np.testing.assert_array_equal(mine_maps.values, theirs_maps.values)
    np.testing.assert_array_equal(remote.probe_images(RUN), local.probe_images(RUN))
    hist_remote, hist_local = remote.histograms(RUN, layers[0]), local.histograms(RUN, layers[0])
    np.testing.assert_array_equal(hist_remote.counts, hist_local.counts)


def _without_wall_times(body: Any) -> Any:
    """A route's JSON answer without its wall times (the two trainings ran at different times)."""
    if isinstance(body, dict):
        return {key: _without_wall_times(value) for key, value in body.items() if key != "wallTimes"}
    if isinstance(body, list):
        return [_without_wall_times(value) for value in body]
    return body


def _routes(layer: str, fmap_layer: str, method: str) -> list[str]:
    run = f"run={RUN}"
    return [
        "/runs",
        f"/layers?{run}",
        f"/stats_heatmap?{run}&stat=mean",
        f"/layer_stats?{run}&layer={layer}",
        f"/gradients?{run}",
        f"/histograms?{run}&layer={layer}",
        f"/units?{run}",
        f"/model?{run}",
        f"/probe?{run}",
        f"/probe_image?{run}",
        f"/predictions?{run}",
        f"/maps?{run}",
        f"/map_image?{run}&kind=cam&layer={fmap_layer}&method={method}&step=2",
        f"/feature_map_layers?{run}",
        f"/feature_maps?{run}&layer={fmap_layer}",
        f"/feature_map_image?{run}&layer={fmap_layer}&step=2",
    ]


def test_plugin_routes_serve_the_bucket_like_the_local_run(logdirs_pair: tuple[str, str]) -> None:
    local, remote = (make_client(path) for path in logdirs_pair)
    reader = tb_plugin_insight.read(logdirs_pair[0])
    layer = reader.layers(RUN)[0]
    fmap_layer = reader.map_series(RUN)[0]["layer"]
    for route in _routes(layer, fmap_layer, "gradcam"):
        got, want = remote.get(PREFIX + route), local.get(PREFIX + route)
        assert got.status_code == want.status_code == 200, (route, got.get_data(as_text=True))
        assert got.headers["Content-Type"] == want.headers["Content-Type"], route
        if want.headers["Content-Type"].startswith("application/json"):
            mine, theirs = json.loads(got.get_data()), json.loads(want.get_data())
            assert _without_wall_times(mine) == _without_wall_times(theirs), route
        else:
            assert got.get_data() == want.get_data(), route


def test_rank_runs_are_joined_as_urls(s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """ranks="all" puts rank r's run in `<log_dir>/rank<r>`: a URL stays a URL ("/"-joined)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    with InsightWriter(f"s3://{BUCKET}/family/", ranks="all") as writer:
        assert writer.log_dir == f"s3://{BUCKET}/family/rank1"
        writer.watch(model, every=1)
        model(torch.randn(2, 4)).sum().backward()
    assert any(key.startswith("family/rank1/events.out.tfevents.") for key in _objects(s3, "family/"))
    assert tb_plugin_insight.read(f"s3://{BUCKET}/family").runs == ["rank1"]


def test_a_run_in_progress_is_readable_after_each_flush(s3: str) -> None:
    """S3 cannot append: every flush uploads the event file so far, and a reader sees exactly that."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    root = f"s3://{BUCKET}/live"
    with InsightWriter(f"{root}/exp") as writer:
        writer.watch(model, every=1)

        def steps(n: int) -> None:
            for _ in range(n):
                opt.zero_grad()
                model(torch.randn(2, 4)).sum().backward()
                opt.step()

        steps(2)
        writer.flush()
        reader = tb_plugin_insight.read(root)
        assert sorted(set(reader.stats("exp")["step"])) == [0, 1]
        steps(2)
    reader.reload()
    assert sorted(set(reader.stats("exp")["step"])) == [0, 1, 2, 3]


def test_reader_names_a_missing_bucket_prefix(s3: str) -> None:
    with pytest.raises(ValueError, match="no such log directory"):
        tb_plugin_insight.read(f"s3://{BUCKET}/no/such/runs")


@pytest.mark.parametrize("root", [f"s3://{BUCKET}", f"s3://{BUCKET}/"])
def test_a_bucket_root_is_refused_naming_a_folder_instead(s3: str, root: str) -> None:
    """TensorBoard's S3 layer fails on a bucket's root with "substring not found" (writing) or finds no
    runs (reading); Insight says so up front."""
    with pytest.raises(ValueError, match=rf"bucket's root.*s3://{BUCKET}/runs"):
        InsightWriter(root)
    with pytest.raises(ValueError, match=rf"bucket's root.*s3://{BUCKET}/runs"):
        tb_plugin_insight.read(root)


@pytest.mark.slow
@pytest.mark.parametrize("load_fast", ["false", "auto"])
def test_tensorboard_serves_the_tab_from_the_bucket(
    logdirs_pair: tuple[str, str], tmp_path: Path, load_fast: str
) -> None:
    """`tensorboard --logdir s3://...` in a fresh process (S3_ENDPOINT read at start): the Python loader,
    which `auto` falls back to for every scheme but gs:// (the Rust data server reads local and gs://)."""
    local, remote = logdirs_pair
    # tensorboard_process keeps its log beside the logdir it is given; the later --logdir wins
    with tensorboard_process(tmp_path / "unused", "--logdir", remote, f"--load_fast={load_fast}") as base:
        with urllib.request.urlopen(base + "/data/plugins_listing", timeout=30) as resp:
            assert json.loads(resp.read())["insight"]["enabled"] is True
        with urllib.request.urlopen(f"{base}{PREFIX}/stats_heatmap?run={RUN}&stat=mean", timeout=30) as resp:
            served = json.loads(resp.read())
    want = json.loads(make_client(local).get(PREFIX + f"/stats_heatmap?run={RUN}&stat=mean").get_data())
    assert served == want and served["steps"] == list(range(STEPS))


def test_other_schemes_go_through_fsspec(tmp_path: Path) -> None:
    """A scheme other than s3:// is fsspec's: its in-memory filesystem stands in for gcsfs, adlfs..."""
    fsspec = pytest.importorskip(
        "fsspec", reason="fsspec serves schemes other than s3:// (the [fsspec] extra)"
    )
    root = f"memory://insight-{tmp_path.name}"
    try:
        model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
        with InsightWriter(f"{root}/exp") as writer:
            writer.watch(model, every=1)
            model(torch.randn(2, 4)).sum().backward()
        stats = tb_plugin_insight.read(root).stats("exp")
        assert list(stats["layer"]) == ["0", "1", "2"] and list(stats["step"]) == [0, 0, 0]
    finally:
        fsspec.filesystem("memory").rm(root.removeprefix("memory://"), recursive=True)


# --- paths and schemes (no server needed) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "part", "joined"),
    [
        ("s3://bucket/runs", "rank0", "s3://bucket/runs/rank0"),
        ("s3://bucket/runs/", "rank0", "s3://bucket/runs/rank0"),
        ("s3://bucket", "insight", "s3://bucket/insight"),
        ("gs://b/a/b", "c", "gs://b/a/b/c"),
    ],
)
def test_urls_are_joined_with_slashes(base: str, part: str, joined: str) -> None:
    assert logdirs.join(base, part) == joined


def test_urls_keep_slashes_where_the_os_joins_with_backslashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows `os.path.join("s3://b/runs", "rank0")` gives "s3://b/runs\\rank0", another key."""
    with monkeypatch.context() as patch:
        patch.setattr(os, "path", ntpath)
        url, local = logdirs.join("s3://b/runs", "rank0"), logdirs.join("C:\\runs", "rank0")
    assert (url, local) == ("s3://b/runs/rank0", "C:\\runs\\rank0")


def test_local_paths_are_joined_by_the_os(tmp_path: Path) -> None:
    assert logdirs.join(tmp_path, "rank0") == str(tmp_path / "rank0")
    assert logdirs.scheme(tmp_path) == "" and logdirs.scheme("s3://b/x") == "s3"


def test_an_unusable_scheme_fails_at_once_naming_the_fix(tmp_path: Path) -> None:
    _needs_tensorboards_stub()
    with pytest.raises(ImportError, match=r"nosuchfs://.*fsspec"):
        InsightWriter("nosuchfs://bucket/runs")
    with pytest.raises(ImportError, match=r"nosuchfs://.*fsspec"):
        tb_plugin_insight.read("nosuchfs://bucket/runs")


def test_s3_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with neither boto3 nor fsspec: TensorBoard's stub knows no s3:// filesystem."""
    _needs_tensorboards_stub()
    from tensorboard.compat.tensorflow_stub.io import gfile as stub

    monkeypatch.setattr(stub, "_REGISTERED_FILESYSTEMS", {"": stub.LocalFileSystem()})
    monkeypatch.setattr(stub, "FSSPEC_ENABLED", False)
    with pytest.raises(ImportError, match=r"s3://.*boto3 \(pip install 'tb-plugin-insight\[s3\]'"):
        InsightWriter("s3://bucket/runs/exp")
    with pytest.raises(ImportError, match=r"s3://.*boto3"):
        tb_plugin_insight.read("s3://bucket/runs")


def test_lightning_default_folder_under_a_url_stays_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a logger that has a folder, the callback writes to `<default_root_dir>/insight`."""
    pytest.importorskip(
        "lightning", reason="the Lightning integration needs lightning (the [lightning] extra)"
    )
    from types import SimpleNamespace

    from tb_plugin_insight.integrations import lightning as insight_lightning

    trainer = SimpleNamespace(loggers=[], default_root_dir="s3://bucket/experiments")
    with monkeypatch.context() as patch:
        patch.setattr(os, "path", ntpath)  # as on Windows
        folder = insight_lightning.run_folder(trainer)  # type: ignore[arg-type]
    assert folder == "s3://bucket/experiments/insight"
