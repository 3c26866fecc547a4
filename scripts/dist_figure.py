"""The figure of docs/guides/distributed.md: the recorded gradient norm of a layer under FSDP2 against the
norm of the gradient the optimizer applies, for the tb_plugin_insight found on the path (run once with an
older release on PYTHONPATH for the "before" line).

    python scripts/dist_figure.py run ddp|fsdp OUT.json   # 2 gloo ranks on the CPU, 8 steps
    python scripts/dist_figure.py plot BEFORE.json AFTER.json OUT.png TITLE

(The release before this change recorded rank 0's own gradient under DDP, and stopped recording gradients
under FSDP2 at the first step: DTensor gradients.)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

STEPS = 8


def _rank(rank: int, wrap: str, out: str, port: int) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.distributed.fsdp import fully_shard

    from tb_plugin_insight import InsightWriter, read

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))  # the first layer: 144 elements
    trained: nn.Module = model
    if wrap == "fsdp":
        for layer in (model[0], model[2]):
            fully_shard(layer)
        fully_shard(model)
    else:
        trained = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(10 + rank)
    logdir = tempfile.mkdtemp()
    true = []
    with InsightWriter(logdir) as writer:
        writer.watch(trained, every=1)
        for _ in range(STEPS):
            x = torch.randn(4, 8, generator=gen) * (1 + rank)
            loss = trained(x).square().mean()
            loss.backward()
            grads = [p.grad for p in model[0].parameters()]  # what the optimizer applies
            full = [g.full_tensor() if hasattr(g, "full_tensor") else g for g in grads]
            true.append(float(torch.cat([g.flatten() for g in full]).norm()))
            opt.step()
            opt.zero_grad()
    if rank == 0:
        reader = read(logdir)
        grads = reader.gradients(reader.runs[0])
        first = grads[grads["layer"] == "0"]
        with open(out, "w") as f:  # noqa: PTH123 - a local script output, not a logdir
            json.dump({"recorded": [float(v) for v in first["gradNorm"]], "true": true}, f)
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    if sys.argv[1] == "run":
        import socket

        import torch.multiprocessing as mp

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        mp.spawn(_rank, args=(sys.argv[2], sys.argv[3], port), nprocs=2)
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(sys.argv[2]) as f:  # noqa: PTH123
        before = json.load(f)
    with open(sys.argv[3]) as f:  # noqa: PTH123
        after = json.load(f)
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=110)
    steps = range(len(after["true"]))
    ax.plot(steps, after["true"], "k-", lw=3, alpha=0.35, label="gradient the optimizer applies")
    ax.plot(
        steps, before["recorded"], "o--", color="#e8710a", label="recorded before (rank 0's local gradient)"
    )
    ax.plot(steps, after["recorded"], "s:", color="#425066", label="recorded now (whole parameter, reduced)")
    ax.set_xlabel("step")
    ax.set_ylabel("gradient norm of layer 0 (16×8 + 16)")
    ax.set_title(sys.argv[5])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[4])


if __name__ == "__main__":
    main()
