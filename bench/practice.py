"""The usual hand-written practice Insight replaces, as users write it today (for side-by-side runs).

Forward hooks on every conv/linear/activation layer; on a logged step: `add_histogram` of each
activation, a 4x4 grid of 16 channels of the first probe image per conv layer via `add_image`, and
`add_histogram` of every parameter's gradient. (torchvision's make_grid is replaced by an equivalent
reshape so the benchmark needs no torchvision.)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter


def grid16(fmap: torch.Tensor) -> torch.Tensor:
    """16 channels of one feature map tiled 4x4 into a 1xHxW image in [0, 1] (like make_grid)."""
    maps = fmap[:16].detach().float()
    if maps.shape[0] < 16:
        maps = torch.cat([maps, maps.new_zeros(16 - maps.shape[0], *maps.shape[1:])])
    lo, hi = maps.amin(dim=(1, 2), keepdim=True), maps.amax(dim=(1, 2), keepdim=True)
    maps = (maps - lo) / (hi - lo).clamp_min(1e-8)
    h, w = maps.shape[1:]
    return maps.reshape(4, 4, h, w).permute(0, 2, 1, 3).reshape(1, 4 * h, 4 * w)


class HandWrittenLogger:
    """Hooks + add_histogram + add_image every `every` steps; call `after_backward(step)` each step."""

    def __init__(self, writer: SummaryWriter, model: nn.Module, every: int) -> None:
        self.writer, self.model, self.every = writer, model, every
        self.step = 0
        self.handles = []
        for name, module in model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear, nn.ReLU, nn.BatchNorm2d)):
                self.handles.append(module.register_forward_hook(self._hook(name, module)))

    def _hook(self, name: str, module: nn.Module):
        def hook(mod: nn.Module, args: object, output: torch.Tensor) -> None:
            if self.step % self.every:
                return
            self.writer.add_histogram(f"act/{name}", output.detach(), self.step)
            if isinstance(mod, nn.Conv2d):
                self.writer.add_image(f"fmap/{name}", grid16(output[0]), self.step)

        return hook

    def after_backward(self) -> None:
        if self.step % self.every == 0:
            for name, param in self.model.named_parameters():
                if param.grad is not None:
                    self.writer.add_histogram(f"grad/{name}", param.grad, self.step)
        self.step += 1

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


class ParamHistogramLogger:
    """W&B-style (`wandb.watch(model, log="all", log_freq=every)`): a histogram of every parameter and
    of its gradient every `every` steps; call `after_backward()` each step."""

    def __init__(self, writer: SummaryWriter, model: nn.Module, every: int) -> None:
        self.writer, self.model, self.every = writer, model, every
        self.step = 0

    def after_backward(self) -> None:
        if self.step % self.every == 0:
            for name, param in self.model.named_parameters():
                self.writer.add_histogram(f"param/{name}", param.detach(), self.step)
                if param.grad is not None:
                    self.writer.add_histogram(f"grad/{name}", param.grad, self.step)
        self.step += 1
