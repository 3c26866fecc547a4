"""Feature visualisation: seconds per visualisation step and its amortised cost against training.

Run: `python -m bench.bench_featurevis [--every 1000 --steps 64 --channels 8 --rounds 5 --threads 2]`.
A small CNN (four 3x3 convolutions with BatchNorm and ReLU, 32 to 128 channels, CIFAR-sized 32 x 32
inputs, batch 128, SGD) is trained on random data. Timed, round after round (interleaved, so drift in
machine load hits both alike):

* a plain training step (forward, backward, optimizer step) of the unwatched model;
* a training step of the watched model at a step that visualises (`featurevis_every=`, the default
  layer, `featurevis_channels` channels, `featurevis_steps` optimisation steps, the probe's 32 x 32),
  which runs the visualisation before that step's forward; minus the plain step, that is the cost of
  one visualisation.

Printed: the median seconds of each, one visualisation in training steps, the amortised ratio
(visualisation / (every x training step)), and the smallest `featurevis_every` within 1% of training
time on this machine. Timings on a shared machine are noisy: compare medians across runs.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from torch import nn

from tb_plugin_insight import InsightWriter


def small_cnn(classes: int = 10) -> nn.Sequential:
    """Four conv blocks (32, 64, 64, 128 channels), global pooling, a linear classifier."""

    def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
        return layers + [nn.MaxPool2d(2)] if pool else layers

    return nn.Sequential(
        *block(3, 32, True), *block(32, 64, True), *block(64, 64, False), *block(64, 128, True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, classes),
    )  # fmt: skip


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def time_rounds(args: argparse.Namespace, logdir: str) -> tuple[list[float], list[float]]:
    torch.manual_seed(0)
    x, y = torch.randn(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))
    probe = torch.randn(16, 3, 32, 32)
    plain, watched = small_cnn(), small_cnn()
    opts = {m: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for m in (plain, watched)}
    writer = InsightWriter(logdir)
    writer.watch(
        watched, every=10, probe=probe, cam_every=0, maps_every=0, grads=False,
        featurevis_every=args.every, featurevis_channels=args.channels, featurevis_steps=args.steps,
    )  # fmt: skip
    plain_times, vis_times = [], []
    for round_ in range(args.rounds + 1):  # the first round warms up
        start = time.perf_counter()
        train_step(plain, opts[plain], x, y)
        plain_time = time.perf_counter() - start
        writer.step = args.every * (round_ + 1)  # a visualisation step (not a stats step: every=10 | it)
        start = time.perf_counter()
        train_step(watched, opts[watched], x, y)
        vis_time = time.perf_counter() - start
        if round_:
            plain_times.append(plain_time)
            vis_times.append(vis_time)
    writer.close()
    return plain_times, vis_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1000, help="featurevis_every for the amortised ratio")
    parser.add_argument("--steps", type=int, default=64, help="featurevis_steps")
    parser.add_argument("--channels", type=int, default=8, help="featurevis_channels (k)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.every % 10 == 0:
        args.every += 1  # keep visualisation steps off the statistics steps, to time the visualisation alone
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as logdir:
        plain_times, vis_times = time_rounds(args, logdir)
    train = statistics.median(plain_times)
    step = statistics.median(vis_times)
    vis = max(step - train, 0.0)
    ratio = vis / (args.every * train)
    within = math.ceil(vis / (0.01 * train))
    print(f"small CNN, batch {args.batch}, 32x32, {args.threads} threads, {args.rounds} rounds (medians)")
    print(f"training step (plain):              {train * 1e3:9.2f} ms")
    print(f"training step + visualisation:      {step * 1e3:9.2f} ms")
    print(
        f"one visualisation ({args.channels} channels, {args.steps} steps): {vis:7.3f} s"
        f" = {vis / train:.0f} training steps"
    )
    print(f"amortised at featurevis_every={args.every}: {ratio:.2%} of training time")
    print(f"smallest featurevis_every within 1% of training time here: {within}")


if __name__ == "__main__":
    main()
