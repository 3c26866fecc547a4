"""The figure of docs/guides/distributed.md: the recorded gradient norm of a layer under FSDP2 against the
norm of the gradient the optimizer applies, for the tb_plugin_insight found on the path (run once with an
older release on PYTHONPATH for the "before" line).

    python scripts/dist_figure.py run ddp|fsdp OUT.json   # 2 gloo ranks on the CPU, 8 steps
    python scripts/dist_figure.py plot BEFORE.json AFTER.json OUT.png TITLE
    python scripts/dist_figure.py noise OUT.png          # the noise scale of a noisy regression, DDP

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


def _noise_rank(rank: int, out: str, port: int) -> None:
    """A linear regression with label noise, 2 DDP ranks of 8 samples: as the fit improves |G|² shrinks
    while the noise stays, so the noise scale grows."""
    import torch
    import torch.distributed as dist
    from torch import nn

    from tb_plugin_insight import InsightWriter, read

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 1))
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.03)
    gen = torch.Generator().manual_seed(10 + rank)
    w_true = torch.randn(16, 1, generator=torch.Generator().manual_seed(1))
    logdir = tempfile.mkdtemp()
    with InsightWriter(logdir) as writer:
        writer.watch(ddp, every=1)
        for _ in range(60):
            x = torch.randn(8, 16, generator=gen)
            y = x @ w_true + 0.5 * torch.randn(8, 1, generator=gen)
            nn.functional.mse_loss(ddp(x), y).backward()
            opt.step()
            opt.zero_grad()
    if rank == 0:
        reader = read(logdir)
        noise = reader.gradient_noise(reader.runs[0])
        rows = noise[noise["layer"] == "(model)"]
        steps, trace, g_sq = list(rows["step"]), list(rows["traceSigma"]), list(rows["gradSq"])
        smoothed, t, g = [], None, None
        for tv, gv in zip(trace, g_sq):  # the tab's ratio of moving averages (weight 0.2)
            t = tv if t is None else 0.8 * t + 0.2 * tv
            g = gv if g is None else 0.8 * g + 0.2 * gv
            smoothed.append(t / g if g > 0 else float("nan"))
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=110)
        per_step = [tv / gv if gv > 0 and tv / gv > 0 else float("nan") for tv, gv in zip(trace, g_sq)]
        ax.plot(steps, per_step, ".", color="#e8710a", alpha=0.5, label="per step tr(Σ)/|G|² (noisy)")
        ax.plot(steps, smoothed, "-", color="#425066", lw=2, label="ratio of moving averages (the tab)")
        ax.axhline(16, color="k", lw=1, ls=":", label="batch of both ranks (16)")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("B_simple (samples)")
        ax.set_title("Gradient noise scale, 2 DDP ranks: noisy linear regression")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out)
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    if sys.argv[1] in ("run", "noise"):
        import socket

        import torch.multiprocessing as mp

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if sys.argv[1] == "noise":
            mp.spawn(_noise_rank, args=(sys.argv[2], port), nprocs=2)
        else:
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
