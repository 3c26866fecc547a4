"""A small DDP training script with InsightWriter (probe + CAMs + saliency + gradients), for torchrun.

Usage: torchrun --nproc_per_node=2 tests/scripts/ddp_train.py LOGDIR RANKS STEPS
Each rank trains on its own random batches; prints "rank R done" at the end.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch import nn

from tb_plugin_insight import InsightWriter


def main() -> None:
    logdir, ranks, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)  # same initial weights on every rank
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),  # buffers: DDP broadcasts them at each of its forwards
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 3),
    )
    ddp = nn.parallel.DistributedDataParallel(model)
    ddp_forwards = []
    ddp_forward = ddp.forward
    ddp.forward = lambda *a, **k: ddp_forwards.append(1) or ddp_forward(*a, **k)  # count DDP's forwards
    gen = torch.Generator().manual_seed(100 + rank)
    probe = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
    with InsightWriter(logdir, ranks=ranks) as writer:
        handle = writer.watch(
            ddp, every=1, probe=(probe, torch.tensor([0, 1, 2])), cam_every=2, saliency_methods=["gradient"]
        )
        print(f"rank {rank} watching {handle.layers} active={handle.active}", flush=True)
        for step in range(steps):
            x = torch.randn(4, 3, 8, 8, generator=gen)
            y = torch.randint(0, 3, (4,), generator=gen)
            loss = nn.functional.cross_entropy(ddp(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            writer.add_scalar("loss", loss.item(), step)
    assert len(ddp_forwards) == steps, f"{len(ddp_forwards)} DDP forwards for {steps} steps"  # no probe pass
    weights = model[0].weight.detach().clone()
    gathered = [torch.empty_like(weights) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, weights)
    assert all(torch.equal(g, weights) for g in gathered), "ranks diverged"
    dist.destroy_process_group()
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main()
    # Everything is checked and Insight's writer thread was joined by close(); skip the interpreter's
    # teardown, where torch 2.13's gloo sometimes aborts ("terminate called without an active
    # exception", SIGABRT) even after destroy_process_group (pytorch/pytorch#190489, #179291).
    sys.stdout.flush()
    os._exit(0)
