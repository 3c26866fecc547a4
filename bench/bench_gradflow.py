"""Training-step cost of gradient-flow recording against no recording, on ResNet-18.

Run: `python -m bench.bench_gradflow [--windows 12]`. Three identical models train side by side in one
process, one step each in turn (the order rotates every step), so load on a shared machine hits all
three alike:

* no Insight: a SummaryWriter and add_scalar only;
* Insight watch(every=10, grads=False): activation statistics only;
* Insight watch(every=10): activation statistics plus gradient flow (the default).

Each window is `every` consecutive steps, so it holds exactly one recorded step and the flush of the one
before. Per window, the summed step time of a configuration is divided by the base's in the same window;
the figures are the median over windows of those ratios, and the ratio of the fastest windows (least
disturbed by other processes). Gradient flow's own cost is the last configuration over the middle one.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from bench.event_files import event_bytes
from bench.side_by_side import Trainer, train_side_by_side
from tb_plugin_insight import InsightWriter

BASE, STATS, GRADS = (
    "no Insight (SummaryWriter + add_scalar)",
    "Insight watch(every=N, grads=False)",
    "Insight watch(every=N), gradient flow",
)


def make_writer(name: str, logdir: Path, every: int) -> Callable[[nn.Module], SummaryWriter]:
    """The writer of one configuration (see the module doc)."""

    def make(model: nn.Module) -> SummaryWriter:
        if name == BASE:
            return SummaryWriter(str(logdir))
        writer = InsightWriter(str(logdir))
        writer.watch(model, every=every, grads=name == GRADS)
        return writer

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=12, help="windows of `every` steps per model")
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        names = (BASE, STATS, GRADS)
        trainers = [
            Trainer(name, make_writer(name, Path(tmp) / str(i), args.every), args.batch, args.size)
            for i, name in enumerate(names)
        ]
        train_side_by_side(trainers, args.windows, args.every)
        sizes = {name: event_bytes(Path(tmp) / str(i)) for i, name in enumerate(names)}
    total = args.windows * args.every
    windows = {t.name: _window_sums(t.times[:total], args.every) for t in trainers}
    report(windows, sizes, args, total)


def _window_sums(times: list[float], every: int) -> list[float]:
    return [sum(times[i : i + every]) for i in range(0, len(times), every)]


def report(
    windows: dict[str, list[float]], sizes: dict[str, int], args: argparse.Namespace, total: int
) -> None:
    base = windows[BASE]
    fastest = max(1, len(base) // 4)
    print(
        f"ResNet-18, batch {args.batch}, {args.size}x{args.size}, CPU,"
        f" {torch.get_num_threads()} threads, N={args.every}"
    )
    print(
        f"{args.windows} windows of {args.every} steps per model, one step each in turn,"
        f" torch {torch.__version__}"
    )
    print("ratio: median over windows of the window's time over the base's in the same window;")
    print(f"fastest: the {fastest} fastest windows of each, summed, over the base's")
    print(f"{'configuration':42s} {'s/step':>7s} {'ratio':>7s} {'fastest':>8s} {'event bytes/step':>17s}")
    for name, sums in windows.items():
        ratio = statistics.median(s / b for s, b in zip(sums, base))
        quick = sum(sorted(sums)[:fastest]) / sum(sorted(base)[:fastest])
        per_step = statistics.median(sums) / args.every
        print(f"{name:42s} {per_step:7.3f} {ratio:7.3f} {quick:8.3f} {sizes[name] / total:17,.0f}")
    own = statistics.median(g / s for g, s in zip(windows[GRADS], windows[STATS]))
    quick = sum(sorted(windows[GRADS])[:fastest]) / sum(sorted(windows[STATS])[:fastest])
    print(f"gradient flow alone (watch() over watch(grads=False)): ratio {own:.3f}, fastest {quick:.3f}")


if __name__ == "__main__":
    main()
