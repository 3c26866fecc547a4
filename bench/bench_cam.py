"""Cost of the CAM methods on a ResNet-18 (batch 16, 112x112, CPU), side by side with plain passes.

Run: `python -m bench.bench_cam [--reps 7 --threads 2]`. Every configuration is timed once per round,
rounds interleave the configurations (A B C ... A B C ...) so drift in machine load hits all alike, and
each figure is the median over rounds. Ratios are against one plain forward (eval mode, no_grad) of the
same batch; scorecam and ablationcam are timed on one image and reported per image.

"forward + full backward" is what a CAM costs when it is done the usual way (pytorch-grad-cam): a forward
with autograd recording everything, then `.backward()` of the target scores into every parameter's
`.grad`. `compute_cam` stops the backward at the target layer and records nothing before it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from bench.models import resnet18
from tb_plugin_insight.cam import GRADIENT_METHODS, METHODS, compute_cam, compute_cams

LAYER = "layer4"
CAPTURE_METHODS = [m for m in METHODS if m in GRADIENT_METHODS or m == "eigencam"]


def configurations(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[Callable[[], object], int]]:
    """name -> (callable to time, number of images it processes)."""

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
    return {
        "one forward (no_grad)": (forward_no_grad, len(x)),
        "one forward (grad enabled)": (forward_with_grad, len(x)),
        "forward + full backward": (forward_full_backward, len(x)),
        "gradcam": (lambda: compute_cam(model, x, LAYER, "gradcam"), len(x)),
        "eigencam": (lambda: compute_cam(model, x, LAYER, "eigencam"), len(x)),
        f"compute_cams: {len(CAPTURE_METHODS)} methods": (
            lambda: compute_cams(model, x, LAYER, CAPTURE_METHODS),
            len(x),
        ),
        "scorecam (1 image)": (lambda: compute_cam(model, one, LAYER, "scorecam"), 1),
        "ablationcam (1 image)": (lambda: compute_cam(model, one, LAYER, "ablationcam"), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7, help="rounds; the median is reported (default 7)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = resnet18(10).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    configs = configurations(model, x)
    for fn, _ in configs.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.reps):
        for name, (fn, _) in configs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["one forward (no_grad)"])
    print(
        f"ResNet-18, batch {args.batch}, {args.size}x{args.size}, {args.threads} CPU threads, "
        f"target layer {LAYER}, median of {args.reps} rounds"
    )
    print(f"{'configuration':34s} {'ms':>9s} {'x forward':>10s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:34s} {1000 * median:9.1f} {median / base:10.2f}")
    print(f"\ncapture methods: {', '.join(CAPTURE_METHODS)}")


if __name__ == "__main__":
    main()
