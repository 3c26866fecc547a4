"""Train a tiny model with everything recorded; flush at one step, then keep training until killed.

Usage: python tests/scripts/train_until_killed.py LOGDIR FLUSH_STEP
Prints "flushed N" once writer.flush() has returned after step N (activation statistics and CAMs up to
step N are then on disk; the gradient record of step N is written at the next forward, after the update).
"""

from __future__ import annotations

import sys
import time

import torch
from torch import nn

from tb_plugin_insight import InsightWriter


def main() -> None:
    logdir, flush_step = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    writer = InsightWriter(logdir, flush_secs=3600, max_queue=100_000)  # nothing flushed but by flush()
    writer.watch(model, every=1, probe=torch.randn(2, 3, 8, 8, generator=gen), cam_every=5)
    step = 0
    while True:
        x, y = torch.randn(4, 3, 8, 8, generator=gen), torch.randint(0, 3, (4,), generator=gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        writer.add_scalar("loss", loss.item(), step)
        if step == flush_step:
            writer.flush()
            print(f"flushed {step}", flush=True)
        if step > flush_step:
            time.sleep(0.01)  # keep recording, unflushed, until killed
        step += 1


if __name__ == "__main__":
    main()
