"""Where every Insight record goes: built on the writer thread, written through torch's FileWriter.

`WriterSink` is the writer as recorders see it (`recorders.RecordSink`): a queue of record builders
(`background.BackgroundJobs`), the once-per-tag metadata rule and the once-per-run probe images.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from tb_plugin_insight.background import BackgroundJobs
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.capture.text_probe import TextProbe


class WriterSink:
    """Queue records for one writer's event files; `probe()` is the writer's probe batch now."""

    def __init__(
        self,
        jobs: BackgroundJobs,
        file_writer: Callable[[], Any],
        probe: Callable[[], Optional[Probe]],
        text_probe: Callable[[], Optional[TextProbe]] = lambda: None,
    ) -> None:
        self._jobs = jobs
        self._file_writer = file_writer
        self._probe = probe
        self._text_probe = text_probe
        self._metadata_file_writer: object | None = None
        self._tags_with_metadata: set[str] = set()
        self._stored_images: dict[str, str] = {}  # probe name -> fingerprint of the stored images

    def probe(self) -> Optional[Probe]:
        return self._probe()

    def text_probe(self) -> Optional[TextProbe]:
        return self._text_probe()

    def enqueue(self, build_fn: Callable[..., Any], *args: Any, step: int) -> None:
        """Record one step's Summary off the training thread: THE way Insight writes.

        `build_fn(first_time, *args)` runs on the writer thread, in submission order, and returns the
        Summary (see `records.py`); `args` should be host numpy arrays or `transfer.HostArray`s whose
        copies were started with `transfer.start_host_copy` (never tensors still used by training).
        `first_time(tag)` says whether the tag needs its metadata. The wall time is taken now. A full
        queue blocks here (see `background.BackgroundJobs`); `flush()`/`close()` wait for the queue.
        """
        file_writer = self._file_writer()  # on this thread: torch creates it lazily, unlocked
        walltime = time.time()

        def job() -> None:
            built = build_fn(lambda tag: self._first_time(tag, file_writer), *args)
            file_writer.add_summary(built, global_step=step, walltime=walltime)

        self._jobs.submit(job)

    def _first_time(self, key: str, file_writer: object) -> bool:
        """True once per tag per event file: metadata is read from a tag's first value only.

        Called on the writer thread only (from builders), so it needs no lock."""
        if file_writer is not self._metadata_file_writer:
            self._metadata_file_writer = file_writer
            self._tags_with_metadata = set()
        if key in self._tags_with_metadata:
            return False
        self._tags_with_metadata.add(key)
        return True

    def images_changed(self, probe: Probe) -> bool:
        """True when the probe's images are not stored yet in this run (or changed since)."""
        fingerprint = probe.fingerprint()
        if self._stored_images.get(probe.name) == fingerprint:
            return False
        self._stored_images[probe.name] = fingerprint
        return True
