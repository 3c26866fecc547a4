"""The writer thread: records leave the training thread, in order, are never dropped, and flush/close
wait for them. Gated with threading.Event (no timing)."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import insight_steps, random_batch, read_events, sgd_step
from torch import nn

from conftest import tiny_cnn
from tb_plugin_insight import InsightWriter, background, metadata, records
from tb_plugin_insight.background import BackgroundJobs
from tb_plugin_insight.capture import transfer


def train_steps(model: nn.Module, steps: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        sgd_step(model, opt, *random_batch(gen))


def test_jobs_run_in_submission_order() -> None:
    jobs = BackgroundJobs(max_queue=4)
    seen: list[int] = []
    for i in range(200):
        jobs.submit(lambda i=i: seen.append(i))
    jobs.drain()
    assert seen == list(range(200))
    jobs.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities: Linux only")
def test_writer_thread_runs_at_a_lower_priority_than_the_training_thread() -> None:
    main_tid = threading.get_native_id()
    main_before = os.getpriority(os.PRIO_PROCESS, main_tid)
    jobs = BackgroundJobs(max_queue=4)
    seen: list[tuple[int, int]] = []
    jobs.submit(lambda: seen.append((threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0))))
    jobs.drain()
    jobs.stop()
    writer_tid, writer_nice = seen[0]
    assert writer_tid != main_tid
    assert writer_nice == min(19, main_before + background.WRITER_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, main_tid) == main_before  # the training thread keeps its own


def test_full_queue_blocks_the_submitter_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    jobs = BackgroundJobs(max_queue=1)
    gate, started = threading.Event(), threading.Event()
    seen: list[int] = []

    def blocked() -> None:
        started.set()
        gate.wait()
        seen.append(0)

    jobs.submit(blocked)
    started.wait()  # the thread holds job 0; the queue (size 1) is empty
    jobs.submit(lambda: seen.append(1))  # fills the queue
    submitted = threading.Event()

    def submit_more() -> None:
        for i in (2, 3):
            jobs.submit(lambda i=i: seen.append(i))
        submitted.set()

    with caplog.at_level(logging.WARNING, logger="tb_plugin_insight.background"):
        submitter = threading.Thread(target=submit_more)
        submitter.start()
        assert not submitted.wait(0.2)  # still waiting for room: nothing was dropped
        gate.set()
        submitter.join()
        jobs.drain()
    assert seen == [0, 1, 2, 3]
    warnings = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(warnings) == 1
    jobs.stop()


def test_a_failing_job_is_logged_once_and_later_jobs_run(caplog: pytest.LogCaptureFixture) -> None:
    jobs = BackgroundJobs()
    seen: list[int] = []

    def fail() -> None:
        raise RuntimeError("disk on fire")

    with caplog.at_level(logging.ERROR, logger="tb_plugin_insight.background"):
        for i in range(3):
            jobs.submit(fail)
            jobs.submit(lambda i=i: seen.append(i))
        jobs.stop()
    assert seen == [0, 1, 2]
    assert jobs.failures == 3
    assert sum("disk on fire" in (r.exc_text or "") or r.exc_info is not None for r in caplog.records) == 1


def test_max_queue_is_validated() -> None:
    with pytest.raises(ValueError, match="max_queue"):
        BackgroundJobs(0)
    with pytest.raises(ValueError, match="max_queue"):
        InsightWriter(write_queue_size=-1)


def test_stop_then_submit_starts_a_new_thread() -> None:
    jobs = BackgroundJobs()
    seen: list[str] = []
    jobs.submit(lambda: seen.append("a"))
    jobs.stop()
    jobs.submit(lambda: seen.append("b"))
    jobs.stop()
    assert seen == ["a", "b"]


def _gate_builder(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make the activation-stats builder wait for `gate` (and set `entered` when it starts)."""
    gate, entered = threading.Event(), threading.Event()
    original = records.activation_stats

    def gated(*args: object) -> object:
        entered.set()
        gate.wait()
        return original(*args)

    monkeypatch.setattr(records, "activation_stats", gated)
    return gate, entered


def test_records_are_built_off_the_training_thread_and_flush_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, entered = _gate_builder(monkeypatch)
    writer = InsightWriter(str(tmp_path))
    model = tiny_cnn()
    writer.watch(model, every=1, grads=False, model_table=False)  # the table is written first
    train_steps(model, 3)  # returns although no record could be built yet: training does not wait
    entered.wait()
    assert insight_steps(tmp_path) == {}
    flushed = threading.Event()
    flusher = threading.Thread(target=lambda: (writer.flush(), flushed.set()))
    flusher.start()
    assert not flushed.wait(0.2)  # flush waits for the queued records
    gate.set()
    flusher.join()
    steps = insight_steps(tmp_path)  # read right after flush() returned, writer still open
    tag = metadata.tag_for(metadata.RecordKind.ACTIVATION_STATS, "0")
    assert steps[tag] == [0, 1, 2]
    writer.close()


def test_close_writes_everything_queued(tmp_path: Path) -> None:
    writer = InsightWriter(str(tmp_path), write_queue_size=1)
    model = tiny_cnn()
    handle = writer.watch(model, every=1)
    train_steps(model, 20)
    writer.close()
    steps = insight_steps(tmp_path)
    for layer in handle.layers:
        assert steps[metadata.tag_for(metadata.RecordKind.ACTIVATION_STATS, layer)] == list(range(20))
    # the last step's gradient record is finished by close() itself
    grad_tag = metadata.tag_for(metadata.RecordKind.GRADIENT_STATS, handle.layers[0])
    assert steps[grad_tag] == list(range(20))


def test_record_order_is_kept_with_native_scalars(tmp_path: Path) -> None:
    with InsightWriter(str(tmp_path), write_queue_size=2) as writer:
        model = tiny_cnn()
        writer.watch(model, every=1, grads=False, model_table=False)  # the table is written first
        gen = torch.Generator().manual_seed(0)
        for step in range(30):
            model(torch.randn(2, 3, 8, 8, generator=gen))
            writer.add_scalar("loss", float(step), step)
    tag = metadata.tag_for(metadata.RecordKind.ACTIVATION_STATS_TABLE)  # every layer's statistics
    insight = [e.step for e in read_events(tmp_path) if any(v.tag.startswith(tag) for v in e.summary.value)]
    assert insight == list(range(30))


def test_a_failing_builder_never_stops_training_and_close_still_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> object:
        raise OSError("no space left on device")

    monkeypatch.setattr(records, "activation_stats", broken)
    model = tiny_cnn()
    reference = tiny_cnn()
    with caplog.at_level(logging.WARNING):
        writer = InsightWriter(str(tmp_path))
        handle = writer.watch(model, every=1)
        train_steps(model, 5)
        train_steps(reference, 5)
        writer.add_scalar("after", 1.0, 0)
        writer.close()
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.equal(a, b)  # training went on, unchanged
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "no space left" in (errors[0].exc_text or str(errors[0].exc_info))
    assert any("could not write 5 records" in r.getMessage() for r in caplog.records)
    steps = insight_steps(tmp_path)  # the other records were written and the file closed cleanly
    assert steps[metadata.tag_for(metadata.RecordKind.GRADIENT_STATS, handle.layers[0])] == list(range(5))
    assert any(v.tag == "after" for e in read_events(tmp_path) for v in e.summary.value)
    assert writer.file_writer is None


def test_host_copy_of_cpu_tensor_and_row_selection() -> None:
    table = torch.arange(12, dtype=torch.float64).reshape(4, 3)
    assert np.array_equal(transfer.host_numpy(transfer.start_host_copy(table)), table.numpy())
    picked = transfer.host_numpy(transfer.start_host_copy(table, rows=[0, 2]))
    assert np.array_equal(picked, table.numpy()[[0, 2]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_host_copy_from_cuda_waits_for_its_event() -> None:
    table = torch.arange(12, dtype=torch.float64, device="cuda").reshape(4, 3)
    pending = transfer.start_host_copy(table * 2, rows=[1, 3])
    assert isinstance(pending, transfer.PendingHostCopy)
    assert np.array_equal(transfer.host_numpy(pending), (table * 2).cpu().numpy()[[1, 3]])
