"""Helpers shared by the test modules: training steps on made-up or sliced batches, reading back what a
run wrote, counting hooks, and the check that recording never changes training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tensorboard.backend.event_processing import event_file_loader
from torch import nn

HOOK_ATTRS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_always_called",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
)


def hook_count(model: nn.Module) -> int:
    """Every kind of module hook torch keeps, summed over the whole model."""
    return sum(len(getattr(module, attr, {})) for module in model.modules() for attr in HOOK_ATTRS)


def read_events(run_dir: Path) -> list:
    """Every event of the run's event files, in file order."""
    events = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        events.extend(event_file_loader.EventFileLoader(str(path)).Load())
    return events


def insight_steps(run_dir: Path) -> dict[str, list[int]]:
    """The steps written under each `insight/` tag of the run, a layer table's under each of its layers'
    per-layer (v1) tags instead, e.g. `insight/activation_stats/<layer>`: the steps each layer was
    recorded at, whichever schema stored them (`read_events` shows the tables' own tags)."""
    from tb_plugin_insight import metadata

    steps: dict[str, list[int]] = {}
    table_layers: dict[str, tuple[int, list[str]]] = {}  # table tag -> (layer kind, its rows' layers)
    for event in read_events(run_dir):
        for value in event.summary.value:
            if not value.tag.startswith("insight/"):
                continue
            if not value.tag.startswith("insight/layer_table/"):
                steps.setdefault(value.tag, []).append(event.step)
                continue
            if value.metadata.plugin_data.content:
                data = metadata.PluginData.FromString(value.metadata.plugin_data.content)
                table_layers[value.tag] = (metadata.LAYER_KINDS.get(data.kind), [e.name for e in data.layers])
            kind, names = table_layers[value.tag]
            if kind is None:  # a table kind with no per-layer twin (parameter histograms): its own tag
                steps.setdefault(value.tag, []).append(event.step)
                continue
            for name in names:
                steps.setdefault(metadata.tag_for(kind, name), []).append(event.step)
    return steps


def layer_records(run_dir: Path, kind: int) -> dict[str, dict[int, np.ndarray]]:
    """{layer: {step: stored vector}} of a per-layer record kind (e.g. metadata.RecordKind.GRADIENT_STATS),
    from v1 per-layer tags and v2 layer tables (a table's row of the layer) alike."""
    from tensorboard.util import tensor_util

    from tb_plugin_insight import metadata

    prefix = metadata.tag_for(kind, "")
    table_prefix = metadata.tag_for(metadata.TABLE_KINDS[kind], "")
    names: dict[str, list[str]] = {}  # table tag -> its rows' layers
    out: dict[str, dict[int, np.ndarray]] = {}
    for event in read_events(run_dir):
        for value in event.summary.value:
            if value.tag.startswith(prefix):
                out.setdefault(value.tag[len(prefix) :], {})[event.step] = tensor_util.make_ndarray(
                    value.tensor
                )
            elif value.tag.startswith(table_prefix):
                if value.metadata.plugin_data.content:
                    data = metadata.PluginData.FromString(value.metadata.plugin_data.content)
                    names[value.tag] = [layer.name for layer in data.layers]
                table = tensor_util.make_ndarray(value.tensor)
                for name, row in zip(names[value.tag], table):
                    out.setdefault(name, {})[event.step] = row
    return out


def random_batch(
    gen: torch.Generator, *, batch: int = 8, size: int = 8, classes: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images (batch, 3, size, size) and labels, drawn from `gen` in that order."""
    x = torch.randn(batch, 3, size, size, generator=gen)
    y = torch.randint(0, classes, (batch,), generator=gen)
    return x, y


def sgd_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One optimiser step on the cross-entropy of the batch; returns the loss."""
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def train_on_slices(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    batch: int = 16,
) -> None:
    """`steps` optimiser steps on consecutive slices of `batch` images."""
    for step in range(steps):
        part = slice(step * batch, (step + 1) * batch)
        sgd_step(model, opt, images[part], labels[part])


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's parameters and buffers (BatchNorm running stats too)."""
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_training_unchanged(final_state: Callable[[bool], dict[str, torch.Tensor]]) -> None:
    """Runs the same training without and with recording (`final_state(False)`, `final_state(True)`)
    and asserts the resulting tensors are bit-identical, key by key."""
    plain, watched = final_state(False), final_state(True)
    assert plain.keys() == watched.keys()
    for key in plain:
        assert torch.equal(plain[key], watched[key]), key


class _EditGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, edit):  # type: ignore[override]
        ctx.edit = edit
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return ctx.edit(grad), None


def edit_gradient(x: torch.Tensor, edit: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """`x` unchanged going forward; the gradient flowing back through it is replaced by `edit(grad)`
    (a damped or broken op, to make vanishing or NaN gradients on purpose)."""
    return _EditGradient.apply(x, edit)
