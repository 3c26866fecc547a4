"""Cost of each saliency method per image, relative to one training forward+backward, side by side.

Run: `python -m bench.bench_saliency [--batch 16 --size 112 --rounds 3 --threads 2]`. The reference is one
training-mode forward + cross-entropy + gradient with respect to the parameters (what a training step
costs before the optimizer). Configurations are interleaved round by round (A B C ... A B C ...) so drift
in machine load hits all of them alike. Times are medians over rounds; each ratio is taken against the
reference of the same round, then the median over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from bench.models import resnet18
from tb_plugin_insight.saliency import compute_saliency


def reference_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    params = [p for p in model.parameters() if p.requires_grad]

    def run() -> None:
        model.train()
        loss = nn.functional.cross_entropy(model(x), y)
        torch.autograd.grad(loss, params)

    return run


def saliency(model: nn.Module, x: torch.Tensor, method: str, **options: object) -> Callable[[], None]:
    def run() -> None:
        model.train()  # as found in the middle of training; compute_saliency switches to eval and back
        compute_saliency(model, x, method, **options)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = resnet18(num_classes=10)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))

    configs: dict[str, Callable[[], None]] = {
        "forward+backward (reference)": reference_step(model, x, y),
        "gradient": saliency(model, x, "gradient"),
        "gradient_x_input": saliency(model, x, "gradient_x_input"),
        "guided_backprop": saliency(model, x, "guided_backprop"),
        "guided_gradcam (layer4)": saliency(model, x, "guided_gradcam", target_layer="layer4"),
        "smoothgrad (16 samples)": saliency(model, x, "smoothgrad"),
        "integrated_gradients (32 steps)": saliency(model, x, "integrated_gradients"),
        "integrated_gradients (32 steps, batch_size=64)": saliency(
            model, x, "integrated_gradients", batch_size=64
        ),
    }
    configs["gradient"]()  # warm up allocators and kernels
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, run in configs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    print(
        f"ResNet-18, batch {args.batch}, {args.size}x{args.size}, CPU, {torch.get_num_threads()} threads,"
        f" {args.rounds} interleaved rounds"
    )
    reference = times["forward+backward (reference)"]
    print(f"{'configuration':48s} {'ms / image':>11s} {'x fwd+bwd':>10s}")
    for name, values in times.items():
        # The ratio is taken within each round (same machine load), then the median over rounds.
        ratio = statistics.median(v / r for v, r in zip(values, reference))
        per_image = statistics.median(values) / args.batch
        print(f"{name:48s} {per_image * 1e3:11.1f} {ratio:10.2f}")


if __name__ == "__main__":
    main()
