"""The layer CAMs explain when none is given, its layout, and the reason the tab shows for the choice.

One side-effect-free forward of a probe image, with a hook on every module, sees each module's output:
its shape, the very tensor object, and that tensor's in-place version counter when the module finished.
Candidates are modules called once (CAMs capture a module's first call) whose output has a spatial
layout (`explain.layouts`: channels first, channels last, or tokens on a grid) with more than one
position and the probe's batch size (so not Swin's (N * windows, ...) window tensors), and that are
neither attention modules nor inside one (q, k, v, k_norm and their Identity stand-ins are not images).

* The last candidate to finish wins, so a patch embedding or a stem (which finish before the blocks)
  never does. Of the modules that returned that very tensor (a conv, the in-place ReLU after it, the
  Sequential around both), only those whose hook saw its final value qualify (a BatchNorm followed by
  `ReLU(inplace=True)` holds the values before the ReLU), and of those the innermost is named (the
  first to finish at equal depth: not an eval-mode Dropout that passes the tensor on).
* Token outputs after k >= 1 leading tokens (class, distillation, register tokens): after the last
  attention only the leading tokens reach the head, so the grid tokens of later layers have no
  gradient. The tensor that enters the last attention is chosen instead (the last block's first norm in
  pre-norm transformers, the previous block's output in post-norm ones), as pytorch-grad-cam recommends
  (`blocks[-1].norm1` for ViT).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Optional

import torch
from torch import nn

from tb_plugin_insight.capture import activation_types
from tb_plugin_insight.capture.outputs import primary_tensor
from tb_plugin_insight.explain import layouts
from tb_plugin_insight.explain.capture import side_effect_free

_ATTENTION = re.compile(r"attention|attn", re.IGNORECASE)
LAYOUTS = layouts.LAYOUTS


@dataclasses.dataclass(frozen=True)
class LayerChoice:
    """The chosen layer, its output's layout ("nchw", "nhwc", "tokens") and why it was chosen."""

    name: str
    layout: str
    reason: str


@dataclasses.dataclass
class _Call:
    """One module's (first) call in the dry run."""

    name: str
    module: nn.Module
    finished: int
    output: Optional[torch.Tensor]
    version: int  # the output's in-place version when the module finished
    calls: int = 1
    layout: Optional[layouts.Layout] = None
    inside_attention: bool = False

    @property
    def depth(self) -> int:
        return self.name.count(".") + 1


def is_attention(module: nn.Module, name: str = "") -> bool:
    """Attention modules of any library, by what they are or are called (nn.MultiheadAttention, HF's
    `ViTSelfAttention`, timm's `Attention`, Swin's `WindowAttention`, a submodule named `attn`)."""
    leaf = name.rsplit(".", 1)[-1]
    return (
        isinstance(module, nn.MultiheadAttention)
        or bool(_ATTENTION.search(type(module).__name__))
        or leaf in ("attn", "attention", "self_attn", "self_attention")
    )


def _dry_run(model: nn.Module, sample: torch.Tensor) -> tuple[list[_Call], dict[str, Any]]:
    """Every module's first call in finish order, and the input tensor of each attention module."""
    calls: dict[str, _Call] = {}
    attention_inputs: dict[str, Any] = {}
    handles = []
    modules = [(name, module) for name, module in model.named_modules() if name]
    attentive = {name for name, module in modules if is_attention(module, name)}

    def pre_hook(name: str) -> Any:
        def hook(module: nn.Module, args: Any, kwargs: Any) -> None:
            if name not in attention_inputs:
                found = primary_tensor(args) if args else None
                attention_inputs[name] = found if found is not None else primary_tensor(kwargs)

        return hook

    def hook(name: str, module: nn.Module) -> Any:
        def after(mod: nn.Module, args: Any, output: Any) -> None:
            if name in calls:
                calls[name].calls += 1
                return
            tensor = primary_tensor(output)
            version = tensor._version if tensor is not None else 0
            calls[name] = _Call(name, module, len(calls), tensor, version)

        return after

    try:
        for name, module in modules:
            handles.append(module.register_forward_hook(hook(name, module)))
            if name in attentive:
                handles.append(module.register_forward_pre_hook(pre_hook(name), with_kwargs=True))
        with side_effect_free(model, sample), torch.no_grad():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    for call in calls.values():
        parts = call.name.split(".")
        call.inside_attention = any(".".join(parts[:i]) in attentive for i in range(1, len(parts) + 1))
    return sorted(calls.values(), key=lambda c: c.finished), attention_inputs


def _candidates(calls: list[_Call], sample: torch.Tensor) -> list[_Call]:
    image = (int(sample.shape[-2]), int(sample.shape[-1]))
    found = []
    for call in calls:
        out = call.output
        if call.calls != 1 or out is None or call.inside_attention or out.dim() not in (3, 4):
            continue
        if out.shape[0] != sample.shape[0]:
            continue
        layout = layouts.infer(tuple(out.shape), image, call.module)
        if layout is None:
            continue
        positions = layout.grid[0] * layout.grid[1] if layout.name == "tokens" else _positions(out, layout)
        if positions > 1:
            call.layout = layout
            found.append(call)
    return found


def _positions(out: torch.Tensor, layout: layouts.Layout) -> int:
    return int(out.shape[1] * out.shape[2]) if layout.name == "nhwc" else int(out.shape[2] * out.shape[3])


def _final_of(group: list[_Call]) -> tuple[_Call, str]:
    """Of the modules that returned one tensor, the innermost that saw its final value, and a note."""
    final_version = group[0].output._version if group[0].output is not None else 0
    settled = [c for c in group if c.version == final_version]
    if not settled:
        chosen = max(group, key=lambda c: (c.depth, -c.finished))
        return chosen, (
            "; its output is changed in place afterwards by code outside any module called once (e.g."
            " F.relu(x, inplace=True) or a shared ReLU), so the CAM explains the values before that change:"
            " set cam_layer= to a module after it if there is one"
        )
    chosen = max(settled, key=lambda c: (c.depth, -c.finished))
    stale = [c for c in group if c.version != final_version]
    if stale:
        before = max(stale, key=lambda c: c.finished).name
        if activation_types.is_activation(chosen.module):
            return chosen, (
                f"; {before!r} returns the same tensor before {type(chosen.module).__name__} changes it in"
                f" place, so {chosen.name!r} is explained (values after the activation)"
            )
        return chosen, (
            f"; {before!r} returns the same tensor before it is changed in place (a residual add, a shared"
            f" in-place activation), so {chosen.name!r}, which sees the final values, is explained"
        )
    return chosen, ""


def choose_cam_layer(
    model: nn.Module, sample: torch.Tensor, allowed: tuple[str, ...] = layouts.LAYOUTS
) -> LayerChoice:
    """The layer CAMs explain by default, from one side-effect-free forward of `sample` (module docstring);
    `allowed`: the layouts that qualify (feature visualisation takes channels-first layers only).

    Raises:
        ValueError: no module has an output with a spatial layout (the message says how to pick one).
    """
    calls, attention_inputs = _dry_run(model, sample)
    candidates = [c for c in _candidates(calls, sample) if c.layout is not None and c.layout.name in allowed]
    if not candidates:
        raise ValueError(
            "found no layer with a spatial output to explain ((N, C, H, W), (N, H, W, C) or tokens (N, T, C)"
            " on a grid): pass cam_layer= (a module or its qualified name), with cam_reshape_transform="
            " (output -> (N, C, H, W)) for other layouts"
        )
    last = candidates[-1]
    layout = last.layout
    assert layout is not None
    if layout.name == "tokens" and layout.leading:
        attended = _attention_input(calls, candidates, attention_inputs)
        if attended is not None:
            return attended
    group = [c for c in candidates if c.output is last.output]
    chosen, note = _final_of(group)
    assert chosen.layout is not None
    return LayerChoice(chosen.name, chosen.layout.name, _why(chosen, note))


def _why(call: _Call, note: str) -> str:
    layout = call.layout
    assert layout is not None
    if layout.name == "tokens" and layout.leading:
        what = (
            f"the last layer whose tokens keep the image grid ({layout.describe()}); no attention module"
            " was found whose input it is: if only the leading tokens reach the head, set cam_layer= to the"
            " last block's first norm"
        )
    elif layout.name == "tokens":
        what = (
            f"the last layer whose tokens keep the image grid ({layout.describe()}; every token reaches"
            " the head)"
        )
    elif layout.name == "nhwc":
        what = "the last layer with a spatial output, laid out channels last (N, H, W, C)"
    else:
        what = "the last layer with a spatial output (N, C, H, W)"
    return what + note


def _attention_input(
    calls: list[_Call], candidates: list[_Call], attention_inputs: dict[str, Any]
) -> Optional[LayerChoice]:
    """The layer whose output enters the last attention (outermost attention modules only), or None."""
    outer = [c for c in calls if c.name in attention_inputs and not _inside_other(c.name, attention_inputs)]
    if not outer:
        return None
    attention = outer[-1]
    entering = attention_inputs[attention.name]
    group = [c for c in candidates if c.output is entering and c.finished < attention.finished]
    if not group:
        return None
    chosen = max(group, key=lambda c: (c.depth, -c.finished))
    layout = chosen.layout
    assert layout is not None
    reason = (
        f"the input of the last attention {attention.name!r} ({layout.describe()}): after it only the"
        f" leading token{'s reach' if layout.leading > 1 else ' reaches'} the head, so later"
        " token layers carry no gradient on the grid (pytorch-grad-cam's choice for ViTs)"
    )
    return LayerChoice(chosen.name, "tokens", reason)


def _inside_other(name: str, attentive: dict[str, Any]) -> bool:
    parts = name.split(".")
    return any(".".join(parts[:i]) in attentive for i in range(1, len(parts)))
