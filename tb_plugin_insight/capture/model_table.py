"""The model table: one row per module, like torchinfo, with output shapes from a real forward.

During the first recorded training forward of a watch, a temporary forward hook on every module notes
what that module returned (shapes only, no tensor is kept); the hooks are removed as soon as that forward
ends (also when it raises). Rows are in `model.named_modules()` order, so a module's children follow it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

_MAX_ITEMS = 8  # tensors described inside one tuple/list/dict output


def describe_output(output: Any, depth: int = 0) -> Any:
    """A JSON-ready description of a module output: a tensor's shape as a list, a tuple/list of those,
    a dict of those by key, a short type name for anything else; long containers are cut with "…"."""
    if isinstance(output, torch.Tensor):
        return list(output.shape)
    if depth >= 3:
        return type(output).__name__
    if isinstance(output, Mapping):
        items = list(output.items())
        described = {str(k): describe_output(v, depth + 1) for k, v in items[:_MAX_ITEMS]}
        if len(items) > _MAX_ITEMS:
            described["…"] = f"{len(items) - _MAX_ITEMS} more"
        return described
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        fields = {f.name: getattr(output, f.name) for f in dataclasses.fields(output)}
        return describe_output(fields, depth)
    if isinstance(output, (list, tuple)):
        described_list = [describe_output(v, depth + 1) for v in output[:_MAX_ITEMS]]
        if len(output) > _MAX_ITEMS:
            described_list.append(f"… {len(output) - _MAX_ITEMS} more")
        return described_list
    return None if output is None else type(output).__name__


def _count(params: Any) -> tuple[int, int]:
    total = trainable = 0
    for p in params:
        n = p.numel()
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable


def static_rows(model: nn.Module, watched: Collection[str]) -> list[dict[str, Any]]:
    """Rows without output shapes: name, type, depth, parameter counts (own and with children), watched."""
    rows = []
    for name, module in model.named_modules():
        params, trainable = _count(module.parameters())
        own, _ = _count(module.parameters(recurse=False))
        rows.append(
            {
                "name": name,
                "type": type(module).__name__,
                "depth": 0 if not name else name.count(".") + 1,
                "params": params,
                "trainableParams": trainable,
                "ownParams": own,
                "watched": name in watched,
                "output": None,
                "calls": 0,
            }
        )
    return rows


class ModelTableRecorder:
    """Temporary hooks on every module of `model` for one forward; `finish()` removes them, gives rows."""

    def __init__(self, model: nn.Module, watched: Collection[str]) -> None:
        self._rows = static_rows(model, watched)
        self._handles: list[RemovableHandle] = []
        for index, (_, module) in enumerate(model.named_modules()):
            if index:  # the model's own output is handed to finish() by the recorder's after-forward hook
                self._handles.append(module.register_forward_hook(self._hook(index)))

    def _hook(self, index: int) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            row = self._rows[index]
            row["calls"] += 1
            if row["calls"] == 1:
                row["output"] = describe_output(output)

        return hook

    def remove(self) -> None:
        """Remove the hooks (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def finish(self, model_output: Any) -> list[dict[str, Any]]:
        """Remove the hooks; the rows, the first (the model itself) described by `model_output`."""
        self.remove()
        root = self._rows[0]
        root["calls"] += 1
        root["output"] = describe_output(model_output)
        return self._rows


def table_document(model: nn.Module, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The stored JSON document (summary.model_table_value): the model's class and its rows."""
    total, trainable = _count(model.parameters())
    return {"modelType": type(model).__name__, "params": total, "trainableParams": trainable, "rows": rows}
