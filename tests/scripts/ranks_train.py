"""DDP training where one rank is fed 10x larger inputs, each rank writing its own run (ranks="all").

Usage: torchrun --nproc_per_node=N tests/scripts/ranks_train.py LOGDIR STEPS ODD_RANK DEPART
Rank ODD_RANK's inputs are multiplied by 10 from step DEPART on; prints "rank R done" at the end.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch import nn

from tb_plugin_insight import InsightWriter


def main() -> None:
    logdir, steps, odd, depart = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)  # same initial weights on every rank
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    ddp = nn.parallel.DistributedDataParallel(model)
    gen = torch.Generator().manual_seed(100 + rank)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    with InsightWriter(logdir, ranks="all") as writer:
        writer.watch(ddp, every=1)
        for step in range(steps):
            x = torch.randn(32, 8, generator=gen)
            if rank == odd and step >= depart:
                x = x * 10
            loss = ddp(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    dist.destroy_process_group()
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(
        0
    )  # skip the interpreter's teardown, where torch 2.13's gloo sometimes aborts (see ddp_train.py)
