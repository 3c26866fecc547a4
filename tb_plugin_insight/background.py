"""A bounded queue and one background thread that runs Insight's write jobs off the training thread.

The training thread only reduces on its device and starts host copies; turning host arrays into
Summary protos, PNG encoding, serialising, checksumming and writing happen here, in submission order.
A full queue makes the training thread wait (nothing is dropped) and says so once. A job that fails is
logged (the first failure with its traceback) and the next jobs still run: recording never stops
training. `drain()` returns when every job submitted before it has finished.

On Linux the thread lowers its own scheduling priority (`WRITER_NICENESS`): on a machine whose cores
the training's intra-op threads keep busy, a writer at equal priority preempts one of them, and every
other intra-op thread then waits for it at the next barrier, so a millisecond of writing could cost the
step several. At a lower priority the writer runs in the gaps; it still gets CPU when training waits
(a full queue, `flush()`, data loading), so nothing is dropped or starved for good.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Optional

from tb_plugin_insight import validate

logger = logging.getLogger(__name__)

Job = Callable[[], None]

DEFAULT_MAX_QUEUE = 64
WRITER_NICENESS = 10  # added to the writer thread's nice value on Linux (see the module doc)


def lower_thread_priority(niceness: int = WRITER_NICENESS) -> bool:
    """Raise the calling thread's nice value by `niceness` (Linux only: there setpriority with a thread
    id affects that thread alone). False when not applied (another system, or not permitted)."""
    if not sys.platform.startswith("linux") or niceness <= 0:
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
    except OSError:
        return False
    return True


class BackgroundJobs:
    """Runs submitted jobs in order on one daemon thread, started on first use (again after `stop()`)."""

    def __init__(self, max_queue: int = DEFAULT_MAX_QUEUE, name: str = "insight-writer") -> None:
        validate.int_option(
            max_queue, f"max_queue must be a positive int (records waiting to be written), got {max_queue!r}"
        )
        self.max_queue = max_queue
        self._name = name
        self._queue: queue.Queue[Optional[Job]] = queue.Queue(maxsize=max_queue)
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._warned_full = False
        self.failures = 0
        # A script that never calls close(): write what is queued before the interpreter exits.
        ref = weakref.ref(self)

        def stop_at_exit() -> None:
            jobs = ref()
            if jobs is not None:
                jobs.stop()

        atexit.register(stop_at_exit)

    def submit(self, job: Job) -> None:
        """Queue `job`; if the queue is full, wait for room (warning once per instance)."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            if not self._warned_full:
                self._warned_full = True
                logger.warning(
                    "Insight: the write queue is full (%d records); training waits for the writer. Record "
                    "less often (every=, cam_every=) or pass a larger write_queue_size= to InsightWriter.",
                    self.max_queue,
                )
            self._queue.put(job)

    def drain(self) -> None:
        """Wait until every job submitted so far has run (returns at once when idle)."""
        if threading.current_thread() is self._thread:
            return  # a job that flushes must not wait for itself
        self._queue.join()

    def stop(self) -> None:
        """Drain, then end the thread; a later `submit` starts a new one."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None or threading.current_thread() is thread:
            return
        self._queue.put(None)
        thread.join()

    @property
    def pending(self) -> int:
        """Jobs queued or running (approximate)."""
        return self._queue.unfinished_tasks

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        lower_thread_priority()
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                job()
            except Exception:  # noqa: BLE001 - a failed record must never stop training
                self.failures += 1
                if self.failures == 1:
                    logger.exception("Insight could not write a record (later failures are only counted)")
            finally:
                self._queue.task_done()
