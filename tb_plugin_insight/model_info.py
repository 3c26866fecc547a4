"""`model_summary(model, example_input)`: the model table on its own, like `torchinfo.summary`.

(This module is not called model_summary: a submodule of that name would shadow the function
`tb_plugin_insight.model_summary` at the package root once imported.)

The same rows and totals as the model table `watch()` records (`capture/model_table.py`, torchinfo's
definitions), from one forward of `example_input` that leaves no trace: every module's `training` flag is
put back (the forward runs in eval mode, so BatchNorm statistics are not updated and Dropout is off), the
RNG state is restored, the forward runs under `torch.no_grad()` (no `.grad`, no graph), and the hooks are
removed in `finally`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from tb_plugin_insight.capture import model_table

__all__ = ["ModelSummary", "model_summary"]


@dataclasses.dataclass
class ModelSummary:
    """torchinfo's summary of one forward: `str()` is the text table, the attributes its numbers.

    Attributes:
        model_type: the model's class name.
        rows: one dict per module in `named_modules()` order (the model table's rows): name, type, depth,
            params, trainableParams, ownParams, output (shape), calls, kernelSize, multAdds (with its
            children's), ownMultAdds, outputBytes, watched (False here); the first row also inputBytes.
        total_params, trainable_params, non_trainable_params: parameter counts (each parameter once).
        total_mult_adds: torchinfo's "Total mult-adds" (of the whole batch).
        input_size_bytes, forward_backward_size_bytes, params_size_bytes, estimated_total_size_bytes:
            torchinfo's size lines, in bytes (it prints them in MB, 1 MB = 1e6 bytes).
    """

    model_type: str
    rows: list[dict[str, Any]]
    total_params: int
    trainable_params: int
    non_trainable_params: int
    total_mult_adds: int
    input_size_bytes: int
    forward_backward_size_bytes: int
    params_size_bytes: int
    estimated_total_size_bytes: int

    def __str__(self) -> str:
        return _text(self)


def model_summary(model: nn.Module, example_input: Any) -> ModelSummary:
    """One row per module with output shape, kernel shape, parameters and mult-adds, and torchinfo's
    totals, from one side-effect-free forward of `example_input`.

    Args:
        model: the network; left as it was (modes, BatchNorm statistics, `.grad`, RNG state, hooks).
        example_input: what the model is called with, as torchinfo's `input_data`: a tensor, a tuple or
            list of positional arguments, or a dict of keyword arguments. Mult-adds and sizes are those of
            this batch.

    Raises:
        TypeError: `model` is not an `nn.Module`.
        Exception: whatever the model's forward raises on `example_input`.

    Example::

        print(tb_plugin_insight.model_summary(model, torch.zeros(1, 3, 224, 224)))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    recorder = model_table.ModelTableRecorder(model, (), example_input)
    output = None
    try:
        with _untouched(model, example_input), torch.no_grad():
            output = _call(model, example_input)
    finally:
        rows = recorder.finish(output)
    totals = model_table.totals(model, rows)
    return ModelSummary(
        model_type=type(model).__name__,
        rows=rows,
        total_params=totals["totalParams"],
        trainable_params=totals["trainableParams"],
        non_trainable_params=totals["nonTrainableParams"],
        total_mult_adds=totals["totalMultAdds"],
        input_size_bytes=totals["inputSizeBytes"],
        forward_backward_size_bytes=totals["forwardBackwardSizeBytes"],
        params_size_bytes=totals["paramsSizeBytes"],
        estimated_total_size_bytes=totals["estimatedTotalSizeBytes"],
    )


def _call(model: nn.Module, example_input: Any) -> Any:
    if isinstance(example_input, Mapping):
        return model(**example_input)
    if isinstance(example_input, (list, tuple)):
        return model(*example_input)
    return model(example_input)


@contextlib.contextmanager
def _untouched(model: nn.Module, example_input: Any) -> Iterator[None]:
    """Eval mode and a forked RNG inside; every module's flag and the RNG state restored on exit."""
    flags = [(module, module.training) for module in model.modules()]
    devices = sorted(
        {t.device.index or 0 for t in model_table.iter_tensors(example_input) if t.device.type == "cuda"}
    )
    with torch.random.fork_rng(devices=devices):
        try:
            model.eval()
            yield
        finally:
            for module, flag in flags:
                module.training = flag


# --- the text table ----------------------------------------------------------------------------------------

_HEADERS = ("Layer (type)", "Output Shape", "Kernel Shape", "Param #", "Mult-Adds")


def _text(summary: ModelSummary) -> str:
    """torchinfo-style text: one line per module (indented by depth), then the totals block."""
    lines = [
        (
            "  " * row["depth"] + (f"{row['name']} ({row['type']})" if row["name"] else row["type"]),
            "--" if row["output"] is None else str(row["output"]),
            "--" if row["kernelSize"] is None else str(row["kernelSize"]),
            f"{row['ownParams']:,}" if row["ownParams"] else "--",
            f"{row['ownMultAdds']:,}" if row["ownMultAdds"] else "--",
        )
        for row in summary.rows
    ]
    widths = [max(len(cells[i]) for cells in [_HEADERS, *lines]) for i in range(len(_HEADERS))]
    rule = "=" * (sum(widths) + 2 * (len(widths) - 1))

    def fmt(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))]).rstrip()

    mb = 1e6
    text = [rule, fmt(_HEADERS), rule, *(fmt(cells) for cells in lines), rule]
    text += [
        f"Total params: {summary.total_params:,}",
        f"Trainable params: {summary.trainable_params:,}",
        f"Non-trainable params: {summary.non_trainable_params:,}",
        f"Total mult-adds (M): {summary.total_mult_adds / 1e6:,.2f}",
        rule,
        f"Input size (MB): {summary.input_size_bytes / mb:.2f}",
        f"Forward/backward pass size (MB): {summary.forward_backward_size_bytes / mb:.2f}",
        f"Params size (MB): {summary.params_size_bytes / mb:.2f}",
        f"Estimated Total Size (MB): {summary.estimated_total_size_bytes / mb:.2f}",
        rule,
    ]
    return "\n".join(text)
