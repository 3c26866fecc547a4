"""Write throughput: event bytes per second through InsightWriter's writer thread, C CRC32C vs stock.

Run: `python -m bench.bench_write [--megabytes 64]`. Prebuilt summaries (map-sized 64 KiB blobs, and
a 50-layer statistics step) go through `InsightWriter._write` -> writer thread -> TensorBoard's event
file writer (serialise, checksum, write), timed from the first record to the end of `flush()`, with
torch limited to one thread. The same runs with TensorBoard's pure-Python checksum show what the C
CRC32C buys. Target: at least 50 MB/s with the C CRC32C.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as stock_crc
from tensorboard.summary.writer import record_writer

from bench.event_files import event_bytes
from tb_plugin_insight import InsightWriter, crc, metadata, summary


@dataclasses.dataclass
class Throughput:
    name: str
    megabytes_per_second: float
    records_per_second: float


def blob_summary(rng: np.random.Generator, size: int) -> object:
    blob = rng.integers(0, 256, size, dtype=np.uint8).tobytes()  # incompressible, like a PNG
    value = summary.map_value(
        metadata.RecordKind.CAM, "probe", "layer4", "gradcam", blob, num_images=16, height=7, width=7,
        with_metadata=False,
    )  # fmt: skip
    return summary.summary_of([value])


def stats_summary(rng: np.random.Generator, layers: int) -> object:
    return summary.summary_of(
        [
            summary.activation_stats_value(
                f"layer{i}",
                rng.standard_normal(len(metadata.STAT_FIELDS)),
                module_type="Conv2d",
                shape=(16, 64, 56, 56),
                order=i,
                with_metadata=False,
            )  # fmt: skip
            for i in range(layers)
        ]
    )


def measure(name: str, records: list[object], logdir: Path, checksum: object) -> Throughput:
    writer = InsightWriter(str(logdir))  # installs the C checksum when available
    record_writer.masked_crc32c = checksum  # the one this run measures
    start = time.perf_counter()
    for step, record in enumerate(records):
        writer._write(record, step)
    writer.flush()
    seconds = time.perf_counter() - start
    writer.close()
    size = event_bytes(logdir)
    return Throughput(name, size / seconds / 1e6, len(records) / seconds)


def run(megabytes: int = 64, quiet: bool = False) -> list[Throughput]:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    blob_size = 64 * 1024
    blobs = [blob_summary(rng, blob_size) for _ in range(megabytes * (1 << 20) // blob_size)]
    stats = [stats_summary(rng, 50) for _ in range(2000)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, checksum in (("C CRC32C", crc.fast_masked_crc32c), ("stock Python CRC32C", stock_crc)):
            if checksum is None:
                continue
            few = blobs if checksum is not stock_crc else blobs[: max(1, len(blobs) // 16)]  # it is slow
            for kind, records in (("64 KiB map records", few), ("50-layer statistics steps", stats)):
                logdir = Path(tmp) / f"{label}{kind}".replace(" ", "_")
                result = measure(f"{kind}, {label}", records, logdir, checksum)
                results.append(result)
                if not quiet:
                    print(f"  {result.name}: {result.megabytes_per_second:.1f} MB/s", flush=True)
    crc.install()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=64, help="MiB of map records with the C CRC32C")
    args = parser.parse_args()
    results = run(args.megabytes)
    print(f"writer thread -> event file, torch threads 1, {os.cpu_count()} cores on the machine")
    print(f"{'records, checksum':55s} {'MB/s':>7s} {'records/s':>10s}")
    for r in results:
        print(f"{r.name:55s} {r.megabytes_per_second:7.1f} {r.records_per_second:10,.0f}")


if __name__ == "__main__":
    main()
