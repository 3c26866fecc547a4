"""What each kind of Insight step costs, in process CPU time (robust on a busy shared machine).

Run: `python -m bench.bench_step_costs [--samples 6]`. One ResNet-18 (batch 16, 112x112) trains with
watch() at its defaults + a 16-image probe + saliency; `writer.step` is set before each step so that
the step is, in turn, unrecorded, a statistics step (activation statistics + gradient flow + unit
fractions) or a map step (statistics + histograms + feature maps + Grad-CAM + saliency, every 100).
Kinds are interleaved; each step's CPU time (all threads, with OMP_WAIT_POLICY=PASSIVE so idle threads
do not spin) includes `writer.flush()`, so work done on the writer thread is counted. The amortised
overhead at the defaults is then (9 x unrecorded + statistics step) / 10 for every=10, plus
(map - statistics step) / 100 for the maps every 100.
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

KINDS = {"unrecorded": 1, "statistics": 10, "maps": 100}  # a step number of that kind


def run(samples: int = 6, quiet: bool = False) -> dict[str, float]:
    """Median CPU seconds per step of each kind, and the amortised overhead ratio at the defaults."""
    net = FixedBatchResNet(16, 112)
    probe = torch.randn(16, 3, 112, 112, generator=net.gen)
    costs: dict[str, list[float]] = {k: [] for k in KINDS}
    with tempfile.TemporaryDirectory() as tmp:
        writer = InsightWriter(tmp)
        writer.watch(net.model, probe=probe, saliency_methods="gradient")
        for r in range(samples + 1):
            for kind, step in KINDS.items():
                writer.step = step + 1000 * r
                start = time.process_time()
                loss = net.train_step()
                writer.add_scalar("loss", loss.item(), step)
                writer.flush()
                if r:  # the first round warms up (and stores the probe images)
                    costs[kind].append(time.process_time() - start)
            if r and not quiet:
                print(
                    f"  round {r}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in costs.items()), flush=True
                )
        writer.close()
    med = {k: statistics.median(v) for k, v in costs.items()}
    plain = med["unrecorded"]
    med["statistics overhead (every 10)"] = (med["statistics"] - plain) / (10 * plain)
    med["maps overhead (every 100)"] = (med["maps"] - med["statistics"]) / (100 * plain)
    med["amortised ratio at defaults"] = (
        1 + med["statistics overhead (every 10)"] + med["maps overhead (every 100)"]
    )
    return med


def main() -> None:
    args = cpu_bench_args(__doc__)
    result = run(args.samples)
    for name, value in result.items():
        print(f"{name:34s} {value:8.4f}")


if __name__ == "__main__":
    main()
