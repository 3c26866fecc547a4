"""Cost of FullGrad (`compute_cam(model, x, None, method="fullgrad")`) against one plain forward.

Run: `python -m bench.bench_fullgrad [--reps 7 --threads 2 --batch 8 --size 64 --device cpu]`. Rounds
interleave the configurations so drift in machine load hits all alike; each figure is the median over
rounds (and the minimum). Ratios are against one plain forward (eval mode, no_grad) of the same batch.

FullGrad needs the gradient at the input and at every bias layer's output: one forward that records
gradients from the input on, and a full backward (the usual "forward + full backward", without writing any
`.grad`), plus the per-channel scaling and one resize per resolution. Grad-CAM, which stops its backward
at the target layer, is shown for comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from torch import nn

from bench.models import resnet18
from tb_plugin_insight.cam import compute_cam
from tb_plugin_insight.explain.fullgrad import bias_layers

BASE = "one forward (no_grad)"
Timed = Callable[[], object]


def configurations(model: nn.Module, x: torch.Tensor) -> dict[str, Timed]:
    """name -> callable to time."""

    def forward_no_grad() -> object:
        with torch.no_grad():
            return model(x)

    def forward_full_backward() -> object:
        out = model(x)
        out.gather(1, out.argmax(dim=1, keepdim=True)).sum().backward()
        model.zero_grad(set_to_none=True)
        return out

    def synchronized(fn: Timed) -> Timed:
        def timed() -> object:
            result = fn()
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            return result

        return timed

    return {
        name: synchronized(fn)
        for name, fn in {
            BASE: forward_no_grad,
            "forward + full backward": forward_full_backward,
            "gradcam (layer4)": lambda: compute_cam(model, x, "layer4", "gradcam"),
            "fullgrad": lambda: compute_cam(model, x, None, "fullgrad"),
        }.items()
    }


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
    parser.add_argument("--reps", type=int, default=7, help="rounds (7)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = resnet18(10).eval().to(args.device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    times = interleaved(configurations(model, x), args.reps)
    median_base, min_base = statistics.median(times[BASE]), min(times[BASE])
    print(
        f"ResNet-18 ({len(bias_layers(model))} bias layers), batch {args.batch}, {args.size}x{args.size},"
        f" {args.device}, {args.threads} CPU threads; medians of {args.reps} rounds"
    )
    print(f"{'configuration':26s} {'median ms':>10s} {'x forward':>10s} {'min ms':>9s} {'x forward':>10s}")
    for name, values in times.items():
        median, low = statistics.median(values), min(values)
        print(
            f"{name:26s} {1000 * median:10.1f} {median / median_base:10.2f}"
            f" {1000 * low:9.1f} {low / min_base:10.2f}"
        )


if __name__ == "__main__":
    main()
