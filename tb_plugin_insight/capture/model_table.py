"""The model table: one row per module, like torchinfo, with output shapes from a real forward.

During the first recorded training forward of a watch, a temporary forward hook on every module notes
what that module returned (shapes only, no tensor is kept) and what torchinfo would count for that call
(mult-adds, output bytes); the hooks are removed as soon as that forward ends (also when it raises). Rows
are in `model.named_modules()` order, so a module's children follow it. `table_document` adds the totals
block torchinfo prints under its table (`totals`).

Definitions, as torchinfo 1.8.0 (`layer_info.py`, `model_statistics.py`), per call of a module, from its
output (the first tensor of a tuple/list, the last value of a dict, as torchinfo picks it):

* mult-adds: for each parameter named `weight` or `bias`, its count times N * (output's spatial size)
  for a class whose name contains "Conv", else times N (the output's first dimension); for other
  parameters with "weight"/"bias" in their name (RNN's `weight_ih_l0`, ...) its count times the
  output's first two dimensions. Only modules without children add to the total; a row's `multAdds`
  includes its children's, like `params`.
* forward/backward pass size: twice the output bytes of every call of a module without children that
  has parameters (the activation, and its gradient).
* input size: the bytes of the model's input tensors; parameter size: the bytes of the parameters;
  estimated total size: the sum of the three.

Where Insight differs from torchinfo: the parameter size is the bytes of every parameter of the model,
each counted once (torchinfo leaves out parameters held directly by a module with children, such as
MultiheadAttention's `in_proj_weight` or a ViT's class token, and those of modules that never ran, such
as its `out_proj`, whose weights the attention function reads itself; it also counts a pruned weight's
kept entries only); the input size is the tensors' bytes (torchinfo's `sys.getsizeof` adds a few dozen
bytes per storage). Mult-adds follow torchinfo exactly, so like it they leave out MultiheadAttention's input
projection (a module with children) and operations without parameters (attention's matrix products).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Optional

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


def _first_tensor(output: Any, *, top: bool = True) -> Optional[torch.Tensor]:
    """The tensor torchinfo sizes a module's output by: the tensor itself, the first tensor of a
    tuple/list (recursively, PackedSequence's data), the last value of a dict at the top level (the first
    one deeper down), else None."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        values = list(output.values())
        return _first_tensor(values[-1] if top else values[0], top=False) if values else None
    if isinstance(output, (list, tuple)) and output:
        return _first_tensor(output[0], top=False)
    return None


def call_counts(module: nn.Module, output: Any) -> tuple[int, int]:
    """(mult-adds, output bytes) of one call of `module` that returned `output`, as torchinfo counts them
    (see the module docstring)."""
    tensor = _first_tensor(output)
    if tensor is None:
        return 0, 0
    size = list(tensor.shape)
    output_bytes = tensor.element_size() * math.prod(size)
    if not size:
        return 0, output_bytes
    conv = "Conv" in type(module).__name__
    macs = 0
    for name, param in module.named_parameters():
        if nn.parameter.is_lazy(param):
            continue
        count = param.numel()
        if name in ("weight", "bias"):
            macs += count * (math.prod(size[:1] + size[2:]) if conv else size[0])
        elif "weight" in name or "bias" in name:
            macs += count * math.prod(size[:2])
    return macs, output_bytes


def kernel_size(module: nn.Module) -> Optional[list[int]]:
    """The module's `kernel_size` (torchinfo's "Kernel Shape") as a list, or None when it has none."""
    k = getattr(module, "kernel_size", None)
    if isinstance(k, int):
        return [k]
    if isinstance(k, (list, tuple)) and all(isinstance(v, int) for v in k):
        return list(k)
    return None


def input_bytes(inputs: Any) -> int:
    """Bytes of every tensor in the model's input (tensors, nested in tuples, lists and dicts)."""
    return sum(t.element_size() * t.numel() for t in iter_tensors(inputs))


def iter_tensors(value: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """Every tensor in `value`: itself, or nested in tuples, lists and dicts (8 levels at most)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif depth < 8 and isinstance(value, Mapping):
        for item in value.values():
            yield from iter_tensors(item, depth + 1)
    elif depth < 8 and isinstance(value, (list, tuple)):
        for item in value:
            yield from iter_tensors(item, depth + 1)


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
                "kernelSize": kernel_size(module),
                "ownMultAdds": 0,
                "multAdds": 0,
                "outputBytes": 0,
            }
        )
    return rows


class ModelTableRecorder:
    """Temporary hooks on every module of `model` for one forward; `finish()` removes them, gives rows.

    `inputs`: the model's input of that forward (its bytes go to the first row as `inputBytes`)."""

    def __init__(self, model: nn.Module, watched: Collection[str], inputs: Any = None) -> None:
        self._rows = static_rows(model, watched)
        self._rows[0]["inputBytes"] = input_bytes(inputs)
        self._model = model
        self._handles: list[RemovableHandle] = []
        self._leaves: list[bool] = []
        for index, (_, module) in enumerate(model.named_modules()):
            self._leaves.append(next(module.children(), None) is None)
            if index:  # the model's own output is handed to finish() by the recorder's after-forward hook
                self._handles.append(module.register_forward_hook(self._hook(index)))

    def _hook(self, index: int) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self._note(index, module, output)

        return hook

    def _note(self, index: int, module: nn.Module, output: Any) -> None:
        row = self._rows[index]
        row["calls"] += 1
        if row["calls"] == 1:
            row["output"] = describe_output(output)
        try:
            macs, size = call_counts(module, output)
        except Exception:  # noqa: BLE001 - a hook in the user's training forward must never raise
            return
        row["outputBytes"] += size
        if self._leaves[index]:  # as torchinfo: only modules without children count mult-adds
            row["ownMultAdds"] += macs

    def remove(self) -> None:
        """Remove the hooks (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def finish(self, model_output: Any) -> list[dict[str, Any]]:
        """Remove the hooks; the rows, the first (the model itself) described by `model_output`."""
        self.remove()
        self._note(0, self._model, model_output)
        _add_children_mult_adds(self._rows)
        return self._rows


def _add_children_mult_adds(rows: list[dict[str, Any]]) -> None:
    """Each row's `multAdds`: its own plus its descendants' (rows in named_modules order: a module's
    descendants are the rows after it with a greater depth, up to the next row at its depth or above)."""
    for i, row in enumerate(rows):
        total = row["ownMultAdds"]
        for later in rows[i + 1 :]:
            if later["depth"] <= row["depth"]:
                break
            total += later["ownMultAdds"]
        row["multAdds"] = total


def totals(model: nn.Module, rows: list[dict[str, Any]]) -> dict[str, int]:
    """torchinfo's totals block, from the rows of one forward (see the module docstring)."""
    params, trainable = _count(model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    modules = [module for _, module in model.named_modules()]
    leaves = [row for row, module in zip(rows, modules) if next(module.children(), None) is None]
    forward_backward = 2 * sum(row["outputBytes"] for row in leaves if row["params"] > 0)
    inputs = int(rows[0].get("inputBytes", 0)) if rows else 0
    return {
        "totalParams": params,
        "trainableParams": trainable,
        "nonTrainableParams": params - trainable,
        "totalMultAdds": sum(row["ownMultAdds"] for row in rows),
        "inputSizeBytes": inputs,
        "forwardBackwardSizeBytes": forward_backward,
        "paramsSizeBytes": param_bytes,
        "estimatedTotalSizeBytes": inputs + forward_backward + param_bytes,
    }


def table_document(model: nn.Module, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The stored JSON document (summary.model_table_value): the model's class, its rows and the totals
    block (`totals`, keys as `totals()`)."""
    total, trainable = _count(model.parameters())
    return {
        "modelType": type(model).__name__,
        "params": total,
        "trainableParams": trainable,
        "rows": rows,
        "totals": totals(model, rows),
    }
