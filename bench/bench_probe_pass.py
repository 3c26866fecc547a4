"""Map-step CPU time with the probe passes shared (capture/probe_pass.py) or run separately.

Run: `python -m bench.bench_probe_pass [--samples 6]`. The model, batch and probe of
`bench.bench_step_costs` (ResNet-18, batch 16, 112x112, 16-image probe, watch() defaults + "gradient"
saliency); every timed step is a map step (statistics + feature maps + Grad-CAM + saliency). One writer
alternates the private switch `_share_probe_passes` between steps (the order flips each round), so both
see the same machine load. Times are process CPU (all threads) including `writer.flush()`.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from bench.side_by_side import FixedBatchResNet, cpu_bench_args  # noqa: E402
from tb_plugin_insight import InsightWriter  # noqa: E402


def run(samples: int = 6) -> dict[str, float]:
    """Median and min CPU seconds of a map step, shared and separate, and the saving."""
    net = FixedBatchResNet(16, 112)
    probe = torch.randn(16, 3, 112, 112, generator=net.gen)
    costs: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        writer = InsightWriter(tmp)
        writer.watch(net.model, probe=probe, saliency_methods="gradient")
        for r in range(samples + 1):
            for share in (True, False) if r % 2 else (False, True):
                writer._share_probe_passes = share
                writer.step = 100 * (2 * r + int(share) + 1)
                start = time.process_time()
                net.train_step()
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
    args = cpu_bench_args(__doc__)
    for name, value in run(args.samples).items():
        print(f"{name:38s} {value:8.3f} s")


if __name__ == "__main__":
    main()
