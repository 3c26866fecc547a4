"""Distributed gradient statistics: one process per rank (RANK/WORLD_SIZE/MASTER_* set as torchrun does),
gloo on CPU. Runs every scenario of SCENARIOS twice, with and without Insight, and checks the weights are
bit-identical and that Insight started exactly one collective per record; rank 0 writes
`<logdir>/<scenario>` (ranks="first"). The test (tests/test_dist_grads.py) trains the same model
unsharded on the ranks' concatenated batches and compares the records.

Usage: python tests/scripts/dist_grads_train.py LOGDIR SCENARIO [SCENARIO ...]; prints "rank R done".
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

WORLD = 2
STEPS = 3  # optimizer steps
LOCAL_BATCH = 3  # samples per rank and micro-batch


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    wrap: str  # "ddp" or "fsdp"
    every: int = 1
    micro: int = 1  # micro-batches per optimizer step
    declared: int = 1  # watch's grad_accumulation
    skip_sync: bool = True  # no_sync / set_requires_gradient_sync(False) on all but the last micro-batch
    probe: bool = False
    rank0_only: bool = False  # only rank 0 makes a writer and watches (as the trainer callbacks do)
    ranks: str = "first"  # InsightWriter's ranks: "all" writes <scenario>/rank<r>


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("ddp", "ddp", probe=True),
        Scenario("fsdp", "fsdp", probe=True, ranks="all"),  # each rank records the filters it holds
        Scenario("ddp_acc", "ddp", every=2, micro=2, declared=2, ranks="all"),
        Scenario("fsdp_acc", "fsdp", every=3, micro=2, declared=2),
        Scenario("ddp_undeclared", "ddp", every=1, micro=2, declared=1),
        Scenario("ddp_rank0_only", "ddp", rank0_only=True),
    )
}


def build_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 16),
        nn.Tanh(),
        nn.Linear(16, 3),
    )


def batch(scenario: str, step: int, micro: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank `rank`'s micro-batch `micro` of optimizer step `step` (the same on every process)."""
    seed = 1000 * sorted(SCENARIOS).index(scenario) + 10 * (step * 8 + micro) + rank
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(LOCAL_BATCH, 3, 4, 4, generator=gen) * (1.0 + rank)  # ranks see different data
    return x, torch.randint(0, 3, (LOCAL_BATCH,), generator=gen)


def probe() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(7)), torch.tensor([0, 1])


def watch_kwargs(s: Scenario) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"every": s.every, "grad_accumulation": s.declared}
    if s.probe:
        kwargs.update(probe=probe(), cam_every=1, cam_layer="0", saliency_methods=["gradient"], maps_every=1)
    if s.probe and s.wrap == "fsdp":  # optimises an input through the sharded model on every rank
        kwargs.update(featurevis_every=2, featurevis_layers="0", featurevis_steps=2, featurevis_size=8)
    return kwargs


def train(model: nn.Module, s: Scenario, ranks: list[int], sync: Any, writer: Any = None) -> None:
    """STEPS optimizer steps of SGD; each micro-batch is the concatenation of `ranks`' batches, and its
    loss is divided by the micro-batches per step (DDP and FSDP2 average over the ranks)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    if writer is not None:
        writer.watch(model, **watch_kwargs(s))
    for step in range(STEPS):
        for micro in range(s.micro):
            parts = [batch(s.name, step, micro, r) for r in ranks]
            x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            last = micro == s.micro - 1
            with contextlib.nullcontext() if last or not s.skip_sync else sync(model):
                loss = nn.functional.cross_entropy(model(x), y) / s.micro
                loss.backward()
        opt.step()
        opt.zero_grad()


@contextlib.contextmanager
def fsdp_no_sync(model: Any) -> Iterator[None]:
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def wrapped(s: Scenario) -> tuple[nn.Module, Any]:
    model = build_model()
    if s.wrap == "ddp":
        ddp = nn.parallel.DistributedDataParallel(model)
        return ddp, lambda m: m.no_sync()
    from torch.distributed.fsdp import fully_shard

    for index in (0, 3, 5):
        fully_shard(model[index])
    fully_shard(model)
    return model, fsdp_no_sync


def expected_collectives(s: Scenario) -> int:
    """One per record: per optimizer-step group (of the declared accumulation) with a recorded forward."""
    if s.rank0_only:
        return 0  # the handshake finds rank 1 not watching: rank 0 records its own gradients
    forwards = range(STEPS * s.micro)
    return len({f // s.declared for f in forwards if f % s.every == 0})


def full_weights(model: nn.Module) -> list[torch.Tensor]:
    out = []
    for p in model.parameters():
        full = getattr(p, "full_tensor", None)
        out.append((full() if callable(full) else p).detach().clone())
    return out


def check_sharded_filters(rank: int) -> None:
    """Filter tiles of weights split unevenly or not along the filters (capture/filters.py): each rank
    draws its torch.chunk of the filters, labelled in the whole layer; a rank holding none, or a
    transposed convolution split along its input channels, raises ShardedFilters (the layer is skipped)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    from tb_plugin_insight.capture import filters

    mesh = init_device_mesh("cpu", (WORLD,))
    torch.manual_seed(0)
    conv, one, up = nn.Conv2d(2, 5, 3), nn.Conv2d(2, 1, 3), nn.ConvTranspose2d(4, 2, 3)
    whole = filters.filter_record(conv)
    for module in (conv, one, up):
        module.weight = nn.Parameter(distribute_tensor(module.weight.detach(), mesh, [Shard(0)]))
    record = filters.filter_record(conv)
    held = [(0, 1, 2), (3, 4)][rank]
    assert record.filters == held and record.num_filters == 5 and record.shape == (5, 2, 3, 3), record
    assert (record.codes == whole.codes[list(held)]).all() and (
        record.scales == whole.scales[list(held)]
    ).all()
    for module, ok in ((one, rank == 0), (up, False)):
        try:
            assert filters.filter_record(module).filters == (0,) and ok
        except filters.ShardedFilters:
            assert not ok


class Problems(logging.Handler):
    """Insight's warnings and errors (a recorder that stopped logs an error) on this rank."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main() -> None:
    import torch.distributed as dist

    from tb_plugin_insight import InsightWriter
    from tb_plugin_insight.capture import dist_grads

    dist_grads.HANDSHAKE_SECONDS = 2.0  # ddp_rank0_only waits this long once, then records rank 0's own
    gathers = []
    gather = dist_grads.gather
    dist_grads.gather = lambda vector: gathers.append(1) or gather(vector)  # count Insight's collectives
    logdir, names = sys.argv[1], sys.argv[2:]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    check_sharded_filters(rank)
    problems = Problems()
    logging.getLogger("tb_plugin_insight").addHandler(problems)
    for name in names:
        s = SCENARIOS[name]
        plain, sync = wrapped(s)
        train(plain, s, [rank], sync)
        watched, sync = wrapped(s)
        if s.rank0_only and rank != 0:
            train(watched, s, [rank], sync)
        else:
            with InsightWriter(os.path.join(logdir, name), ranks=s.ranks) as writer:
                train(watched, s, [rank], sync, writer)
        same = all(torch.equal(a, b) for a, b in zip(full_weights(plain), full_weights(watched)))
        assert same, f"{name}: training with Insight differs from training without it"
        count = len(gathers) if not (s.rank0_only and rank != 0) else expected_collectives(s)
        assert count == expected_collectives(s), (
            f"{name}: {count} collectives, {expected_collectives(s)} records"
        )
        gathers.clear()
        if s.wrap == "fsdp":  # every recorder runs on every rank under FSDP2: none fails, none warns
            assert not problems.messages, f"{name} rank {rank}: {problems.messages}"
        problems.messages.clear()
        print(f"rank {rank} {name} ok", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # torch 2.13's gloo may abort in the interpreter's teardown (see ddp_train.py)
