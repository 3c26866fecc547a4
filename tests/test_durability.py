"""Never lose data: a killed training process, damaged or growing event files, memory over long runs.

What TensorBoard's loaders do with damaged files (the plugin reads only through the data provider, so it
shows what they deliver and cannot know what they skipped; TensorBoard's log names the file):
* a truncated last record (a file still being written, or cut short) is treated as not yet complete:
  everything before it is shown, and the rest appears once it is completed;
* a record with a bad checksum: the Python loader (`--load_fast=false`, and this file's in-process
  client) stops reading that file there; records before it are shown. The Rust data server (the default
  when tensorboard-data-server is installed) does not check data checksums: it serves the record, with
  whatever bit was flipped (seen: a gradient element count of 2048.00000003 instead of 2048).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
import torch
from test_model_matrix import read_back
from test_plugin import PREFIX, make_client
from torch import nn

from conftest import tensorboard_process, write_run
from tb_plugin_insight import InsightWriter

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SCRIPTS = Path(__file__).resolve().parent / "scripts"


@pytest.mark.slow
def test_sigkill_keeps_everything_flushed(tmp_path: Path) -> None:
    flush_step = 12
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "train_until_killed.py"), str(run), str(flush_step)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.strip() == f"flushed {flush_step}", line
        time.sleep(0.5)  # more steps are recorded, unflushed
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    read = read_back(tmp_path, "killed")
    steps = read["stats"]["0"]["steps"]
    assert steps[: flush_step + 1] == list(range(flush_step + 1))
    assert steps == list(range(len(steps)))  # whatever came after the flush is intact too, or absent
    assert read["gradients"]["steps"][:flush_step] == list(range(flush_step))
    cam_steps = read["maps"]["series"][0]["steps"]
    assert cam_steps[:3] == [0, 5, 10]


def records(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of each TFRecord in an event file: u64 length, u32 crc, data, u32 crc."""
    data = path.read_bytes()
    found, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        found.append((offset, 8 + 4 + length + 4))
        offset += 8 + 4 + length + 4
    return found


def event_file(run: Path) -> Path:
    (path,) = run.glob("events.out.tfevents.*")
    return path


@pytest.fixture(scope="module")
def damaged_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs of 10 steps each, one intact and three damaged copies of it."""
    root = tmp_path_factory.mktemp("damaged")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        write_run(root / "intact", steps=10, every=1)
    finally:
        torch.set_num_threads(threads)
    original = event_file(root / "intact")
    data = original.read_bytes()
    spans = records(original)
    middle_offset, middle_len = spans[len(spans) // 2]
    for name in ("truncated", "bad_checksum", "growing"):
        (root / name).mkdir()
    # cut in the middle of the record in the middle of the file
    (root / "truncated" / original.name).write_bytes(data[: middle_offset + middle_len // 2])
    # one flipped byte in the payload of that record: its data checksum no longer matches
    flipped = bytearray(data)
    flipped[middle_offset + 12 + (middle_len - 16) // 2] ^= 0xFF
    (root / "bad_checksum" / original.name).write_bytes(bytes(flipped))
    # a file still being written: the last record is only partly there
    last_offset, last_len = spans[-1]
    (root / "growing" / original.name).write_bytes(data[: last_offset + last_len - 3])
    return root


def served(client, url: str) -> dict:  # noqa: ANN001 - werkzeug test client
    response = client.get(PREFIX + url)
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.get_data(as_text=True))


def test_damaged_files_show_the_intact_part_and_never_fail(damaged_logdir: Path) -> None:
    client = make_client(damaged_logdir)
    runs = {r["run"]: r for r in served(client, "/runs")["runs"]}
    assert runs["intact"]["maxStep"] == 9
    for name in ("truncated", "bad_checksum", "growing"):
        body = served(client, f"/layers?run={name}")
        for layer in body["layers"]:
            stats = served(client, f"/layer_stats?run={name}&layer={layer['name']}")
            assert stats["steps"] == list(range(len(stats["steps"]))), (name, stats["steps"])
            assert all(v is None or isinstance(v, float) for v in stats["stats"]["mean"])
        served(client, f"/gradients?run={name}")
        served(client, f"/stats_heatmap?run={name}&stat=mean")
    for name in ("truncated", "bad_checksum"):
        steps = served(client, f"/layer_stats?run={name}&layer=0")["steps"]
        assert 1 <= len(steps) < 10  # the records before the damage
    assert served(client, "/layer_stats?run=growing&layer=0")["steps"] == list(range(10))


def test_a_growing_file_is_read_on_once_its_last_record_is_complete(
    damaged_logdir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "logs" / "growing"
    run.mkdir(parents=True)
    original = event_file(damaged_logdir / "intact")
    data = original.read_bytes()
    spans = records(original)
    cut = spans[len(spans) // 2][0] + 20  # mid-record
    path = run / original.name
    path.write_bytes(data[:cut])
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"insight": 0})
    mux.AddRunsFromDirectory(str(tmp_path / "logs"))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(tmp_path / "logs"))
    from tensorboard import context

    from tb_plugin_insight.plugin.listings import LISTING_TTL
    from tb_plugin_insight.plugin.queries import InsightQueries

    queries = InsightQueries(provider, 0)
    now = [0.0]
    queries.listings.clock = lambda: now[0]
    ctx = context.RequestContext()
    before = queries.layer_stats(ctx, "", "growing", "0")["steps"]
    with path.open("ab") as f:
        f.write(data[cut:])  # the writer completes the record, and the rest
    mux.Reload()
    now[0] += LISTING_TTL  # once the run's listing is no longer reused
    after = queries.layer_stats(ctx, "", "growing", "0")["steps"]
    assert before == list(range(len(before))) and len(before) < 10
    assert after == list(range(10))


def rss() -> int:
    gc.collect()
    return psutil.Process(os.getpid()).memory_info().rss


@pytest.mark.slow
def test_memory_stays_flat_over_2000_steps_and_no_hooks_remain(tmp_path: Path) -> None:
    """Everything recorded at every step (statistics, gradients; CAMs and saliency every 100 steps)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(4, 3, 8, 8, generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = [
        (torch.randn(8, 3, 8, 8, generator=gen), torch.randint(0, 3, (8,), generator=gen)) for _ in range(16)
    ]
    samples = {}
    with InsightWriter(str(tmp_path / "run"), flush_secs=1) as writer:
        writer.watch(
            model,
            every=1,
            probe=probe,
            cam_every=100,
            cam_methods=["gradcam", "layercam"],
            saliency_methods=["gradient"],
            saliency_every=100,
        )
        for step in range(2000):
            x, y = batches[step % len(batches)]
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            writer.add_scalar("loss", loss.item(), step)
            if step in (300, 1999):
                samples[step] = rss()
    growth = samples[1999] - samples[300]
    print(f"RSS growth over steps 300..1999: {growth / 2**20:.2f} MiB")
    assert growth < 8 * 2**20, (
        f"RSS grew by {growth / 2**20:.1f} MiB"
    )  # one leaked conv output a step: 13 MiB
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(not getattr(p, "_post_accumulate_grad_hooks", None) for p in model.parameters())
    read = read_back(tmp_path, "run")
    assert read["stats"]["0"]["steps"] == list(range(2000))
    assert read["gradients"]["steps"] == list(range(2000))


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_damaged_files_through_a_real_tensorboard(damaged_logdir: Path) -> None:
    """The default loader (the Rust data server when installed) serves the damaged runs without a 5xx."""
    with tensorboard_process(damaged_logdir) as base:
        api = base + PREFIX
        deadline = time.monotonic() + 60
        while True:
            status, body = get_json(api + "/runs")
            names = {r["run"] for r in body.get("runs", [])}
            if {"intact", "truncated", "bad_checksum", "growing"} <= names or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == 200 and {"intact", "truncated", "bad_checksum", "growing"} <= names, body
        found = {}
        for name in ("intact", "truncated", "bad_checksum", "growing"):
            status, stats = get_json(api + f"/layer_stats?run={name}&layer=0")
            assert status == 200, stats
            found[name] = stats["steps"]
            for route in ("layers", "gradients", "maps", "stats_heatmap"):
                status, _ = get_json(api + f"/{route}?run={name}&stat=mean")
                assert status == 200, (route, name)
    print("steps served per damaged run:", found)
    assert found["intact"] == list(range(10))
    assert all(steps == sorted(set(steps)) and 1 <= len(steps) for steps in found.values())


def test_newer_schema_records_are_skipped_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tensorboard.compat.proto import summary_pb2
    from torch.utils.tensorboard import SummaryWriter

    from tb_plugin_insight import metadata
    from tb_plugin_insight.plugin import layer_index

    write_run(tmp_path / "old", steps=2)
    with SummaryWriter(str(tmp_path / "new")) as writer:
        for layer in ("a", "b", "c"):
            future = metadata.create_summary_metadata(metadata.RecordKind.ACTIVATION_STATS, layer)
            content = metadata.PluginData.FromString(future.plugin_data.content)
            content.version = metadata.PROTO_VERSION + 1
            future.plugin_data.content = content.SerializeToString()
            value = summary_pb2.Summary.Value(tag=f"insight/activation_stats/{layer}", metadata=future)
            value.tensor.CopyFrom(summary_pb2.Summary.Value().tensor)
            writer._get_file_writer().add_summary(summary_pb2.Summary(value=[value]), global_step=0)
    monkeypatch.setattr(metadata._NewerVersionWarning, "warned", False)
    layer_index.parse.cache_clear()
    client = make_client(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tb_plugin_insight"):
        assert [r["run"] for r in served(client, "/runs")["runs"]] == ["old"]
        served(client, "/layers?run=new")  # 404 JSON: no readable Insight data
        served(client, "/stats_heatmap?run=old&stat=mean")
    warnings = [r.getMessage() for r in caplog.records if "schema version" in r.getMessage()]
    assert len(warnings) == 1 and "upgrade tb-plugin-insight" in warnings[0], warnings
