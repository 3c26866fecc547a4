"""One short check of Insight on a CUDA machine (under 5 minutes), ending with one markdown table.

Run: `python -m bench.gpu_check [--out FILE]`; without a CUDA device it prints "no CUDA device: gpu_check
skipped" and exits 0. `--dry-run-cpu` runs the same code on the CPU at tiny sizes (under a minute): a
smoke test of the script for machines without a GPU; its figures mean nothing.

Checked, on a ResNet-50 (bench/models.py; batch 64, 224 x 224, momentum SGD) and on the GPT-style LM
(GPT-2 small's sizes: 12 layers, n_embd 768, 12 heads, sequence 1024, batch 8, vocabulary 50257,
AdamW), both under bf16 autocast, Insight at its defaults (the ResNet with a 16-image probe and gradient
saliency, as bench_overhead; the LM as `watch(model)`) against no logging (SummaryWriter + add_scalar):

* overhead: the two trained side by side, one step each in turn (the order alternating), after warm-up;
  each step timed between torch.cuda.synchronize() calls and ending with the writer's flush(), so the
  writer thread's work is charged to its own step (conservative: in a real run it overlaps the GPU);
* host-device synchronisations Insight adds over two steps (a recorded step's gradient record is
  finished at the next forward, after the optimizer step): a statistics step and the next, a map step
  (probe pass: CAMs, saliency, feature maps) and the next, two unrecorded steps; against two steps of
  the base. Counted: synchronising calls on the training thread (torch.cuda.set_sync_debug_mode("warn"),
  one warning each; the base's loss.item() is one), device-to-host copies and host waits
  (cudaStreamSynchronize / cudaDeviceSynchronize / cudaEventSynchronize, any thread) from the profiler.
  Target: no synchronisation and one non-blocking copy into pinned memory per record, i.e. at most two
  (the step's activation records, then its gradient record);
* bit-identical weights (and RNG state) with everything recorded (every step: statistics, gradients,
  histograms; every other step: every CAM and saliency method and feature maps of a probe) against
  none, on a small CNN with dropout (float32, cuDNN deterministic) and a small GPT with dropout (bf16
  autocast, math attention). Each is trained twice without Insight first: if those two differ the
  setup itself is not deterministic and the row gives no verdict;
* peak memory: torch.cuda.max_memory_allocated over 12 steps (steps 0, with the maps, and 10 recorded),
  each configuration alone, against the target of 2 % of the parameters' memory plus 64 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts: deterministic cuBLAS

import torch  # noqa: E402
import torch.nn.attention  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from bench.models import GPT, ResNet50  # noqa: E402
from tb_plugin_insight import InsightWriter, cam, saliency  # noqa: E402

SKIPPED = "no CUDA device: gpu_check skipped"
MB = 10**6
OVERHEAD_TARGET = 1.03
MEMORY_FRACTION, MEMORY_EXTRA = 0.02, 64 * MB


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What differs between the real check and the CPU dry run."""

    resnet_batch: int
    image: int
    resnet_base: int  # ResNet50's width scale: 64 is the real ResNet-50
    resnet_blocks: tuple[int, ...]
    classes: int
    probe: int
    gpt_batch: int
    seq: int
    n_embd: int
    n_head: int
    n_layer: int
    vocab: int
    warm_up: int  # untimed steps of each before the paired run (a multiple of 10 keeps the schedule)
    steps: int  # paired steps of each
    memory_steps: int  # steps of each memory run (12: the defaults record steps 0, with the maps, and 10)
    identical_steps: int  # steps of each bit-identical run (probe passes at the even ones)
    count_map_step: bool  # also count a map step (up to 100 more steps of Insight's run)


REAL = Sizes(64, 224, 64, (3, 4, 6, 3), 1000, 16, 8, 1024, 768, 12, 12, 50257, 10, 200, 12, 6, True)
DRY = Sizes(2, 32, 8, (1, 1, 1, 1), 10, 2, 2, 16, 32, 4, 2, 128, 1, 9, 2, 2, False)


@dataclasses.dataclass
class Workload:
    """A model with its optimizer and one fixed batch; the loss under autocast (None: full precision)."""

    name: str
    model: nn.Module
    opt: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    autocast: Optional[torch.dtype]
    probe: Optional[torch.Tensor] = None

    @property
    def param_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())


def resnet_workload(
    device: torch.device,
    batch: int,
    image: int,
    base: int,
    blocks: Sequence[int],
    classes: int,
    probe: int,
    *,
    dropout: float = 0.0,
    autocast: Optional[torch.dtype] = torch.bfloat16,
) -> Workload:
    torch.manual_seed(0)
    model: nn.Module = ResNet50(classes, base, tuple(blocks))
    if dropout:
        model = nn.Sequential(model, nn.Dropout(dropout))
    model = model.to(device)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, image, image, generator=gen).to(device)
    y = torch.randint(0, classes, (batch,), generator=gen).to(device)
    images = torch.randn(probe, 3, image, image, generator=gen).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    name = f"ResNet-50{'' if base == 64 else f' (width {base})'}, batch {batch}, {image}x{image}"
    return Workload(name, model, opt, x, y, functional.cross_entropy, autocast, images)


def gpt_workload(
    device: torch.device,
    batch: int,
    seq: int,
    n_embd: int,
    n_head: int,
    n_layer: int,
    vocab: int,
    *,
    dropout: float = 0.0,
    autocast: Optional[torch.dtype] = torch.bfloat16,
) -> Workload:
    torch.manual_seed(0)
    model = GPT(vocab, seq, n_embd, n_head, n_layer, dropout).to(device)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, vocab, (batch, seq), generator=gen).to(device)
    y = torch.randint(0, vocab, (batch, seq), generator=gen).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(logits.flatten(0, 1), targets.flatten())  # float32 by autocast

    name = f"GPT {n_layer} layers, n_embd {n_embd}, seq {seq}, batch {batch}"
    return Workload(name, model, opt, x, y, loss_fn, autocast)


def defaults(work: Workload) -> dict[str, Any]:
    """watch() keywords of the overhead and memory checks: the defaults (with a probe for images)."""
    return {} if work.probe is None else {"probe": work.probe, "saliency_methods": "gradient"}


def everything(work: Workload) -> dict[str, Any]:
    """watch() keywords recording everything there is, often (the bit-identical check)."""
    kwargs: dict[str, Any] = {"every": 1, "histogram_every": 1}
    if work.probe is not None:
        kwargs.update(
            probe=work.probe,
            cam_every=2,
            cam_methods=cam.METHODS,
            saliency_every=2,
            saliency_methods=tuple(saliency.METHODS),
            maps_every=2,
        )
    return kwargs


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Run:
    """A workload trained under one writer: Insight watching it with `watch` keywords, or (None) a plain
    SummaryWriter. `steps` counts training steps from the watch, so it is Insight's step too."""

    def __init__(
        self, work: Workload, logdir: Path, watch: Optional[Callable[[Workload], dict[str, Any]]]
    ) -> None:
        self.work = work
        self.device = work.x.device
        for _ in range(2):  # cuDNN/cuBLAS set-up before any writer: not timed, not counted
            self._forward_backward()
        work.opt.zero_grad(set_to_none=True)
        self.writer = SummaryWriter(str(logdir)) if watch is None else InsightWriter(str(logdir))
        if isinstance(self.writer, InsightWriter) and watch is not None:
            self.writer.watch(work.model, **watch(work))
        self.steps = 0

    def _forward_backward(self) -> torch.Tensor:
        work = self.work
        with torch.autocast(
            self.device.type, dtype=work.autocast or torch.bfloat16, enabled=bool(work.autocast)
        ):
            loss = work.loss_fn(work.model(work.x), work.y)
        loss.backward()
        return loss

    def step(self) -> None:
        """One training step as users write it, logging the loss (one host sync: loss.item())."""
        self.work.opt.zero_grad(set_to_none=True)
        loss = self._forward_backward()
        self.work.opt.step()
        self.writer.add_scalar("loss", loss.item(), self.steps)
        self.steps += 1

    def timed_step(self) -> float:
        """Seconds of one step including the writer's flush, between device synchronisations."""
        synchronize(self.device)
        start = time.perf_counter()
        self.step()
        self.writer.flush()
        synchronize(self.device)
        return time.perf_counter() - start


# --- overhead and synchronisations --------------------------------------------------------------------------


@dataclasses.dataclass
class Counts:
    """Per step: synchronising calls on the training thread, device-to-host copies, host waits."""

    syncs: int
    copies: int
    waits: int

    def minus(self, other: Counts) -> Counts:
        return Counts(self.syncs - other.syncs, self.copies - other.copies, self.waits - other.waits)

    def __str__(self) -> str:
        return f"{self.syncs} syncs, {self.copies} D2H copies, {self.waits} waits"

    def signed(self) -> str:
        return f"{self.syncs:+d} syncs, {self.copies:+d} D2H copies, {self.waits:+d} waits"


@contextlib.contextmanager
def sync_warnings(device: torch.device) -> Iterator[list[warnings.WarningMessage]]:
    """Warnings of every synchronising CUDA call made inside (none recorded off CUDA)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            yield caught
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")


WAITS = {"cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize"}


def count_steps(run: Run, steps: int = 2) -> Counts:
    """`steps` steps of `run` (each with the writer's flush), their synchronisations counted. Two: a
    recorded step's gradient record is finished at the next forward, after the optimizer step."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if run.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    synchronize(run.device)
    with torch.profiler.profile(activities=activities) as prof:
        with sync_warnings(run.device) as caught:
            for _ in range(steps):
                run.step()
                run.writer.flush()
        synchronize(run.device)  # outside the warnings; the same for every step counted
    names = [event.name for event in prof.events()]
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    return Counts(syncs, sum("DtoH" in n for n in names), sum(n in WAITS for n in names))


def step_kind(step: int) -> str:
    """Insight's defaults: statistics every 10 steps, maps (and histograms) every 100."""
    return "map" if step % 100 == 0 else "statistics" if step % 10 == 0 else "unrecorded"


def pair_kind(step: int) -> Optional[str]:
    """The kind of the two steps starting at `step` that `count_steps` counts: a recorded step and the
    next, or two unrecorded steps away from any record (None: neither)."""
    if step % 10 == 0:
        return step_kind(step)
    return "unrecorded" if step % 10 == 2 else None


@dataclasses.dataclass
class Overhead:
    work: str
    ours: float  # mean seconds per step
    base: float
    ratio: float
    recorded_ratio: float
    counts: dict[str, Counts]  # "base" and each kind of Insight step


def overhead(make: Callable[[], Workload], sizes: Sizes, log: Callable[[str], None]) -> Overhead:
    """Insight at its defaults against no logging, one step each in turn, then the counted steps."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Run(make(), Path(tmp) / "base", None)
        ours = Run(make(), Path(tmp) / "insight", defaults)
        for _ in range(sizes.warm_up):  # once-per-run work: model table, histogram ranges, positions
            base.step()
            ours.step()
        times: dict[str, list[float]] = {"base": [], "ours": []}
        recorded: dict[str, list[float]] = {"base": [], "ours": []}
        for i in range(sizes.steps):
            kind = step_kind(ours.steps)
            for name, run in (
                (("ours", ours), ("base", base)) if i % 2 == 0 else (("base", base), ("ours", ours))
            ):
                seconds = run.timed_step()
                times[name].append(seconds)
                if kind != "unrecorded":
                    recorded[name].append(seconds)
        ratio = sum(times["ours"]) / sum(times["base"])
        log(f"  {ours.work.name}: {ratio:.3f}x over {sizes.steps} steps each")
        counts = {"base": count_steps(base)}
        kinds = {"statistics", "unrecorded"} | ({"map"} if sizes.count_map_step else set())
        while not kinds <= counts.keys():  # to the next map step at most
            kind = pair_kind(ours.steps)
            if kind in kinds and kind not in counts:
                counts[kind] = count_steps(ours)
            else:
                ours.step()
        for run in (base, ours):
            run.writer.close()
        name = ours.work.name
    n = len(times["base"])
    return Overhead(
        name,
        sum(times["ours"]) / n,
        sum(times["base"]) / n,
        sum(times["ours"]) / sum(times["base"]),
        sum(recorded["ours"]) / max(sum(recorded["base"]), 1e-12),
        counts,
    )


# --- bit-identical training ---------------------------------------------------------------------------------


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """cuDNN's deterministic kernels and the math attention (no atomics in their backward)."""
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def final_state(make: Callable[[], Workload], watch: bool, steps: int) -> tuple[str, dict[str, torch.Tensor]]:
    """(workload name, its parameters, buffers and RNG states after `steps` steps), with everything
    recorded or nothing."""
    work = make()
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(work, Path(tmp), everything if watch else None)
        for _ in range(steps):
            run.step()
        run.writer.close()
    state = {k: v.detach().clone() for k, v in work.model.state_dict().items()}
    state["rng (cpu)"] = torch.get_rng_state()
    if run.device.type == "cuda":
        state["rng (cuda)"] = torch.cuda.get_rng_state(run.device)
    return work.name, state


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@dataclasses.dataclass
class Identical:
    work: str
    deterministic: bool  # two runs without Insight agree
    identical: bool  # the run with Insight agrees with them


def identical(make: Callable[[], Workload], steps: int) -> Identical:
    with deterministic():
        name, plain = final_state(make, False, steps)
        _, again = final_state(make, False, steps)
        _, watched = final_state(make, True, steps)
    return Identical(name, same(plain, again), same(plain, watched))


# --- peak memory --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Memory:
    work: str
    param_bytes: int
    ours: Optional[int]  # peak bytes allocated above what was allocated before (None off CUDA)
    base: Optional[int]


def peak(
    make: Callable[[], Workload], device: torch.device, watch: bool, steps: int
) -> tuple[str, Optional[int], int]:
    """(workload name, peak CUDA memory of `steps` steps above the memory allocated before (None off
    CUDA), parameter bytes)."""
    gc.collect()
    cuda = device.type == "cuda"
    start = 0
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    work = make()
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(work, Path(tmp), defaults if watch else None)
        for _ in range(steps):
            run.step()
        run.writer.close()
    result = torch.cuda.max_memory_allocated(device) - start if cuda else None
    name, param_bytes = work.name, work.param_bytes
    del run, work
    gc.collect()
    return name, result, param_bytes


def memory(make: Callable[[], Workload], device: torch.device, steps: int) -> Memory:
    name, base, param_bytes = peak(make, device, False, steps)
    _, ours, _ = peak(make, device, True, steps)
    return Memory(name, param_bytes, ours, base)


# --- the table ----------------------------------------------------------------------------------------------


def verdict(ok: bool, dry: bool) -> str:
    return "dry run" if dry else ("met" if ok else "MISSED")


PAIRS = {
    "statistics": "a statistics step and the next",
    "unrecorded": "two unrecorded steps",
    "map": "a map step and the next",
}


def table(
    overheads: Sequence[Overhead], identicals: Sequence[Identical], memories: Sequence[Memory], dry: bool
) -> str:
    rows = [
        "| check | model | Insight | no logging | Insight vs no logging | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in overheads:
        rows.append(
            f"| overhead at the defaults (bf16 autocast) | {o.work} | {o.ours * 1e3:.1f} ms/step |"
            f" {o.base * 1e3:.1f} ms/step | {o.ratio:.3f}x (recorded steps {o.recorded_ratio:.3f}x) |"
            f" <= {OVERHEAD_TARGET}x | {verdict(o.ratio <= OVERHEAD_TARGET, dry)} |"
        )
    for o in overheads:
        base = o.counts["base"]
        for kind, want in (("statistics", Counts(0, 2, 0)), ("unrecorded", Counts(0, 0, 0)), ("map", None)):
            if kind not in o.counts:
                continue
            added = o.counts[kind].minus(base)
            target = "(information)" if want is None else f"+0 syncs, <= {want.copies:+d} D2H copies"
            ok = want is None or (added.syncs <= want.syncs and added.copies <= want.copies)
            shown = "" if want is None else verdict(ok, dry)
            if want is not None and not dry and base.copies == 0:  # loss.item() copies: CUPTI saw nothing
                shown = "no verdict (the profiler saw no device copies)"
            rows.append(
                f"| synchronisations, {PAIRS[kind]} | {o.work} | {o.counts[kind]} | {base} |"
                f" {added.signed()} | {target} | {shown} |"
            )
    for i in identicals:
        shown = "identical" if i.identical else "DIFFERENT"
        control = "deterministic" if i.deterministic else "not deterministic (no verdict)"
        rows.append(
            f"| bit-identical weights, everything recorded | {i.work} | {shown} | {control} | | identical |"
            f" {verdict(i.identical, dry) if i.deterministic else 'no verdict'} |"
        )
    for m in memories:
        target = MEMORY_FRACTION * m.param_bytes + MEMORY_EXTRA
        if m.ours is None or m.base is None:
            rows.append(
                f"| peak memory | {m.work} | n/a (no CUDA) | n/a | | <= {target / MB:.0f} MB | dry run |"
            )
            continue
        extra = m.ours - m.base
        rows.append(
            f"| peak memory (max_memory_allocated) | {m.work} | {m.ours / MB:.0f} MB | {m.base / MB:.0f} MB |"
            f" {extra / MB:+.0f} MB ({m.param_bytes / MB:.0f} MB of parameters) | <= {target / MB:.0f} MB |"
            f" {verdict(extra <= target, dry)} |"
        )
    return "\n".join(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table (markdown) to this file")
    parser.add_argument("--dry-run-cpu", action="store_true", help="tiny sizes on the CPU: a smoke test")
    args = parser.parse_args(argv)
    if not args.dry_run_cpu and not torch.cuda.is_available():
        print(SKIPPED)
        return 0
    dry = args.dry_run_cpu
    device = torch.device("cpu" if dry else "cuda")
    sizes = DRY if dry else REAL
    started = time.perf_counter()

    def log(line: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {line}", flush=True)

    s = sizes
    workloads = [
        lambda: resnet_workload(
            device, s.resnet_batch, s.image, s.resnet_base, s.resnet_blocks, s.classes, s.probe
        ),
        lambda: gpt_workload(device, s.gpt_batch, s.seq, s.n_embd, s.n_head, s.n_layer, s.vocab),
    ]
    small = [  # bit-identical check: small, dropout drawing from the global RNG after Insight's hooks
        lambda: resnet_workload(device, 4, 32, 8, (1, 1, 1, 1), 10, 2, dropout=0.2, autocast=None),
        lambda: gpt_workload(device, 2, 16, 32, 4, 2, 128, dropout=0.1),
    ]
    log("peak memory")
    memories = [memory(make, device, sizes.memory_steps) for make in workloads]
    log("overhead and synchronisations")
    overheads = [overhead(make, sizes, log) for make in workloads]
    log("bit-identical weights")
    identicals = [identical(make, sizes.identical_steps) for make in small]
    device_name = "CPU (dry run: the figures mean nothing)" if dry else torch.cuda.get_device_name(device)
    header = (
        f"gpu_check on {device_name}, torch {torch.__version__}, {time.perf_counter() - started:.0f} s;"
        f" paired {sizes.steps} steps each after {sizes.warm_up} warm-up steps"
    )
    text = header + "\n\n" + table(overheads, identicals, memories, dry)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
