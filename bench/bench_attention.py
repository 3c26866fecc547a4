"""Cost of attention capture: nothing at steps without a probe pass, and what a probe step costs.

Run: `python -m bench.bench_attention [--batch 32 --steps 10 --rounds 3 --threads 2]`. A small ViT on
`F.scaled_dot_product_attention` (65 tokens, 4 blocks) trains under three watches side by side, each
with the same statistics: attention off; attention on but not due (`attention_every` larger than the
run: the steps have no probe pass, which is every step but 1 in `attention_every`); attention at every
step (each step runs the probe pass: 8 probe images, all heads' maps, rows, health, rollout).
Configurations are interleaved round by round so drift in machine load hits all alike; times are the
process's CPU time per step (steadier than wall time on a busy machine), medians over rounds, ratios
against "attention off" of the same round.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from tb_plugin_insight import InsightWriter


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, c)
        x = x + self.proj(y)
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, dim: int = 64, depth: int = 4, heads: int = 4, classes: int = 10) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 65, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.pos
        return self.head(self.blocks(x)[:, 0])


class Config:
    """One watched model and its optimizer; `run(steps)` trains that many steps, returns seconds/step."""

    def __init__(self, logdir: str, attention_every: int, batch: int) -> None:
        torch.manual_seed(0)
        self.model = ViT()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.x, self.y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
        self.writer = InsightWriter(logdir)
        probe = (torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
        self.writer.watch(self.model, probe=probe, cam_every=0, attention_every=attention_every)
        self.run(1)  # step 0 (a probe step for every config with attention) and warm-up

    def run(self, steps: int) -> float:
        start = time.process_time()  # CPU time: steadier than wall time on a busy machine
        for _ in range(steps):
            self.opt.zero_grad()
            F.cross_entropy(self.model(self.x), self.y).backward()
            self.opt.step()
        return (time.process_time() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        configs = {
            "attention off": Config(f"{root}/off", 0, args.batch),
            "attention on, no probe pass at these steps": Config(f"{root}/idle", 10**9, args.batch),
            "attention at every step (probe pass)": Config(f"{root}/every", 1, args.batch),
        }
        times: dict[str, list[float]] = {name: [] for name in configs}
        ratios: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.rounds):
            this_round = {name: config.run(args.steps) for name, config in configs.items()}
            for name, seconds in this_round.items():
                times[name].append(seconds)
                ratios[name].append(seconds / this_round["attention off"])
        for config in configs.values():
            config.writer.close()
    print(f"ViT 4 blocks x 4 heads, 65 tokens, batch {args.batch}, probe 8 images, {args.threads} threads")
    for name in configs:
        ms = statistics.median(times[name]) * 1000
        print(f"{name:45s} {ms:8.1f} ms CPU/step  x{statistics.median(ratios[name]):.3f}")


if __name__ == "__main__":
    main()
