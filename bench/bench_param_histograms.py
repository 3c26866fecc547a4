"""Cost of the weight and gradient histograms (`Histograms(params=True)`) on a ResNet-18 step, CPU.

Run: `python -m bench.bench_param_histograms [--steps 6] [--batch 8] [--size 64]`. Kept short.

1. Direct: after one training step, the work the parameter hooks add at a histogram step is timed on
   every watched parameter and its `.grad` (best of 3): the gradient statistics gradient flow already
   computes (reduce.grad_parts and ||w||^2), against the two histograms (symmetric_histogram of w and of
   g, with w's max |w|), and both against a training step (forward + backward).
2. End to end: two identical models train in turn with watch(every=1, histogram_every=1) and
   histogram_params True / False; the median step time of each (every step is a histogram step: the
   worst case; the default histogram_every=100 divides the added time by 100 / every) and the event
   bytes the parameter histograms add per step.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from bench.event_files import event_bytes
from bench.models import resnet18
from tb_plugin_insight import InsightWriter
from tb_plugin_insight.capture import grads as grads_mod
from tb_plugin_insight.capture import histogram
from tb_plugin_insight.capture.layers import select_layers


def _best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def direct(batch: int, size: int) -> None:
    torch.manual_seed(0)
    model = resnet18(10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    _step(model, opt, x, y)
    step = _best_of(lambda: _step(model, opt, x, y), 2)
    params = [p for _, p in grads_mod.attribute_parameters(model, select_layers(model))]
    dtype = torch.float64

    def stats() -> None:
        for p in params:
            grads_mod._grad_parts(p.grad)  # noqa: SLF001 - the reductions the hooks already run
            grads_mod._norm_sq(p.detach())  # noqa: SLF001

    grad_max = [histogram.finite_absmax(p.grad) for p in params]  # the hooks reuse the statistics' max

    def hists() -> None:
        for p, g_max in zip(params, grad_max):
            w = p.detach()
            histogram.symmetric_histogram(w, 32, histogram.finite_absmax(w), dtype)
            histogram.symmetric_histogram(p.grad, 32, g_max, dtype)

    t_stats, t_hist = _best_of(stats), _best_of(hists)
    n = sum(p.numel() for p in params)
    print(f"parameter hooks at a histogram step ({len(params)} tensors, {n / 1e6:.1f} M values), best of 3:")
    print(f"  training step (fwd+bwd+SGD)  {step:7.3f} s")
    print(f"  gradient statistics          {t_stats:7.3f} s  {t_stats / step:6.3f} x step")
    print(f"  weight + gradient histograms {t_hist:7.3f} s  {t_hist / step:6.3f} x step")


def end_to_end(steps: int, batch: int, size: int) -> None:
    times: dict[bool, list[float]] = {True: [], False: []}
    sizes: dict[bool, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for params in (False, True):
            torch.manual_seed(0)
            model = resnet18(10)
            writer = InsightWriter(str(Path(tmp) / str(params)))
            writer.watch(
                model, every=1, histogram_every=1, histogram_params=params, units=False, model_table=False
            )
            runs[params] = (model, torch.optim.SGD(model.parameters(), lr=0.01), writer)
        gen = torch.Generator().manual_seed(1)
        for i in range(steps):
            x, y = (
                torch.randn(batch, 3, size, size, generator=gen),
                torch.randint(0, 10, (batch,), generator=gen),
            )
            order = [False, True] if i % 2 else [True, False]
            for params in order:
                model, opt, _ = runs[params]
                start = time.perf_counter()
                _step(model, opt, x, y)
                if i:  # the first step fixes edges and warms up
                    times[params].append(time.perf_counter() - start)
        for params, (_, _, writer) in runs.items():
            writer.close()
            sizes[params] = event_bytes(Path(tmp) / str(params))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"end to end, every step a histogram step, median of {len(times[True])} steps"
        " (noisy on a shared machine):"
    )
    print(f"  histogram_params=False  {off:7.3f} s/step")
    print(f"  histogram_params=True   {on:7.3f} s/step  ({(on / off - 1) * 100:+.1f} %)")
    print(f"  event bytes per step added: {(sizes[True] - sizes[False]) / steps / 1024:.1f} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    direct(args.batch, args.size)
    if args.steps > 1:
        end_to_end(args.steps, args.batch, args.size)


if __name__ == "__main__":
    main()
