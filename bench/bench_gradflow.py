"""Training-step cost of gradient-flow recording against no recording, on ResNet-18.

Run: `python -m bench.bench_gradflow [--steps 20 --rounds 5]`. Three configurations, interleaved round by
round (A B C A B C ...) so drift in machine load hits all of them alike; each figure is the median over
rounds of the mean step time of a block of `steps` steps (every 10th recorded):

* no Insight: a SummaryWriter and add_scalar only;
* Insight watch(every=10, grads=False): activation statistics only;
* Insight watch(every=10): activation statistics plus gradient flow (the default).

The ratio of interest is the last over the first (target < 1.02); the last over the middle isolates what
gradient flow adds to activation statistics.
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
from torch.utils.tensorboard import SummaryWriter

from bench.models import resnet18
from tb_plugin_insight import InsightWriter

Setup = Callable[[nn.Module, Path], SummaryWriter]


def no_insight(model: nn.Module, logdir: Path) -> SummaryWriter:
    return SummaryWriter(str(logdir))


def insight(every: int, grads: bool) -> Setup:
    def setup(model: nn.Module, logdir: Path) -> SummaryWriter:
        writer = InsightWriter(str(logdir))
        writer.watch(model, every=every, grads=grads)
        return writer

    return setup


def run_block(setup: Setup, steps: int, batch: int, size: int, logdir: Path) -> tuple[float, int]:
    """Mean seconds per training step over `steps` steps, and event bytes written."""
    torch.manual_seed(0)
    model = resnet18(10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(2):  # warm-up without the writer: not timed, not counted as steps
        loss_fn(model(x), y).backward()
    opt.zero_grad()
    writer = setup(model, logdir)
    start = time.perf_counter()
    for step in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        writer.add_scalar("loss", loss.item(), step)
    writer.flush()
    elapsed = (time.perf_counter() - start) / steps
    writer.close()
    size_bytes = sum(p.stat().st_size for p in logdir.rglob("events.out.tfevents.*"))
    return elapsed, size_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per block (multiple of 10)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base_name, stats_name, grads_name = (
        "no Insight (SummaryWriter + add_scalar)",
        "Insight watch(every=10, grads=False)",
        "Insight watch(every=10), gradient flow",
    )
    configs: dict[str, Setup] = {
        base_name: no_insight,
        stats_name: insight(10, grads=False),
        grads_name: insight(10, grads=True),
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            for index, (name, setup) in enumerate(configs.items()):
                logdir = Path(tmp) / f"r{round_index}c{index}"
                seconds, size_bytes = run_block(setup, args.steps, args.batch, args.size, logdir)
                times[name].append(seconds)
                sizes[name] = size_bytes
                print(f"  round {round_index + 1}: {name}: {seconds:.3f} s/step", flush=True)
    base = statistics.median(times[base_name])
    print(f"ResNet-18, batch {args.batch}, {args.size}x{args.size}, CPU, {torch.get_num_threads()} threads,")
    print(f"{args.steps} steps per block, {args.rounds} interleaved rounds, torch {torch.__version__}")
    print("ratio: median s/step over the base's; paired: median over rounds of the ratio within a round")
    print(f"{'configuration':42s} {'s/step':>8s} {'ratio':>7s} {'paired':>7s} {'event bytes/step':>17s}")
    for name in configs:
        median = statistics.median(times[name])
        paired = statistics.median(t / b for t, b in zip(times[name], times[base_name]))
        print(
            f"{name:42s} {median:8.3f} {median / base:7.3f} {paired:7.3f} {sizes[name] / args.steps:17,.0f}"
        )
    over_stats = statistics.median(g / s for g, s in zip(times[grads_name], times[stats_name]))
    print(f"gradient flow over activation statistics alone (paired): {over_stats:.3f}")


if __name__ == "__main__":
    main()
