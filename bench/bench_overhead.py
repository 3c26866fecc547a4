"""Training-step overhead and event bytes of Insight at its defaults against no logging and the usual
hand-written practice, side by side in one process.

Run: `python -m bench.bench_overhead [--rounds 3] [--paired-cycles 2] [--model resnet18|gpt256|gpt128]
[--health]`. `--health` also pairs Insight's defaults with and without the transformer-health numbers
(massive activations at every statistics step; `watch(health=False)` is the reference) and prints the
points they add to the overhead (target: at most 1 on `--model gpt256`).
First Insight and no logging alone, one step each in turn (`run_paired`: the precise ratio for target 1).
`--model gpt256` / `gpt128` runs only that paired run, on the 12-layer GPT-style causal LM of
bench/models.py (n_embd 256 or 128, 4 heads, sequence `--size` 128, batch 8, AdamW, vocabulary 8192),
watched as a language model is: `watch(model)` without a probe. Then every configuration
trains its own identical ResNet-18 (batch 16, 112x112, CPU) in windows. A round runs one window of
each configuration in turn (the order rotates every round, so drift in machine load hits all alike);
a window's time includes the writer's `flush()` at its end, so work Insight moved to its writer
thread is charged to it. Windows are 100 steps for configurations with 100-step periods (one
CAM/saliency step, ten statistics steps, one W&B-style step per window), shorter for the homogeneous
hand-written ones. A configuration's ratio in a round is its mean step time over the base's in the
same round; the table shows the median over rounds and the ratio of the fastest windows (least
disturbed by other processes).

* no logging: SummaryWriter + add_scalar of the loss (the base);
* Insight at its defaults: watch(model, probe=16 images) -> activation statistics, gradient flow and
  unit fractions every 10 steps; histograms, feature maps, Grad-CAM and (saliency_methods="gradient")
  input-gradient saliency every 100;
* hand-written practice (bench/practice.py): activation histograms + 4x4 feature-map grids per conv +
  gradient histograms, every step and every 10th step;
* W&B-style: parameter and gradient histograms every 100th step (what wandb.watch(log="all") logs).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from bench.event_files import event_bytes
from bench.models import GPT_SIZES, FixedBatchGPT
from bench.practice import HandWrittenLogger, ParamHistogramLogger
from bench.side_by_side import FixedBatchResNet
from tb_plugin_insight import InsightWriter

BASE = "no logging (SummaryWriter + add_scalar)"
INSIGHT = "Insight watch() defaults + probe"
HAND_1 = "hand-written, every step"
HAND_10 = "hand-written, every 10th step"
WANDB_100 = "W&B-style histograms, every 100th"

Setup = Callable[[nn.Module, Path, torch.Tensor], tuple[SummaryWriter, Callable[[], None]]]


def setup_base(model: nn.Module, logdir: Path, probe: torch.Tensor) -> tuple[SummaryWriter, Any]:
    return SummaryWriter(str(logdir)), lambda: None


def setup_insight(model: nn.Module, logdir: Path, probe: torch.Tensor | None) -> tuple[SummaryWriter, Any]:
    writer = InsightWriter(str(logdir))
    if probe is None:  # a language model: statistics, gradients, histograms and units, no maps
        writer.watch(model)
    else:
        writer.watch(model, probe=probe, saliency_methods="gradient")
    return writer, lambda: None


def setup_insight_no_health(
    model: nn.Module, logdir: Path, probe: torch.Tensor | None
) -> tuple[SummaryWriter, Any]:
    """Insight at its defaults but `health=False`: the reference the health numbers' cost is paired with."""
    writer = InsightWriter(str(logdir))
    if probe is None:
        writer.watch(model, health=False)
    else:
        writer.watch(model, probe=probe, saliency_methods="gradient", health=False)
    return writer, lambda: None


def setup_hand(every: int) -> Setup:
    def setup(model: nn.Module, logdir: Path, probe: torch.Tensor) -> tuple[SummaryWriter, Any]:
        writer = SummaryWriter(str(logdir))
        return writer, HandWrittenLogger(writer, model, every).after_backward

    return setup


def setup_wandb(model: nn.Module, logdir: Path, probe: torch.Tensor) -> tuple[SummaryWriter, Any]:
    writer = SummaryWriter(str(logdir))
    return writer, ParamHistogramLogger(writer, model, 100).after_backward


@dataclasses.dataclass
class Config:
    name: str
    setup: Setup
    window: int  # steps per timed window


CONFIGS = (
    Config(BASE, setup_base, 100),
    Config(INSIGHT, setup_insight, 100),
    Config(HAND_1, setup_hand(1), 10),
    Config(HAND_10, setup_hand(10), 20),
    Config(WANDB_100, setup_wandb, 100),
)


MODELS = ("resnet18", *GPT_SIZES)


def fixed_batch(model: str, batch: int, size: int) -> FixedBatchResNet | FixedBatchGPT:
    """The model with its optimizer and fixed batch: ResNet-18 on (batch, 3, size, size) images, or the
    GPT-style LM of GPT_SIZES[model] on (batch, size) tokens."""
    if model == "resnet18":
        return FixedBatchResNet(batch, size)
    return FixedBatchGPT(batch, size, n_embd=GPT_SIZES[model])


class Trainer:
    """One model, optimizer and writer; `window(n)` runs n training steps and returns seconds per step."""

    def __init__(self, config: Config, logdir: Path, batch: int, size: int, model: str = "resnet18") -> None:
        net = fixed_batch(model, batch, size)
        self.model, self.opt, self.loss_fn, self.x, self.y = net.model, net.opt, net.loss_fn, net.x, net.y
        self.config = config
        self.logdir = logdir
        probe = torch.randn(16, 3, size, size, generator=net.gen) if model == "resnet18" else None
        self.writer, self.after_backward = config.setup(self.model, logdir, probe)
        self.steps = 0
        self.per_step: list[float] = []

    def window(self) -> float:
        start = time.perf_counter()
        for _ in range(self.config.window):
            loss = self.loss_fn(self.model(self.x), self.y)
            self.opt.zero_grad()
            loss.backward()
            self.after_backward()
            self.opt.step()
            self.writer.add_scalar("loss", loss.item(), self.steps)
            self.steps += 1
        self.writer.flush()  # charge work left on writer threads to this window
        seconds = (time.perf_counter() - start) / self.config.window
        self.per_step.append(seconds)
        return seconds

    def event_bytes(self) -> int:
        return event_bytes(self.logdir)


@dataclasses.dataclass
class Result:
    name: str
    seconds_per_step: float
    ratio: float
    fastest_ratio: float
    bytes_per_step: float


def run(rounds: int, batch: int, size: int, names: tuple[str, ...] = (), quiet: bool = False) -> list[Result]:
    """Run the interleaved rounds; one Result per configuration (the base first)."""
    configs = [c for c in CONFIGS if not names or c.name in names or c.name == BASE]
    with tempfile.TemporaryDirectory() as tmp:
        trainers = [Trainer(c, Path(tmp) / str(i), batch, size) for i, c in enumerate(configs)]
        for r in range(rounds):
            for k in range(len(trainers)):
                trainer = trainers[(r + k) % len(trainers)]
                seconds = trainer.window()
                if not quiet:
                    print(
                        f"  round {r + 1}/{rounds}: {trainer.config.name}: {seconds:.3f} s/step", flush=True
                    )
        for trainer in trainers:
            trainer.writer.close()
        sizes = {t.config.name: t.event_bytes() / t.steps for t in trainers}
    base = trainers[0].per_step
    fastest = max(1, rounds // 3)
    results = []
    for t in trainers:
        ratio = statistics.median(s / b for s, b in zip(t.per_step, base))
        quick = sum(sorted(t.per_step)[:fastest]) / sum(sorted(base)[:fastest])
        results.append(
            Result(t.config.name, statistics.median(t.per_step), ratio, quick, sizes[t.config.name])
        )
    return results


@dataclasses.dataclass
class Paired:
    ratio: float  # Insight's total step time over the base's, same number of steps
    steps: int  # steps of each
    base_seconds: float  # mean step time of the base
    recorded_ratio: float  # Insight's recorded steps (stats, maps) over the base steps paired with them
    unrecorded_ratio: float  # the other steps over theirs
    session_ratios: tuple[float, ...] = ()  # base built first, Insight built first
    stats_ratio: float = float("nan")  # statistics steps without maps over the base steps paired with them
    map_ratio: float = float("nan")  # the map steps (every 100th) over theirs
    # Robust to load spikes: per kind of step the median of step-by-step ratios (Insight's step over the
    # base step run next to it), weighted as the defaults' schedule (90 unrecorded, 9 statistics, 1 map
    # step in 100). A spike of machine load that hits one step of a pair moves only that pair's ratio.
    median_ratio: float = float("nan")


WARM_UP = 10  # untimed steps of each before the paired run (a multiple of 10 keeps the schedule)


def run_paired(
    cycles: int,
    batch: int,
    size: int,
    quiet: bool = False,
    model: str = "resnet18",
    pair: tuple[Config, Config] | None = None,
) -> Paired:
    """Insight at its defaults against no logging, one training step each in turn (the order
    alternating), in two sessions: one building the base's model first, one building Insight's first
    (where a model's tensors land in memory moves its step time by up to 3 %, see the README), each
    `cycles` x 100 steps of each after WARM_UP untimed steps (each 100 hold 10 statistics steps and one
    map step). Load on the machine hits both alike, step by step (windows of 100 steps drift by 5-10 %).
    Every step ends with the writer's flush(), so Insight's writer-thread work is charged to its own
    step, never overlapped with the next. Ratios are geometric means of the two sessions'. `model`: one of
    MODELS (`fixed_batch`). `pair`: (reference, measured) configurations instead of (no logging,
    Insight defaults), e.g. HEALTH_PAIR."""
    sessions = []
    for insight_first in (False, True):
        configs = pair or (Config(BASE, setup_base, 1), Config(INSIGHT, setup_insight, 1))
        with tempfile.TemporaryDirectory() as tmp:
            built = {
                c.name: Trainer(c, Path(tmp) / c.name[:4], batch, size, model)
                for c in configs[:: -1 if insight_first else 1]
            }
            base, ours = built[configs[0].name], built[configs[1].name]
            for _ in range(WARM_UP):  # once-per-run work (probe images, model table, histogram ranges)
                base.window(), ours.window()
            base.per_step.clear(), ours.per_step.clear()
            for step in range(100 * cycles):
                for trainer in (base, ours) if step % 2 else (ours, base):
                    trainer.window()
                if not quiet and step % 100 == 99:
                    done = sum(ours.per_step) / sum(base.per_step)
                    order = "Insight" if insight_first else "base"
                    print(
                        f"  paired ({order} built first): {step + 1} steps each, Insight / base {done:.3f}",
                        flush=True,
                    )
            for trainer in (base, ours):
                trainer.writer.close()
        sessions.append((base.per_step, ours.per_step))

    def ratio(which: Callable[[int], bool]) -> float:
        values = []
        for base_times, our_times in sessions:
            indices = [i for i in range(len(base_times)) if which((WARM_UP + i) % 100)]  # Insight's step
            values.append(sum(our_times[i] for i in indices) / sum(base_times[i] for i in indices))
        return statistics.geometric_mean(values)

    return Paired(
        ratio=ratio(lambda r: True),
        steps=sum(len(b) for b, _ in sessions),
        base_seconds=statistics.mean(t for b, _ in sessions for t in b),
        recorded_ratio=ratio(lambda r: r % 10 == 0),  # every=10: the statistics (and map) steps
        unrecorded_ratio=ratio(lambda r: r % 10 != 0),
        session_ratios=tuple(sum(o) / sum(b) for b, o in sessions),
        stats_ratio=ratio(lambda r: r % 10 == 0 and r != 0),
        map_ratio=ratio(lambda r: r == 0),
        median_ratio=_median_weighted(sessions),
    )


def _median_weighted(sessions: list[tuple[list[float], list[float]]]) -> float:
    """Paired.median_ratio: per kind the median of step-by-step ratios over all sessions, weighted 90/9/1."""
    kinds: dict[str, list[float]] = {"unrecorded": [], "statistics": [], "maps": []}
    for base_times, our_times in sessions:
        for i, (b, o) in enumerate(zip(base_times, our_times)):
            r = (WARM_UP + i) % 100
            kind = "maps" if r == 0 else "statistics" if r % 10 == 0 else "unrecorded"
            kinds[kind].append(o / b)
    weights = {"unrecorded": 90, "statistics": 9, "maps": 1}
    return sum(weights[k] * statistics.median(v) for k, v in kinds.items() if v) / sum(
        weights[k] for k, v in kinds.items() if v
    )


# The transformer-health numbers (massive activations at every statistics step) paired on and off.
HEALTH_PAIR = (
    Config("Insight defaults, health=False", setup_insight_no_health, 1),
    Config(INSIGHT, setup_insight, 1),
)


def report_health(p: Paired, model: str) -> None:
    """The health numbers' cost: Insight with them over Insight without, step by step; since Insight's
    own overhead is a few points, (ratio - 1) x 100 is the points they add to the overhead."""
    points = (p.ratio - 1) * 100
    print(
        f"health numbers paired on/off on {model}, {p.steps} steps each: with / without = {p.ratio:.4f}x"
        f" -> {points:+.2f} points of overhead (target <= +1.00); statistics steps {p.stats_ratio:.3f}x,"
        f" per-kind medians {p.median_ratio:.4f}x;"
        f" sessions {' / '.join(f'{r:.3f}x' for r in p.session_ratios)}"
    )


def report_paired(p: Paired, model: str = "resnet18") -> None:
    target = 1.05 if model == "gpt128" else 1.03
    print(
        f"paired step by step on {model}, {p.steps} steps each (base {p.base_seconds:.3f} s/step):"
        f" Insight defaults / no logging = {p.ratio:.3f}x (target <= {target:.2f}x),"
        f" per-kind medians {p.median_ratio:.3f}x;"
        f" recorded steps {p.recorded_ratio:.3f}x (statistics steps {p.stats_ratio:.3f}x,"
        f" map steps {p.map_ratio:.3f}x), the others {p.unrecorded_ratio:.3f}x;"
        f" sessions (base / Insight built first) {' / '.join(f'{r:.3f}x' for r in p.session_ratios)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of windows (0: only the paired run)")
    parser.add_argument("--paired-cycles", type=int, default=2, help="x 100 steps each per session")
    parser.add_argument("--model", choices=MODELS, default="resnet18", help="gpt*: only the paired run")
    parser.add_argument("--batch", type=int, help="default 16 images (resnet18), 8 sequences (gpt*)")
    parser.add_argument("--size", type=int, help="default 112 pixels (resnet18), 128 tokens (gpt*)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--health", action="store_true", help="also pair the transformer-health numbers on and off"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    resnet = args.model == "resnet18"
    batch = args.batch or (16 if resnet else 8)
    size = args.size or (112 if resnet else 128)
    paired = run_paired(args.paired_cycles, batch, size, model=args.model) if args.paired_cycles else None
    if paired is not None:
        report_paired(paired, args.model)
    if args.health and args.paired_cycles:
        report_health(
            run_paired(args.paired_cycles, batch, size, model=args.model, pair=HEALTH_PAIR), args.model
        )
    if not args.rounds or not resnet:
        return
    args.batch, args.size = batch, size
    results = run(args.rounds, args.batch, args.size)
    print(
        f"ResNet-18, batch {args.batch}, {args.size}x{args.size}, CPU, {torch.get_num_threads()} threads,"
        f" {args.rounds} interleaved rounds, torch {torch.__version__}"
    )
    print("ratio: median over rounds of the step time over the base's in the same round;")
    print("fastest: the fastest windows of each over the base's fastest")
    print(f"{'configuration':40s} {'s/step':>7s} {'ratio':>7s} {'fastest':>8s} {'event bytes/step':>17s}")
    for r in results:
        seconds, size = f"{r.seconds_per_step:7.3f}", f"{r.bytes_per_step:17,.0f}"
        print(f"{r.name:40s} {seconds} {r.ratio:7.3f} {r.fastest_ratio:8.3f} {size}")
    ours = next(r for r in results if r.name == INSIGHT)
    hand = next(r for r in results if r.name == HAND_10)
    smaller = hand.bytes_per_step / ours.bytes_per_step
    print(f"event bytes per step, hand-written every 10th / Insight defaults: {smaller:.0f}x")
    if paired is not None:
        report_paired(paired, args.model)


if __name__ == "__main__":
    main()
