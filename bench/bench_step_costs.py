"""What each kind of Insight step costs, in process CPU time (robust on a busy shared machine).

Run: `python -m bench.bench_step_costs [--samples 6]`. One ResNet-18 (batch 16, 112x112) trains with
watch() at its defaults + a 16-image probe + saliency; `writer.step` is set before each step so that
the step is, in turn, unrecorded, a statistics step (activation statistics + gradient flow + unit
fractions) or a map step (statistics + histograms + feature maps + Grad-CAM + saliency, every 100).
Kinds are interleaved; each step's CPU time (all threads, with OMP_WAIT_POLICY=PASSIVE so idle threads
do not spin) includes `writer.flush()`, so work done on the writer thread is counted. The amortised
overhead at the defaults is then (9 x unrecorded + statistics step) / 10 for every=10, plus
(map - statistics step) / 100 for the maps every 100. A recorded step's cost includes the work its record
leaves to the next step (see `run`).
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

KINDS = {"unrecorded": 2, "statistics": 10, "maps": 100}  # the first step of each kind's pair


def run(samples: int = 6, quiet: bool = False) -> dict[str, float]:
    """Median CPU seconds of each kind of step, and the amortised overhead ratio at the defaults.

    A recorded step's gradient record is finished at the next forward (the update ratio needs the
    weights after `optimizer.step()`), so each kind is timed as a pair: the step and the one after it.
    The unrecorded pair follows an unrecorded step, so it carries no other step's work.
    """
    net = FixedBatchResNet(16, 112)
    probe = torch.randn(16, 3, 112, 112, generator=net.gen)
    pairs: dict[str, list[float]] = {k: [] for k in KINDS}
    with tempfile.TemporaryDirectory() as tmp:
        writer = InsightWriter(tmp)
        writer.watch(net.model, probe=probe, saliency_methods="gradient")

        def timed_step(step: int) -> float:
            writer.step = step
            start = time.process_time()
            loss = net.train_step()
            writer.add_scalar("loss", loss.item(), step)
            writer.flush()
            return time.process_time() - start

        for r in range(samples + 1):
            timed_step(1000 * r + 1)  # unrecorded: the maps pair's record is finished before the next pair
            for kind, step in KINDS.items():
                seconds = timed_step(1000 * r + step) + timed_step(1000 * r + step + 1)
                if r:  # the first round warms up (and stores the probe images)
                    pairs[kind].append(seconds)
            if r and not quiet:
                print(
                    f"  round {r}: " + ", ".join(f"{k} pair {v[-1]:.3f} s" for k, v in pairs.items()),
                    flush=True,
                )
        writer.close()
    med = {k: statistics.median(v) for k, v in pairs.items()}
    plain = med["unrecorded"] / 2
    result = {"unrecorded": plain, "statistics": med["statistics"] - plain, "maps": med["maps"] - plain}
    result["statistics overhead (every 10)"] = (result["statistics"] - plain) / (10 * plain)
    result["maps overhead (every 100)"] = (result["maps"] - result["statistics"]) / (100 * plain)
    result["amortised ratio at defaults"] = (
        1 + result["statistics overhead (every 10)"] + result["maps overhead (every 100)"]
    )
    return result


def main() -> None:
    args = cpu_bench_args(__doc__)
    result = run(args.samples)
    for name, value in result.items():
        print(f"{name:34s} {value:8.4f}")


if __name__ == "__main__":
    main()
