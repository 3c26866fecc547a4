"""Peak extra memory of watch() at its defaults: the same training with and without Insight, against the
target of 2 % of the parameters' memory plus 64 MB.

Run: `python -m bench.bench_memory [--width 4096] [--depth 3] [--steps 12] [--device cpu|cuda]`.
The model is `depth` Linear(width, width) layers (3 x 4096: 201 MB of float32 parameters), trained with
plain SGD (no optimizer state) on one random batch, so parameters and gradients are most of the memory
and what Insight adds shows clearly. With the defaults (every=10) steps 0 and 10 are recorded:
activation statistics, histograms, unit fractions, gradients and the update ratio (compared at the next
forward).

Every run is a subprocess of its own, so one's peak cannot hide in another's: on the CPU the peak is the
process's peak resident set (getrusage ru_maxrss: imports, model, training and the writer's threads); on
CUDA `torch.cuda.max_memory_allocated`. Both import Insight, so the difference is what watch() and its
writer add. The base logs the loss with a SummaryWriter. Peak RSS of the same run varies by 10-30 MB
(when the writer thread's work overlaps the backward, how the allocator reuses freed blocks), so each
configuration runs `--repeat` times, interleaved: the table shows the lowest peak of each, and the
verdict uses the highest extra (the worst run against the base's best).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

import tb_plugin_insight
from bench.models import linear_stack
from tb_plugin_insight import InsightWriter

BASE = "no logging (SummaryWriter + add_scalar)"
INSIGHT = "Insight watch() defaults"
NO_RATIO = "Insight watch(update_ratio=False)"
CONFIGS = {"base": BASE, "insight": INSIGHT, "no-ratio": NO_RATIO}
MB = 10**6
TARGET_FRACTION, TARGET_EXTRA = 0.02, 64 * MB


@dataclasses.dataclass
class Peak:
    config: str
    peak_bytes: int
    param_bytes: int
    device: str
    package: str  # the tb_plugin_insight that ran (a checkout of another branch, when comparing)


def peak_bytes(device: torch.device) -> int:
    """The process's peak memory so far: max_memory_allocated on CUDA, else peak RSS (Linux: KiB)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def train(config: str, device: torch.device, width: int, depth: int, steps: int, batch: int) -> Peak:
    """Train the Linear stack for `steps` steps under `config`; the peak memory of this process."""
    torch.manual_seed(0)
    model = linear_stack(width, depth).to(device)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    x = torch.randn(batch, width, device=device)
    y = torch.randn(batch, width, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        writer = SummaryWriter(tmp) if config == "base" else InsightWriter(tmp)
        if isinstance(writer, InsightWriter):
            writer.watch(model, update_ratio=config != "no-ratio")
        for step in range(steps):
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            writer.add_scalar("loss", loss.item(), step)
        writer.close()
    return Peak(config, peak_bytes(device), param_bytes, str(device), tb_plugin_insight.__file__)


def measure(config: str, args: argparse.Namespace) -> Peak:
    """Run one configuration in a fresh Python process (same interpreter, same sys.path)."""
    command = [sys.executable, "-m", "bench.bench_memory", "--child", config]
    for name in ("width", "depth", "steps", "batch", "device", "threads"):
        command += [f"--{name}", str(getattr(args, name))]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{config} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return Peak(**json.loads(lines[-1][len("RESULT ") :]))


def table(peaks: list[Peak]) -> str:
    """One markdown table: each configuration's peak, its extra over the base, and the target."""
    runs: dict[str, list[Peak]] = {}
    for p in peaks:
        runs.setdefault(p.config, []).append(p)
    base = min(runs["base"], key=lambda p: p.peak_bytes)
    target = TARGET_FRACTION * base.param_bytes + TARGET_EXTRA
    kind = "peak RSS" if base.device == "cpu" else "max_memory_allocated"
    lines = [
        f"| configuration ({base.device}, {base.param_bytes / MB:.0f} MB of parameters,"
        f" {len(runs['base'])} runs each) | lowest {kind} | extra over the base: lowest, highest | target |",
        "|---|---|---|---|",
    ]
    for config, mine in runs.items():
        low, high = (f(p.peak_bytes for p in mine) - base.peak_bytes for f in (min, max))
        verdict = f"<= {target / MB:.0f} MB: {'met' if high <= target else 'MISSED'}"
        shown = f"{low / MB:+.0f} MB, {high / MB:+.0f} MB ({high / base.param_bytes:+.1%} of parameters)"
        if config == "base":
            shown, verdict = "", ""
        lines.append(f"| {CONFIGS[config]} | {(base.peak_bytes + low) / MB:.0f} MB | {shown} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12, help="12 records steps 0 and 10 (every=10)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each configuration, interleaved")
    parser.add_argument("--no-ratio", action="store_true", help="also run watch(update_ratio=False)")
    parser.add_argument("--child", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        peak = train(args.child, torch.device(args.device), args.width, args.depth, args.steps, args.batch)
        print("RESULT " + json.dumps(dataclasses.asdict(peak)), flush=True)
        return
    configs = ["base", "insight"] + (["no-ratio"] if args.no_ratio else [])
    peaks = [measure(config, args) for _ in range(args.repeat) for config in configs]
    print(f"tb_plugin_insight from {peaks[0].package}; torch {torch.__version__}; {args.steps} steps")
    print(table(peaks))


if __name__ == "__main__":
    main()
