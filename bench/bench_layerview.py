"""Cost of activation histograms (and dead/saturated units) against statistics alone and no logging,
and their event bytes against the usual `add_histogram` per layer.

Run: `python -m bench.bench_layerview [--steps 20 --rounds 3]`. ResNet-18 (bench/models.py), batch 16,
112x112, CPU. Configurations are interleaved round by round (A B C ... A B C ...) so drift in machine
load hits all alike; each figure is the median over rounds of the mean step time of a block of steps
that includes the recorded ones (every 10th). Gradient flow is off in every Insight configuration, so
the differences are the forward-hook work only. Event bytes are per watched layer per recorded step:
Insight's histogram records (the difference between a run with and without them) against
`SummaryWriter.add_histogram` of the same layers' outputs at the same steps.
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
from tb_plugin_insight.capture.layers import select_layers

EVERY = 10
Setup = Callable[[nn.Module, Path], SummaryWriter]


def no_logging(model: nn.Module, logdir: Path) -> SummaryWriter:
    return SummaryWriter(str(logdir))


def insight(**options: bool) -> Setup:
    def setup(model: nn.Module, logdir: Path) -> SummaryWriter:
        writer = InsightWriter(str(logdir))
        writer.watch(model, every=EVERY, grads=False, model_table=False, **options)
        return writer

    return setup


class AddHistogramLogger:
    """The usual practice: a forward hook per layer calling `add_histogram` on recorded steps."""

    def __init__(self, writer: SummaryWriter, model: nn.Module) -> None:
        self.writer = writer
        self.step = -1
        self.handles = [model.register_forward_pre_hook(self._count)]
        for _, name, module in select_layers(model):  # the same layers Insight watches by default
            self.handles.append(module.register_forward_hook(self._hook(name)))

    def _count(self, module: nn.Module, args: object) -> None:
        self.step += 1

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: object, output: torch.Tensor) -> None:
            if self.step % EVERY == 0:
                self.writer.add_histogram(f"act/{name}", output.detach(), self.step)

        return hook


def add_histogram_practice(model: nn.Module, logdir: Path) -> SummaryWriter:
    writer = SummaryWriter(str(logdir))
    AddHistogramLogger(writer, model)
    return writer


CONFIGS: dict[str, Setup] = {
    "no logging": no_logging,
    "Insight statistics": insight(histograms=False, units=False),
    "Insight statistics + histograms": insight(histograms=True, units=False),
    "Insight statistics + histograms + units": insight(histograms=True, units=True),
    "add_histogram per layer": add_histogram_practice,
}


def run_block(setup: Setup, steps: int, batch: int, size: int, logdir: Path) -> tuple[float, int]:
    """Mean seconds per training step over `steps` steps, and event bytes written."""
    torch.manual_seed(0)
    model = resnet18(10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    model.eval()
    with torch.no_grad():
        model(x)  # warm-up outside any counted step (eval forwards are not counted)
    model.train()
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
    return elapsed, sum(p.stat().st_size for p in logdir.rglob("events.out.tfevents.*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per block (a multiple of 10)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    args = parser.parse_args()
    torch.set_num_threads(2)
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            for index, (name, setup) in enumerate(CONFIGS.items()):
                logdir = Path(tmp) / f"r{round_index}c{index}"
                seconds, size_bytes = run_block(setup, args.steps, args.batch, args.size, logdir)
                times[name].append(seconds)
                sizes[name] = size_bytes
                print(f"  round {round_index + 1}: {name}: {seconds:.3f} s/step", flush=True)
    layers = len(select_layers(resnet18(10)))
    recorded = len(range(0, args.steps, EVERY))
    base = statistics.median(times["no logging"])
    stats_only = statistics.median(times["Insight statistics"])
    print(f"ResNet-18, batch {args.batch}, {args.size}x{args.size}, CPU, {torch.get_num_threads()} threads,")
    print(f"{args.steps} steps per block, recorded every {EVERY}, {args.rounds} interleaved rounds (median),")
    print(f"{layers} watched layers, torch {torch.__version__}")
    print(f"{'configuration':42s} {'s/step':>8s} {'vs none':>8s} {'vs stats':>9s} {'min s/step':>11s}")
    for name in CONFIGS:
        median, fastest = statistics.median(times[name]), min(times[name])
        print(f"{name:42s} {median:8.3f} {median / base:8.3f} {median / stats_only:9.3f} {fastest:11.3f}")
    per = layers * recorded
    hist_bytes = sizes["Insight statistics + histograms"] - sizes["Insight statistics"]
    unit_bytes = sizes["Insight statistics + histograms + units"] - sizes["Insight statistics + histograms"]
    practice = sizes["add_histogram per layer"] - sizes["no logging"]
    print("event bytes per layer per recorded step:")
    print(f"  Insight histogram (64 bins + range + under/overflow): {hist_bytes / per:8,.0f}")
    print(f"  Insight dead/saturated units:                         {unit_bytes / per:8,.0f}")
    print(f"  add_histogram (default bins):                         {practice / per:8,.0f}")


if __name__ == "__main__":
    main()
