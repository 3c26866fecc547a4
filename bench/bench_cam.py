"""Cost of the CAM methods on a ResNet-18 (batch 16, 112x112, CPU), side by side with plain passes.

Run: `python -m bench.bench_cam [--reps 7 --threads 2]`. Every configuration is timed once per round,
rounds interleave the configurations (A B C ... A B C ...) so drift in machine load hits all alike, and
each figure is the median over rounds (the minimum is shown too: on a busy machine it is the steadier
figure). Ratios are against one plain forward (eval mode, no_grad) of the
same batch; scorecam and ablationcam are timed on one image and reported per image.

"forward + full backward" is what a CAM costs when it is done the usual way (pytorch-grad-cam): a forward
with autograd recording everything, then `.backward()` of the target scores into every parameter's
`.grad`. `compute_cam` stops the backward at the target layer and records nothing before it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

# Idle OpenMP threads sleep instead of spinning, so a busy machine distorts the ratios less (all
# configurations run in this one process alike). Only effective before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from torch import nn

from bench.models import resnet18
from tb_plugin_insight.cam import GRADIENT_METHODS, METHODS, compute_cam, compute_cams

LAYER = "layer4"
BASE = "one forward (no_grad)"
Timed = Callable[[], object]
CAPTURE_METHODS = [m for m in METHODS if m in GRADIENT_METHODS or m == "eigencam"]


def configurations(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, Timed], dict[str, Timed]]:
    """(batch configurations, one-image perturbation configurations): name -> callable to time."""

    def forward_no_grad() -> object:
        with torch.no_grad():
            return model(x)

    def forward_with_grad() -> object:
        return model(x)

    def forward_full_backward() -> object:
        out = model(x)
        out.gather(1, out.argmax(dim=1, keepdim=True)).sum().backward()
        model.zero_grad(set_to_none=True)
        return out

    one = x[:1]
    batch = {
        BASE: forward_no_grad,
        "one forward (grad enabled)": forward_with_grad,
        "forward + full backward": forward_full_backward,
        "gradcam": lambda: compute_cam(model, x, LAYER, "gradcam"),
        "gradcam++": lambda: compute_cam(model, x, LAYER, "gradcam++"),
        "eigencam": lambda: compute_cam(model, x, LAYER, "eigencam"),
        f"compute_cams: {len(CAPTURE_METHODS)} methods": lambda: compute_cams(
            model, x, LAYER, CAPTURE_METHODS
        ),
    }
    per_image = {
        "scorecam (1 image)": lambda: compute_cam(model, one, LAYER, "scorecam"),
        "ablationcam (1 image)": lambda: compute_cam(model, one, LAYER, "ablationcam"),
    }
    return batch, per_image


def interleaved(configs: dict[str, Timed], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each configuration, timed once per round, rounds interleaved."""
    for fn in configs.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, fn in configs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15, help="rounds of the batch configurations (15)")
    parser.add_argument("--image-reps", type=int, default=3, help="rounds of scorecam/ablationcam (3)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = resnet18(10).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    batch, per_image = configurations(model, x)
    times = interleaved(batch, args.reps)
    times.update(interleaved(per_image, args.image_reps))
    median_base, min_base = statistics.median(times[BASE]), min(times[BASE])
    print(
        f"ResNet-18, batch {args.batch}, {args.size}x{args.size}, {args.threads} CPU threads, target layer"
        f" {LAYER}; medians of {args.reps} rounds ({args.image_reps} for the one-image rows)"
    )
    print(f"{'configuration':34s} {'median ms':>10s} {'x forward':>10s} {'min ms':>9s} {'x forward':>10s}")
    for name, values in times.items():
        median, low = statistics.median(values), min(values)
        print(
            f"{name:34s} {1000 * median:10.1f} {median / median_base:10.2f}"
            f" {1000 * low:9.1f} {low / min_base:10.2f}"
        )
    print(f"\ncapture methods: {', '.join(CAPTURE_METHODS)}")
    channels = dict(model.named_modules())[LAYER][-1].conv2.out_channels
    print(
        f"scorecam/ablationcam make {channels} perturbed forwards per image (one per channel of {LAYER}),"
        f" i.e. {channels / args.batch:.0f} batches of {args.batch} images"
    )


if __name__ == "__main__":
    main()
