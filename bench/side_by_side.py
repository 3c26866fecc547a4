"""Identical ResNet-18 models on one fixed batch, trained side by side in one process, one step each in
turn (the order rotates every step), so load on a shared machine hits every configuration alike. The
training loop of the step-cost benchmarks (bench_gradflow, bench_layerview; bench_overhead uses the
model setup)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from bench.models import resnet18


class FixedBatchResNet:
    """ResNet-18 with momentum SGD and one random batch; the same weights and batch for every instance,
    warmed up (two forward/backward passes) before any writer sees it. `gen` draws further inputs."""

    def __init__(self, batch: int, size: int) -> None:
        torch.manual_seed(0)
        self.model = resnet18(10)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(batch, 3, size, size, generator=self.gen)
        self.y = torch.randint(0, 10, (batch,), generator=self.gen)
        self.loss_fn = nn.CrossEntropyLoss()
        for _ in range(2):  # warm-up before any writer: not timed, not counted as steps
            self.loss_fn(self.model(self.x), self.y).backward()
        self.opt.zero_grad()

    def train_step(self) -> torch.Tensor:
        """One forward, backward and optimizer step on the fixed batch; returns the loss."""
        loss = self.loss_fn(self.model(self.x), self.y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss


class Trainer(FixedBatchResNet):
    """One configuration: `make_writer(model)` gives its writer (after the warm-up); `step()` runs and
    times one training step, logging the loss as a scalar."""

    def __init__(
        self, name: str, make_writer: Callable[[nn.Module], SummaryWriter], batch: int, size: int
    ) -> None:
        super().__init__(batch, size)
        self.name = name
        self.writer = make_writer(self.model)
        self.global_step = 0
        self.times: list[float] = []

    def step(self) -> None:
        start = time.perf_counter()
        loss = self.train_step()
        self.writer.add_scalar("loss", loss.item(), self.global_step)
        self.times.append(time.perf_counter() - start)
        self.global_step += 1


def train_side_by_side(trainers: Sequence[Trainer], windows: int, every: int) -> None:
    """`windows * every` steps of each trainer, one step each in turn, the order rotating every step;
    prints each window's mean seconds per step, then closes the writers."""
    total = windows * every
    for step in range(total):
        for k in range(len(trainers)):
            trainers[(step + k) % len(trainers)].step()
        if (step + 1) % every == 0:
            means = ", ".join(f"{sum(t.times[-every:]) / every:.3f}" for t in trainers)
            print(f"  window {(step + 1) // every}/{windows}: s/step {means}", flush=True)
    for t in trainers:
        t.writer.close()


def cpu_bench_args(doc: str) -> argparse.Namespace:
    """--samples and --threads of the CPU-time benchmarks (bench_step_costs), with
    torch's intra-op threads set."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args
