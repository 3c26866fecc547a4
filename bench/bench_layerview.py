"""Cost of activation histograms (and dead/saturated units) against statistics alone and no logging,
and their event bytes against the usual `add_histogram` per layer.

Run: `python -m bench.bench_layerview [--windows 6]`. ResNet-18 (bench/models.py), batch 16, 112x112,
CPU. Identical models train side by side in one process, one step each in turn (the order rotates every
step), so load on a shared machine hits all alike:

* no logging: a SummaryWriter and add_scalar only;
* Insight statistics: watch(every=10, histograms=False, units=False);
* + histograms: watch(every=10, histograms=True, histogram_every=10, units=False);
* + histograms + units: watch(every=10, histogram_every=10) (histograms at every statistics step; by
  default they come every 100 steps);
* add_histogram per layer: forward hooks calling SummaryWriter.add_histogram on the same layers and steps.

Gradient flow and the model table are off in every Insight configuration, so the differences are the
forward-hook work. Each window is 10 consecutive steps, so it holds exactly one recorded step. Per
window, a configuration's summed step time is divided by the base's in the same window; the figures are
the median over windows, and the ratio of the fastest windows (least disturbed by other processes).
"Recorded step" compares only the recorded steps (median over them of the time over the statistics-only
model's at the same step). Event bytes are per watched layer per recorded step: Insight's histogram
records (a run with them minus one without) against `add_histogram` of the same outputs.

First, a direct measurement that the machine's load disturbs less: the outputs of every watched layer of
one forward are kept, then the hook work of a recorded step is timed on them (best of 3): statistics,
histograms, units, and numpy's histogram of the same outputs, against the forward itself.
`--windows 0` runs only this part.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from bench.event_files import event_bytes
from bench.models import resnet18
from bench.side_by_side import Trainer, train_side_by_side
from tb_plugin_insight import InsightWriter
from tb_plugin_insight.capture import histogram, layout, reduce, units
from tb_plugin_insight.capture.layers import select_layers

EVERY = 10
BASE, STATS, HIST, UNITS, PRACTICE = (
    "no logging",
    "Insight statistics",
    "Insight statistics + histograms",
    "Insight statistics + histograms + units",
    "add_histogram per layer",
)


class AddHistogramLogger:
    """The usual practice: a forward hook per layer calling `add_histogram` on recorded steps."""

    def __init__(self, writer: SummaryWriter, model: nn.Module) -> None:
        self.writer = writer
        self.step = -1
        self.handles = [model.register_forward_pre_hook(self._count)]
        for _, name, module in select_layers(model):  # the layers Insight watches by default
            self.handles.append(module.register_forward_hook(self._hook(name)))

    def _count(self, module: nn.Module, args: object) -> None:
        self.step += 1

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: object, output: torch.Tensor) -> None:
            if self.step % EVERY == 0:
                self.writer.add_histogram(f"act/{name}", output.detach(), self.step)

        return hook


def make_writer(name: str, logdir: Path) -> Callable[[nn.Module], SummaryWriter]:
    """The writer of one configuration (see the module doc)."""

    def make(model: nn.Module) -> SummaryWriter:
        if name in (BASE, PRACTICE):
            writer = SummaryWriter(str(logdir))
            if name == PRACTICE:
                AddHistogramLogger(writer, model)
            return writer
        insight = InsightWriter(str(logdir))
        insight.watch(
            model, every=EVERY, grads=False, model_table=False,
            histograms=name in (HIST, UNITS), histogram_every=EVERY, units=name == UNITS,
        )  # fmt: skip
        return insight

    return make


def _best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def direct(batch: int, size: int) -> None:
    """Hook work of one recorded step, timed on kept outputs of every watched layer (module doc)."""
    torch.manual_seed(0)
    model = resnet18(10)
    x = torch.randn(batch, 3, size, size)
    outputs: list[tuple[nn.Module, torch.Tensor]] = []
    handles = [
        module.register_forward_hook(lambda mod, args, out: outputs.append((mod, out.detach())))
        for _, _, module in select_layers(model)
    ]
    with torch.no_grad():
        model(x)  # warm-up
        outputs.clear()
        forward = _best_of(lambda: (outputs.clear(), model(x)), 1)
    for handle in handles:
        handle.remove()
    stats = [reduce.activation_stats(out) for _, out in outputs]
    hist, unit = (
        histogram.HistogramReducer(),
        units.UnitReducer(layout.Layouts(model, [m for m, _ in outputs])),
    )
    items = list(enumerate(zip(outputs, stats)))
    for i, ((module, out), st) in items:
        hist(i, module, out, st)  # fixes each layer's range, as the first recorded step does
    t_stats = _best_of(lambda: [reduce.activation_stats(out) for _, out in outputs])
    t_hist = _best_of(lambda: [hist(i, m, out, st) for i, ((m, out), st) in items])
    t_units = _best_of(lambda: [unit(i, m, out, st) for i, ((m, out), st) in items])
    t_numpy = _best_of(lambda: [np.histogram(out.numpy(), bins=64) for _, out in outputs], 1)
    n = sum(out.numel() for _, out in outputs)
    print(f"hook work of one recorded step ({len(outputs)} outputs, {n / 1e6:.1f} M values), best of 3:")
    print(f"  forward pass (no grad)     {forward:7.3f} s")
    print(f"  statistics                 {t_stats:7.3f} s  {t_stats / forward:6.2f} x forward")
    print(f"  histograms (torch.histc)   {t_hist:7.3f} s  {t_hist / forward:6.2f} x forward")
    print(f"  dead/saturated units       {t_units:7.3f} s  {t_units / forward:6.2f} x forward")
    print(f"  numpy.histogram (for scale) {t_numpy:6.3f} s  {t_numpy / forward:6.2f} x forward")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=6, help="windows of 10 steps per model")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    direct(args.batch, args.size)
    if args.windows <= 0:
        return
    names = (BASE, STATS, HIST, UNITS, PRACTICE)
    total = args.windows * EVERY
    with tempfile.TemporaryDirectory() as tmp:
        trainers = [
            Trainer(name, make_writer(name, Path(tmp) / str(i)), args.batch, args.size)
            for i, name in enumerate(names)
        ]
        train_side_by_side(trainers, args.windows, EVERY)
        sizes = {name: event_bytes(Path(tmp) / str(i)) for i, name in enumerate(names)}
    report({t.name: t.times[:total] for t in trainers}, sizes, args, total)


def report(
    times: dict[str, list[float]], sizes: dict[str, int], args: argparse.Namespace, total: int
) -> None:
    windows = {name: [sum(ts[i : i + EVERY]) for i in range(0, total, EVERY)] for name, ts in times.items()}
    base = windows[BASE]
    fastest = max(1, len(base) // 3)
    recorded = range(0, total, EVERY)
    layers = len(select_layers(resnet18(10)))
    print(f"ResNet-18, batch {args.batch}, {args.size}x{args.size}, CPU, {torch.get_num_threads()} threads,")
    print(
        f"recorded every {EVERY} steps, {args.windows} windows of {EVERY} steps per model, one step each in"
    )
    print(f"turn, {layers} watched layers, torch {torch.__version__}")
    print(
        f"{'configuration':42s} {'s/step':>7s} {'ratio':>7s} {'fastest':>8s} {'recorded step / stats':>22s}"
    )
    for name, sums in windows.items():
        ratio = statistics.median(s / b for s, b in zip(sums, base))
        quick = sum(sorted(sums)[:fastest]) / sum(sorted(base)[:fastest])
        at_record = statistics.median(times[name][i] / times[STATS][i] for i in recorded)
        per_step = statistics.median(sums) / EVERY
        print(f"{name:42s} {per_step:7.3f} {ratio:7.3f} {quick:8.3f} {at_record:22.3f}")
    per = layers * len(recorded)
    hist_bytes = (sizes[HIST] - sizes[STATS]) / per
    unit_bytes = (sizes[UNITS] - sizes[HIST]) / per
    practice = (sizes[PRACTICE] - sizes[BASE]) / per
    print("event bytes per watched layer per recorded step:")
    print(f"  Insight histogram (64 bins, range, under/overflow): {hist_bytes:8,.0f}")
    print(f"  Insight dead/saturated units:                       {unit_bytes:8,.0f}")
    times_more = practice / hist_bytes
    print(f"  add_histogram (default bins):                       {practice:8,.0f}  ({times_more:.1f}x)")


if __name__ == "__main__":
    main()
