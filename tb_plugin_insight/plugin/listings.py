"""Each run's listing (its Insight tags with max step and wall time), reused for a short while, and an
LRU of results derived from data whose listing has not changed.

Listing one run's tags costs a data-provider round trip (30-100 ms on a large logdir with TensorBoard's
Rust data server), and every route needs it to find the run's series and to know whether new data
arrived. TensorBoard itself reloads event files every 5 s by default, so reusing a listing for
`LISTING_TTL` seconds delays new data by at most that much. A derived result (a parsed table, a blob
index, a response body) is keyed by the listing entries it depends on, so new data makes a new key.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from tensorboard.data import provider as tb_provider

from tb_plugin_insight import metadata

LISTING_TTL = 2.0  # seconds; == queries.RUNS_TTL
MAX_LISTINGS = 512
MAX_RESULTS = 256

T = TypeVar("T")


class LruCache:
    """A bounded, thread-safe map from keys to results (TensorBoard serves requests in threads)."""

    def __init__(self, size: int = MAX_RESULTS) -> None:
        self._size = size
        self._items: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._making: dict[Any, threading.Lock] = {}  # key -> held while one thread makes its result

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def get_or_make(self, key: Any, make: Callable[[], T]) -> T:
        """The cached result of `key`, else `make()` (computed outside the cache's lock, then kept).

        One thread makes a key's result; others asking for it meanwhile wait for that result instead
        of reading the same data again (the tab asks for a run's table from several routes at once,
        and a read of a large run costs seconds)."""
        value = self.get(key)
        if value is not None:
            return value
        with self._lock:
            making = self._making.setdefault(key, threading.Lock())
        try:
            with making:
                value = self.get(key)
                if value is None:
                    value = make()
                    self.put(key, value)
                return value
        finally:
            with self._lock:
                if self._making.get(key) is making and not making.locked():
                    del self._making[key]


def signature(series: Iterable[tuple[str, Any]]) -> tuple[tuple[str, int, float], ...]:
    """What a result read from these (tag, listed series) depends on: each tag's max step and wall time."""
    return tuple((tag, int(s.max_step), float(s.max_wall_time)) for tag, s in series)


class RunListings:
    """One run's Insight tensor and blob-sequence listings ({tag: series}), each reused `ttl` seconds."""

    def __init__(self, data_provider: Any, ttl: float = LISTING_TTL) -> None:
        self._provider = data_provider
        self._ttl = ttl
        self.clock: Callable[[], float] = time.monotonic  # tests move it forward
        self._cache: collections.OrderedDict[tuple[str, str, str], tuple[float, dict[str, Any]]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def tensors(self, ctx: Any, eid: str, run: str) -> dict[str, Any]:
        return self._listing(ctx, eid, run, "tensors")

    def blobs(self, ctx: Any, eid: str, run: str) -> dict[str, Any]:
        return self._listing(ctx, eid, run, "blobs")

    def _listing(self, ctx: Any, eid: str, run: str, kind: str) -> dict[str, Any]:
        key = (eid, run, kind)
        now = self.clock()
        with self._lock:
            found = self._cache.get(key)
        if found is not None and now - found[0] < self._ttl:
            return found[1]
        lister = self._provider.list_tensors if kind == "tensors" else self._provider.list_blob_sequences
        listing = lister(
            ctx,
            experiment_id=eid,
            plugin_name=metadata.PLUGIN_NAME,
            run_tag_filter=tb_provider.RunTagFilter(runs=[run]),
        ).get(run, {})
        with self._lock:
            self._cache[key] = (now, listing)
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_LISTINGS:
                self._cache.popitem(last=False)
        return listing


class CachedReader:
    """Reads a run's tensors or blob sequences through the data provider, reusing a result while the
    listing entries of the tags it read are unchanged (shared by the statistics and tile queries)."""

    def __init__(self, data_provider: Any, listings: RunListings, downsample: int) -> None:
        self._provider = data_provider
        self._listings = listings
        self._downsample = downsample
        self._results = LruCache()

    def tensors(self, ctx: Any, eid: str, run: str, tags: list[str]) -> dict[str, list[Any]]:
        """{tag: tensor data} of the run's `tags`."""
        return self._read(ctx, eid, run, tags, "tensors")

    def blobs(self, ctx: Any, eid: str, run: str, tags: list[str]) -> dict[str, list[Any]]:
        """{tag: blob sequence data (steps and blob keys)} of the run's `tags`."""
        return self._read(ctx, eid, run, tags, "blobs")

    def _read(self, ctx: Any, eid: str, run: str, tags: list[str], kind: str) -> dict[str, list[Any]]:
        listing = (
            self._listings.tensors(ctx, eid, run)
            if kind == "tensors"
            else self._listings.blobs(ctx, eid, run)
        )
        key = (kind, eid, run, self._downsample, signature((t, listing[t]) for t in tags if t in listing))
        reader = self._provider.read_tensors if kind == "tensors" else self._provider.read_blob_sequences

        def read() -> dict[str, list[Any]]:
            result = reader(
                ctx,
                experiment_id=eid,
                plugin_name=metadata.PLUGIN_NAME,
                downsample=self._downsample,
                run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=tags),
            )
            return result.get(run, {})

        return self._results.get_or_make(key, read)
