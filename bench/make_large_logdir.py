"""Generate a large Insight logdir for the tab's scale benchmark (no training: summary builders only).

Run: `python -m bench.make_large_logdir OUT [--runs 100 --layers 50 --steps 1000 --cam-runs 20]
[--big-runs 9 --big-layers 300 --big-steps 10000] [--schema 1]`.

* `--runs` runs x `--layers` layers x `--steps` recorded steps of activation statistics, gradient
  statistics, dead/saturated unit fractions and activation histogram (every `--histogram-every` steps),
  written as InsightWriter writes them: schema 2 (default) one layer table per step and kind for every
  layer; `--schema 1` the format before it, one record per layer per step and kind (for before/after
  figures). Plus the model table the Model view opens with;
* `--big-runs` runs `big_NNN` of `--big-layers` layers x `--big-steps` steps (default 300 x 10,000,
  histograms every 100 steps as watch() records them by default): the issue's large-model target;
* `--cam-runs` runs with a 16-image probe and Grad-CAM maps over `--cam-steps` steps (+ raw ranges and
  predictions).

Each per-layer record kind is one `LayerRecord` in `LAYER_RECORDS`: its kind, a builder of a v1 first
value (with metadata, from `tb_plugin_insight.summary`) and a function giving every layer's numbers at a
step. A new kind is one more entry. Values after the first reuse the first one's proto with new numbers
(tensor_content), which is byte-for-byte what the builder makes and ~20x faster.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboard.util import tensor_util

from bench.event_files import event_bytes
from tb_plugin_insight import crc, metadata, summary
from tb_plugin_insight.capture.histogram import DEFAULT_BINS
from tb_plugin_insight.render import png

MODULE_TYPES = ("Conv2d", "BatchNorm2d", "ReLU")


@dataclasses.dataclass(frozen=True)
class LayerRecord:
    """One per-layer record kind: a v1 first value (with metadata) and every layer's numbers at a step."""

    kind: int
    first_value: Callable[[str, np.ndarray, str, tuple[int, ...], int], summary_pb2.Summary.Value]
    numbers: Callable[[np.random.Generator, np.ndarray, int, int], np.ndarray]  # (rng, layers, step, steps)


def _stats_numbers(rng: np.random.Generator, layer: np.ndarray, step: int, steps: int) -> np.ndarray:
    drift = step / max(steps, 1)
    mean = 0.1 * np.sin(layer) + 0.05 * drift
    std = 1.0 / (1 + 0.05 * layer) + 0.1 * drift + 0.01 * rng.standard_normal(len(layer))
    zeros = np.zeros(len(layer))
    columns = [mean, std, mean - 4 * std, mean + 4 * std, 0.3 * (layer % 3 == 2), zeros, zeros, zeros + 2**20]
    return np.stack(columns, axis=1)


def _grad_numbers(rng: np.random.Generator, layer: np.ndarray, step: int, steps: int) -> np.ndarray:
    scale = 10 ** (-1 - 2 * (layer % 50) / 50) * (1 + 0.2 * rng.standard_normal(len(layer)))
    z = np.zeros(len(layer))
    ratio = 1e-2 * np.abs(scale)
    columns = [scale, scale / 300, scale / 10, z, z, z + 36864, z + 3.0, ratio, scale * 2, z, z, z + 2**20]
    return np.stack(columns, axis=1)


def _unit_numbers(rng: np.random.Generator, layer: np.ndarray, step: int, steps: int) -> np.ndarray:
    dead = 0.02 * (layer % 3 == 2) * (1 + step / max(steps, 1)) * rng.uniform(0.5, 1.5, len(layer))
    return np.stack([dead, np.zeros(len(layer)), np.full(len(layer), 64.0)], axis=1)


def _histogram_numbers(rng: np.random.Generator, layer: np.ndarray, step: int, steps: int) -> np.ndarray:
    centre = DEFAULT_BINS * (0.5 + 0.1 * np.sin(layer + step / max(steps, 1)))
    bins = np.arange(DEFAULT_BINS)[None, :]
    counts = 1e5 * np.exp(-0.5 * ((bins - centre[:, None]) / (DEFAULT_BINS / 8)) ** 2)
    counts = np.round(counts * rng.uniform(0.9, 1.1, (len(layer), 1)))
    head = np.tile([-4.0, 4.0, 10.0, 3.0], (len(layer), 1))
    return np.concatenate([head, counts], axis=1)


LAYER_RECORDS: tuple[LayerRecord, ...] = (
    LayerRecord(
        metadata.RecordKind.ACTIVATION_STATS,
        lambda name, row, module_type, shape, order: summary.activation_stats_value(
            name, row, module_type=module_type, shape=shape, order=order, with_metadata=True
        ),
        _stats_numbers,
    ),
    LayerRecord(
        metadata.RecordKind.GRADIENT_STATS,
        lambda name, row, module_type, shape, order: summary.gradient_stats_value(
            name, row, module_type=module_type, shape=shape, order=order, with_metadata=True
        ),
        _grad_numbers,
    ),
    LayerRecord(
        metadata.RecordKind.UNIT_STATS,
        lambda name, row, module_type, shape, order: summary.unit_stats_value(
            name, row, bounded=False, module_type=module_type, shape=shape, order=order, with_metadata=True
        ),
        _unit_numbers,
    ),
    LayerRecord(
        metadata.RecordKind.ACTIVATION_HISTOGRAM,
        lambda name, row, module_type, shape, order: summary.histogram_value(
            name,
            row,
            bins=DEFAULT_BINS,
            module_type=module_type,
            shape=shape,
            order=order,
            with_metadata=True,
        ),
        _histogram_numbers,
    ),
)


def layer_names(layers: int) -> list[str]:
    return [f"stage{i // 10}.block{(i // 3) % 4}.{MODULE_TYPES[i % 3].lower()}{i}" for i in range(layers)]


def _shape(layer: int) -> tuple[int, ...]:
    return (16, 64, max(1, 56 >> (layer // 10)), max(1, 56 >> (layer // 10)))


def model_document(names: list[str]) -> dict[str, Any]:
    """A model table (capture/model_table.py's document) whose leaves are the recorded layers."""
    rows = [{"name": "", "type": "LargeNet", "depth": 0, "params": 0, "trainableParams": 0, "ownParams": 0,
             "watched": False, "output": [16, 10], "calls": 1}]  # fmt: skip
    for i, name in enumerate(names):
        params = 64 * 64 * 9 if i % 3 == 0 else 128 if i % 3 == 1 else 0
        rows.append(
            {"name": name, "type": MODULE_TYPES[i % 3], "depth": 1, "params": params,
             "trainableParams": params, "ownParams": params, "watched": True, "output": list(_shape(i)),
             "calls": 1}
        )  # fmt: skip
    total = sum(r["params"] for r in rows)
    rows[0].update(params=total, trainableParams=total)
    return {"modelType": "LargeNet", "params": total, "trainableParams": total, "rows": rows}


def _table_first_value(kind: int, rows: np.ndarray, names: list[str]) -> summary_pb2.Summary.Value:
    """The first value of a v2 layer table of the per-layer `kind` (with its metadata: the layer list)."""
    layers = [(name, MODULE_TYPES[i % 3], _shape(i), i, False) for i, name in enumerate(names)]
    bins = DEFAULT_BINS if kind == metadata.RecordKind.ACTIVATION_HISTOGRAM else 0
    return summary.layer_table_value(metadata.TABLE_KINDS[kind], rows, layers, with_metadata=True, bins=bins)


def _reuse(
    templates: dict[Any, tuple[summary_pb2.Summary.Value, np.dtype]],
    key: Any,
    rows: np.ndarray,
    first: Callable[[], summary_pb2.Summary.Value],
) -> summary_pb2.Summary.Value:
    """`first()` the first time for `key`, then a copy of it (without metadata) holding `rows`."""
    found = templates.get(key)
    if found is None:
        value = first()
        template = summary_pb2.Summary.Value()
        template.CopyFrom(value)
        template.ClearField("metadata")
        # the stored dtype (the builder's choice: float64 or float32) for the later values
        templates[key] = (template, tensor_util.make_ndarray(template.tensor).dtype)
        return value
    template, dtype = found
    value = summary_pb2.Summary.Value()
    value.CopyFrom(template)
    value.tensor.tensor_content = np.ascontiguousarray(rows, dtype=dtype).tobytes()
    return value


def write_stats_run(
    run_dir: Path, layers: int, steps: int, seed: int, schema: int = 2, histogram_every: int = 1
) -> None:
    """One run: the model table, then every LAYER_RECORDS kind at every step (histograms every
    `histogram_every` steps): schema 2, one layer table per step and kind; schema 1, one record per
    layer per step and kind (one event per step and kind either way)."""
    rng = np.random.default_rng(seed)
    names = layer_names(layers)
    index = np.arange(layers)
    writer = EventFileWriter(str(run_dir), max_queue_size=1024, flush_secs=120)
    templates: dict[Any, tuple[summary_pb2.Summary.Value, np.dtype]] = {}
    wall = 1.7e9 + seed * 1e4
    table = summary.summary_of([summary.model_table_value(model_document(names))])
    writer.add_event(event_pb2.Event(step=0, wall_time=wall, summary=table))
    for step in range(steps):
        for record in LAYER_RECORDS:
            if record.kind == metadata.RecordKind.ACTIVATION_HISTOGRAM and step % histogram_every:
                continue
            rows = np.asarray(record.numbers(rng, index, step, steps), dtype=np.float64)
            if schema == 2:
                first = functools.partial(_table_first_value, record.kind, rows, names)
                values = [_reuse(templates, record.kind, rows, first)]
            else:
                values = []
                for i, name in enumerate(names):
                    first = functools.partial(
                        record.first_value, name, rows[i], MODULE_TYPES[i % 3], _shape(i), i
                    )
                    values.append(_reuse(templates, (record.kind, i), rows[i], first))
            event = event_pb2.Event(step=step, wall_time=wall + step, summary=summary.summary_of(values))
            writer.add_event(event)
    writer.close()


def write_cam_run(run_dir: Path, steps: int, images: int, seed: int, size: int = 112, grid: int = 7) -> None:
    """One run with a probe of `images` images and Grad-CAM maps (grid x grid) at every step."""
    rng = np.random.default_rng(seed)
    writer = EventFileWriter(str(run_dir), max_queue_size=1024, flush_secs=120)
    display = rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8)
    probe_value = summary.probe_images_value(
        "probe", png.sprite(display), num_images=images, height=size, width=size,
        labels=list(rng.integers(0, 3, images)), class_names=["circle", "square", "triangle"],
    )  # fmt: skip
    kind = metadata.RecordKind.CAM
    for step in range(steps):
        maps = rng.integers(0, 256, (images, grid, grid), dtype=np.uint8)
        ranges = np.stack([np.zeros(images), rng.uniform(0.5, 3.0, images)], axis=1)
        first = step == 0
        values = [probe_value] if first else []
        values += [
            summary.map_value(
                kind, "probe", "layer4.1", "gradcam", png.sprite(maps), num_images=images, height=grid,
                width=grid, auto_selected=True, with_metadata=first,
            ),
            summary.map_ranges_value(kind, "probe", "layer4.1", "gradcam", ranges, with_metadata=first),
            summary.predictions_value(
                "probe", rng.integers(0, 3, images), rng.uniform(0.3, 1.0, images), with_metadata=first
            ),
        ]  # fmt: skip
        writer.add_event(
            event_pb2.Event(step=step, wall_time=1.7e9 + step, summary=summary.summary_of(values))
        )
    writer.close()


SCALARS_FILE = "events.out.tfevents.1900000000.scalars"  # sorts after the run's own events file
SCALAR_TAGS = ("train/loss", "train/accuracy")


def write_scalars(run_dir: Path, steps: int, seed: int) -> None:
    """A training job's own scalars (loss, accuracy at every step) in a second event file of the run,
    as a user logs them next to Insight: TensorBoard's Scalars tab is the reference for the tab's
    first render (bench_tab)."""
    rng = np.random.default_rng(seed)
    with open(run_dir / SCALARS_FILE, "wb") as out:
        record_writer = RecordWriter(out)
        version = event_pb2.Event(wall_time=1.7e9 + seed * 1e4, file_version="brain.Event:2")
        record_writer.write(version.SerializeToString())
        for step in range(steps):
            loss = 2.0 * np.exp(-3 * step / max(steps, 1)) + 0.05 * rng.standard_normal()
            accuracy = 1 - 0.6 * np.exp(-3 * step / max(steps, 1)) + 0.01 * rng.standard_normal()
            values = [summary_pb2.Summary.Value(tag=tag, simple_value=float(v))
                      for tag, v in zip(SCALAR_TAGS, (loss, accuracy))]  # fmt: skip
            event = event_pb2.Event(step=step, wall_time=1.7e9 + seed * 1e4 + step,
                                    summary=summary_pb2.Summary(value=values))  # fmt: skip
            record_writer.write(event.SerializeToString())


def add_scalars(out: Path, steps: int = 1000) -> int:
    """Write the training scalars of every stats run of `out` that has none yet; returns how many."""
    added = 0
    for i, run_dir in enumerate(sorted(out.glob("stats_*"))):
        if not (run_dir / SCALARS_FILE).exists():
            write_scalars(run_dir, steps, i)
            added += 1
    return added


BIG_LAYERS, BIG_STEPS, BIG_HISTOGRAM_EVERY = 300, 10_000, 100


@dataclasses.dataclass(frozen=True)
class _Job:
    what: str  # "stats" or "cams"
    run_dir: str
    layers: int
    steps: int
    images: int
    seed: int
    schema: int = 2
    histogram_every: int = 1


def _job(job: _Job) -> None:
    crc.install()
    if job.what == "stats":
        write_stats_run(Path(job.run_dir), job.layers, job.steps, job.seed, job.schema, job.histogram_every)
    else:
        write_cam_run(Path(job.run_dir), job.steps, job.images, job.seed)


def generate(
    out: Path,
    runs: int = 100,
    layers: int = 50,
    steps: int = 1000,
    cam_runs: int = 20,
    cam_steps: int = 100,
    images: int = 16,
    processes: int = 2,
    schema: int = 2,
    histogram_every: int = 1,
    big_runs: int = 0,
    big_layers: int = BIG_LAYERS,
    big_steps: int = BIG_STEPS,
) -> None:
    """Write the logdir under `out` (runs `stats_NNN` with training scalars, `big_NNN`, and `cams_NN`)."""
    jobs = [
        _Job("stats", str(out / f"stats_{i:03d}"), layers, steps, images, i, schema, histogram_every)
        for i in range(runs)
    ]
    big = (big_layers, big_steps, images)
    jobs += [
        _Job("stats", str(out / f"big_{i:03d}"), *big, 500 + i, schema, BIG_HISTOGRAM_EVERY)
        for i in range(big_runs)
    ]
    jobs += [
        _Job("cams", str(out / f"cams_{i:02d}"), layers, cam_steps, images, 1000 + i) for i in range(cam_runs)
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for _ in pool.imap_unordered(_job, jobs):
            pass
    add_scalars(out, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--histogram-every", type=int, default=1)
    parser.add_argument("--big-runs", type=int, default=0, help="runs of --big-layers x --big-steps")
    parser.add_argument("--big-layers", type=int, default=BIG_LAYERS)
    parser.add_argument("--big-steps", type=int, default=BIG_STEPS)
    parser.add_argument("--cam-runs", type=int, default=20)
    parser.add_argument("--cam-steps", type=int, default=100)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--schema", type=int, choices=(1, 2), default=2, help="1: the per-layer format")
    args = parser.parse_args()
    start = time.perf_counter()
    generate(
        args.out,
        args.runs,
        args.layers,
        args.steps,
        args.cam_runs,
        args.cam_steps,
        args.images,
        args.processes,
        schema=args.schema,
        histogram_every=args.histogram_every,
        big_runs=args.big_runs,
        big_layers=args.big_layers,
        big_steps=args.big_steps,
    )
    size = event_bytes(args.out)
    print(f"wrote {args.out}: {size / 1e6:,.0f} MB in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
