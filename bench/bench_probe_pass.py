"""Map-step CPU time with the probe passes shared (capture/probe_pass.py) or run separately.

Run: `python -m bench.bench_probe_pass [--samples 6]`. The model, batch and probe of
`bench.bench_step_costs` (ResNet-18, batch 16, 112x112, 16-image probe, watch() defaults + "gradient"
saliency); every timed step is a map step (statistics + feature maps + Grad-CAM + saliency). One writer
alternates the private switch `_share_probe_passes` between steps (the order flips each round), so both
see the same machine load. Times are process CPU (all threads) including `writer.flush()`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.models import resnet18  # noqa: E402
from tb_plugin_insight import InsightWriter  # noqa: E402


def run(samples: int = 6) -> dict[str, float]:
    """Median and min CPU seconds of a map step, shared and separate, and the saving."""
    torch.manual_seed(0)
    model = resnet18(10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, 112, 112, generator=gen)
    y = torch.randint(0, 10, (16,), generator=gen)
    probe = torch.randn(16, 3, 112, 112, generator=gen)
    loss_fn = nn.CrossEntropyLoss()
    costs: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        writer = InsightWriter(tmp)
        writer.watch(model, probe=probe, saliency_methods="gradient")
        for r in range(samples + 1):
            for share in (True, False) if r % 2 else (False, True):
                writer._share_probe_passes = share
                writer.step = 100 * (2 * r + int(share) + 1)
                start = time.process_time()
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                writer.flush()
                if r:  # the first round warms up (and stores the probe images)
                    costs[share].append(time.process_time() - start)
        writer.close()
    result = {}
    for share, name in ((False, "separate"), (True, "shared")):
        result[f"map step, {name} passes (median)"] = statistics.median(costs[share])
        result[f"map step, {name} passes (min)"] = min(costs[share])
    result["saved per map step (median)"] = (
        result["map step, separate passes (median)"] - result["map step, shared passes (median)"]
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name, value in run(args.samples).items():
        print(f"{name:38s} {value:8.3f} s")


if __name__ == "__main__":
    main()
