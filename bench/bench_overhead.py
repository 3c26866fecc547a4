"""Training-step overhead and event bytes of Insight against no logging and the hand-written practice.

Run: `python -m bench.bench_overhead [--steps 20 --rounds 3]`. Configurations are interleaved round by
round (A B C ... A B C ...) so drift in machine load hits all of them alike; each figure is the median
over rounds of the mean step time of a block of steps that includes the recorded ones.
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
from bench.practice import HandWrittenLogger
from tb_plugin_insight import InsightWriter

Setup = Callable[[nn.Module, Path], tuple[SummaryWriter, Callable[[], None]]]


def no_insight(model: nn.Module, logdir: Path) -> tuple[SummaryWriter, Callable[[], None]]:
    return SummaryWriter(str(logdir)), lambda: None


def insight_every(every: int) -> Setup:
    def setup(model: nn.Module, logdir: Path) -> tuple[SummaryWriter, Callable[[], None]]:
        writer = InsightWriter(str(logdir))
        writer.watch(model, every=every)
        return writer, lambda: None

    return setup


def hand_written_every(every: int) -> Setup:
    def setup(model: nn.Module, logdir: Path) -> tuple[SummaryWriter, Callable[[], None]]:
        writer = SummaryWriter(str(logdir))
        logger = HandWrittenLogger(writer, model, every)
        return writer, logger.after_backward

    return setup


def run_block(setup: Setup, steps: int, batch: int, size: int, logdir: Path) -> tuple[float, int]:
    """Mean seconds per training step over `steps` steps, and event bytes written."""
    torch.manual_seed(0)
    model = resnet18(10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    writer, after_backward = setup(model, logdir)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(2):  # warm-up, not timed, not counted as steps
        loss_fn(model(x), y).backward()
    opt.zero_grad()
    if isinstance(writer, InsightWriter):
        writer.step = 0
    start = time.perf_counter()
    for step in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        after_backward()
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    args = parser.parse_args()
    torch.set_num_threads(2)
    configs: dict[str, Setup] = {
        "no Insight (SummaryWriter + add_scalar)": no_insight,
        "Insight watch(every=10)": insight_every(10),
        "hand-written, every 10th step": hand_written_every(10),
        "hand-written, every step": hand_written_every(1),
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
    base = statistics.median(times["no Insight (SummaryWriter + add_scalar)"])
    print(f"ResNet-18, batch {args.batch}, {args.size}x{args.size}, CPU, {torch.get_num_threads()} threads,")
    print(
        f"{args.steps} steps per block, {args.rounds} interleaved rounds (median), torch {torch.__version__}"
    )
    print(f"{'configuration':42s} {'s/step':>8s} {'ratio':>7s} {'event bytes/step':>17s}")
    for name in configs:
        median = statistics.median(times[name])
        print(f"{name:42s} {median:8.3f} {median / base:7.3f} {sizes[name] / args.steps:17,.0f}")


if __name__ == "__main__":
    main()
