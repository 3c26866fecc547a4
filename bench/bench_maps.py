"""Feature maps: training-step overhead and event bytes, against no logging and the usual practice.

Run: `python -m bench.bench_maps [--rounds 7 --threads 2]`. ResNet-18 (bench/models.py), batch 16,
112x112, a probe of 16 images of that size; Insight watches the default layers with stats every 10
steps (gradient flow included, as by default) and feature maps of the default maps layers (one per
stage) plus the first convolution's filters every 100 steps (`maps_every=100`, `maps_k=16`, no CAMs).

Overhead: one process times, round after round (interleaved, so drift in machine load hits all
alike), one training step of each kind: a plain model without Insight, a watched model at a step that
records nothing, at a stats step, and at a maps step (stats + feature maps). The overhead of the
schedule is then (90 unrecorded + 9 stats + 1 maps step) / (100 plain steps) - 1, from the median
of each kind's per-round ratio to the plain step of the same round (and from the medians and minima
of the times). Timing the kinds separately avoids running hundreds of steps per round.

Bytes: the event bytes of one maps step per conv layer (a separate run mapping every conv layer with
`maps_layers`, defaults otherwise; PNG grid + scales) against the usual practice:
`make_grid` of 16 channels of the first image + `add_image`, per conv layer (bench/practice.py), and
the same practice repeated for all 16 probe images (the same content as Insight's grid).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from tensorboard.backend.event_processing import event_file_loader
from torch import nn
from torch.utils.tensorboard import summary as tb_summary

from bench.models import resnet18
from bench.practice import grid16
from tb_plugin_insight import InsightWriter

KINDS = ("plain", "insight: unrecorded step", "insight: stats step", "insight: maps + stats step")
EVERY, MAPS_EVERY = 10, 100


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def time_rounds(rounds: int, batch: int, size: int, logdir: Path) -> dict[str, list[float]]:
    torch.manual_seed(0)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    probe = torch.randn(16, 3, size, size)
    plain, watched = resnet18(10), resnet18(10)
    opts = {m: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for m in (plain, watched)}
    writer = InsightWriter(str(logdir))
    writer.watch(watched, every=EVERY, probe=probe, cam_every=0, maps_every=MAPS_EVERY, maps_k=16)
    # Which step each kind runs at: the watched model's counter decides what is recorded.
    steps = {KINDS[1]: 101, KINDS[2]: 110, KINDS[3]: 200}
    for _ in range(2):  # warm-up (also the first maps step, which chooses the channels)
        for kind in KINDS:
            model = plain if kind == "plain" else watched
            if kind in steps:
                writer.step = steps[kind]
            train_step(model, opts[model], x, y)
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for kind in KINDS:
            model = plain if kind == "plain" else watched
            if kind in steps:
                writer.step = steps[kind]
            start = time.perf_counter()
            train_step(model, opts[model], x, y)
            times[kind].append(time.perf_counter() - start)
    writer.close()
    return times


def insight_bytes(logdir: Path, step: int) -> dict[str, int]:
    """Bytes of one record per tag (serialised Summary.Value) at `step` (recorded once per round: the
    mean over the rounds' records)."""
    sizes: dict[str, list[int]] = defaultdict(list)
    for path in logdir.glob("events.out.tfevents.*"):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            if event.step == step:
                for value in event.summary.value:
                    sizes[value.tag].append(value.ByteSize())
    return {tag: round(statistics.mean(values)) for tag, values in sizes.items()}


def conv_map_bytes(probe: torch.Tensor, logdir: Path) -> dict[str, int]:
    """Bytes per tag of one maps step with every conv layer mapped (`maps_layers`; the default maps one
    layer per stage), at the defaults otherwise (pooled to maps_max_side, maps_bits levels)."""
    torch.manual_seed(0)
    model = resnet18(10)
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    writer = InsightWriter(str(logdir))
    writer.watch(model, every=1000, probe=probe, cam_every=1000, maps_layers=convs)
    size = probe.shape[-1]
    train_step(model, torch.optim.SGD(model.parameters(), lr=1e-3), *_batch(size))
    writer.close()
    return insight_bytes(logdir, 0)


def _batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(16, 3, size, size), torch.randint(0, 10, (16,))


def practice_bytes(model: nn.Module, probe: torch.Tensor) -> tuple[dict[str, int], dict[str, int]]:
    """add_image of grid16 per conv layer: of the first image, and of each of the probe images."""
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda mod, a, out, name=name: outputs.setdefault(name, out.detach()))
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model.eval()(probe)
    for h in hooks:
        h.remove()
    first, all_images = {}, {}
    for name, out in outputs.items():
        sizes = [
            tb_summary.image(f"fmap/{name}", grid16(out[i]), dataformats="CHW").ByteSize()
            for i in range(len(out))
        ]
        first[name], all_images[name] = sizes[0], sum(sizes)
    return first, all_images


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        logdir = Path(tmp)
        times = time_rounds(args.rounds, args.batch, args.size, logdir)
        sizes = insight_bytes(logdir, 200)
    print(
        f"ResNet-18, batch {args.batch}, {args.size}x{args.size}, {args.threads} CPU threads, {args.rounds}"
        f" interleaved rounds; stats every {EVERY}, feature maps every {MAPS_EVERY} (16 probe images, k=16)"
    )
    print(f"{'step kind':30s} {'median ms':>10s} {'x plain':>8s} {'min ms':>8s} {'x plain':>8s}")
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    for kind in KINDS:
        print(
            f"{kind:30s} {1000 * med[kind]:10.1f} {med[kind] / med['plain']:8.3f}"
            f" {1000 * low[kind]:8.1f} {low[kind] / low['plain']:8.3f}"
        )
    # Paired per round (each kind against the plain step of the same round), then the median.
    paired = {k: statistics.median(a / p for a, p in zip(v, times["plain"])) for k, v in times.items()}
    for name, t in (("per-round ratio median", paired), ("median", med), ("min", low)):
        cycle = 90 * t[KINDS[1]] + 9 * t[KINDS[2]] + t[KINDS[3]]
        maps_share = (t[KINDS[3]] - t[KINDS[2]]) / (100 * t["plain"])
        print(
            f"overhead over {MAPS_EVERY} steps ({name}): {100 * (cycle / (100 * t['plain']) - 1):+.2f}%"
            f" (target < 5%), of which feature maps + filters {100 * maps_share:+.2f}%"
        )

    torch.manual_seed(0)
    model = resnet18(10)  # the same weights as conv_map_bytes' model
    probe = torch.randn(16, 3, args.size, args.size)
    first, all_images = practice_bytes(model, probe)
    with tempfile.TemporaryDirectory() as tmp:
        conv_sizes = conv_map_bytes(probe, Path(tmp))
    print(
        "\nevent bytes per layer per maps step, every conv layer mapped (maps_layers; defaults otherwise:"
        " pooled to maps_max_side=32, 6-bit levels; Insight: PNG grid + scales tensor)"
    )
    heads = ("insight 16 img", "per image", "practice 1 img", "practice 16 img")
    print(f"{'layer':22s} {heads[0]:>15s} {heads[1]:>10s} {heads[2]:>15s} {heads[3]:>16s}")
    totals = [0, 0, 0]
    for name in first:
        ours = conv_sizes.get(f"insight/feature_maps/probe/{name}", 0) + conv_sizes.get(
            f"insight/feature_map_scales/probe/{name}", 0
        )
        totals = [totals[0] + ours, totals[1] + first[name], totals[2] + all_images[name]]
        print(f"{name:22s} {ours:15,d} {ours // 16:10,d} {first[name]:15,d} {all_images[name]:16,d}")
    print(
        f"{'all conv layers':22s} {totals[0]:15,d} {totals[0] // 16:10,d} {totals[1]:15,d} {totals[2]:16,d}"
        f"\nInsight / practice at equal content (16 images): {totals[0] / totals[2]:.2f}"
    )
    everything = sum(v for k, v in sizes.items() if "feature_map" in k)
    layers = sum(1 for k in sizes if k.startswith("insight/feature_maps/"))
    filters = sizes.get("insight/filters/conv1", 0) + sizes.get("insight/filter_scales/conv1", 0)
    print(
        f"the default maps_layers ({layers} layers, one per stage) in the timed run: {everything:,d} bytes"
        f" per maps step; filters of conv1: {filters:,d}"
    )


if __name__ == "__main__":
    main()
