"""Attention probabilities of every attention layer during one forward, whatever computes them.

Only for the probe pass (never the training step): inside `capturing(model)`, forward pre/post hooks on
every module keep a stack of the modules running, and a `TorchFunctionMode` sees the calls that
compute attention, attributing each to the innermost module running:

* `F.scaled_dot_product_attention` (HuggingFace "sdpa", timm's fused attention, your own code): the
  probabilities are recomputed from the same q, k, mask, `is_causal`, `scale` and `enable_gqa`
  (explain/attention.py), then the real call runs unchanged;
* `F.multi_head_attention_forward` (`nn.MultiheadAttention`, also with `need_weights=False`, and
  `nn.TransformerEncoderLayer`; under a torch-function mode their fused fast path is not taken):
  recomputed from the module's in-projection weights and its masks;
* a softmax over the last dimension of a 4-D tensor (N, heads, queries, keys) inside a module: eager
  attention (HuggingFace "eager", most hand-written attention); its input is the pre-softmax logits.

A module that computes attention more than once in a forward gets "#2", "#3" ... after its name. What
is kept of each call is up to `keep` (the recorder keeps small reductions; `attention_probs` keeps
everything), so full probabilities never pile up across layers unless asked for.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Mapping
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from tb_plugin_insight.explain import attention as attn_math
from tb_plugin_insight.explain.attention import AttentionCall

Keep = Callable[[str, AttentionCall], Any]

_SOFTMAX = (torch.softmax, F.softmax, torch.Tensor.softmax, torch.nn.functional.softmax)
_MHA_SIGNATURE = inspect.signature(F.multi_head_attention_forward)
_SDPA_NAMES = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


class _Mode(TorchFunctionMode):
    """Sees attention calls while active; `on_call(logits, causal)` gets their logits."""

    def __init__(self, on_call: Callable[[Callable[[], torch.Tensor], Optional[bool]], None]) -> None:
        super().__init__()
        self.on_call = on_call

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            named = dict(zip(_SDPA_NAMES, args))
            named.update(kwargs)
            causal = bool(named.get("is_causal", False))
            self.on_call(lambda: _sdpa(named), True if causal else None)
        elif func is F.multi_head_attention_forward:
            bound = _MHA_SIGNATURE.bind(*args, **kwargs)
            bound.apply_defaults()
            self.on_call(lambda: mha_logits(bound.arguments), None)
        result = func(*args, **kwargs)
        if func in _SOFTMAX and _is_attention_softmax(args, kwargs):
            self.on_call(lambda: args[0], None)
        return result


def _sdpa(named: Mapping[str, Any]) -> torch.Tensor:
    return attn_math.sdpa_logits(
        named["query"],
        named["key"],
        named.get("attn_mask"),
        bool(named.get("is_causal", False)),
        named.get("scale"),
        bool(named.get("enable_gqa", False)),
    )


def _is_attention_softmax(args: Any, kwargs: Mapping[str, Any]) -> bool:
    """softmax(x, dim=-1 or 3) of a 4-D floating tensor."""
    if not args or not isinstance(args[0], torch.Tensor):
        return False
    x = args[0]
    dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
    return x.dim() == 4 and x.is_floating_point() and dim in (-1, 3)


def mha_logits(a: Mapping[str, Any]) -> torch.Tensor:
    """(N, H, Q, K) logits of `F.multi_head_attention_forward`'s arguments (sequence-first inputs).

    Raises:
        NotImplementedError: bias_k/bias_v, add_zero_attn or static_k (their keys are not recomputed).
    """
    if a["bias_k"] is not None or a["add_zero_attn"] or a["static_k"] is not None:
        raise NotImplementedError("attention of nn.MultiheadAttention with add_bias_kv/add_zero_attn")
    query, key = a["query"].detach(), a["key"].detach()
    if query.dim() == 2:  # unbatched (L, E)
        query, key = query[:, None], key[:, None]
    embed, heads = query.shape[-1], int(a["num_heads"])
    bias = a["in_proj_bias"]
    b_q, b_k = (None, None) if bias is None else (bias[:embed], bias[embed : 2 * embed])
    if a["use_separate_proj_weight"]:
        w_q, w_k = a["q_proj_weight"], a["k_proj_weight"]
    else:
        w_q, w_k = a["in_proj_weight"][:embed], a["in_proj_weight"][embed : 2 * embed]
    q, k = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k)
    length, batch, keys = q.shape[0], q.shape[1], k.shape[0]
    q = q.reshape(length, batch, heads, -1).permute(1, 2, 0, 3)
    k = k.reshape(keys, batch, heads, -1).permute(1, 2, 0, 3)
    logits = attn_math.sdpa_logits(q, k, None, bool(a["is_causal"] and a["attn_mask"] is None))
    for mask in (_mha_mask(a["attn_mask"], batch, heads), _padding_mask(a["key_padding_mask"], batch)):
        if mask is not None:
            logits = logits.masked_fill(mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
    return logits


def _mha_mask(mask: Optional[torch.Tensor], batch: int, heads: int) -> Optional[torch.Tensor]:
    """attn_mask (L, S) or (N*H, L, S), True = masked out, as (1|N, 1|H, L, S)."""
    if mask is None:
        return None
    mask = mask.detach()
    mask = mask[None, None] if mask.dim() == 2 else mask.reshape(batch, heads, *mask.shape[-2:])
    return mask if mask.dtype == torch.bool else mask.float()


def _padding_mask(mask: Optional[torch.Tensor], batch: int) -> Optional[torch.Tensor]:
    """key_padding_mask (N, S), True = padding, as (N, 1, 1, S)."""
    if mask is None:
        return None
    mask = mask.detach().reshape(batch, 1, 1, -1)
    return mask if mask.dtype == torch.bool else mask.float()


class _Stack:
    """The qualified names of the modules running now, innermost last."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def push(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            self.names.append(name)

        return hook

    def pop(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.names:
            self.names.pop()


@contextlib.contextmanager
def capturing(model: nn.Module, keep: Keep) -> Iterator[dict[str, Any]]:
    """While inside, every attention computation of a forward of `model` gives `keep(name, call)`; the
    yielded dict fills with its results by module name (in call order). Errors of one call become its
    entry (never raised inside the forward). Hooks and the mode are removed on exit."""
    stack = _Stack()
    results: dict[str, Any] = {}
    handles = []

    def on_call(logits: Callable[[], torch.Tensor], causal: Optional[bool]) -> None:
        if not stack.names:
            return  # outside every module (a softmax in the training script): not attention of a layer
        name = _unique(stack.names[-1], results)
        try:
            with torch.no_grad():
                results[name] = keep(name, attn_math.from_logits(logits(), causal))
        except Exception as err:  # noqa: BLE001 - reported by the caller, never inside the forward
            results[name] = err

    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(stack.push(name)))
            handles.append(module.register_forward_hook(stack.pop, always_call=True))
        with _Mode(on_call):
            yield results
    finally:
        for handle in handles:
            handle.remove()


def _unique(name: str, seen: Mapping[str, Any]) -> str:
    if name not in seen:
        return name
    count = 2
    while f"{name}#{count}" in seen:
        count += 1
    return f"{name}#{count}"


def run_model(model: nn.Module, inputs: Any) -> Any:
    """model(inputs): a tensor as one argument, a mapping as keywords, a tuple/list as arguments."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def capture(
    model: nn.Module, inputs: Any, keep: Keep, forward: Optional[Callable[[], Any]] = None
) -> dict[str, Any]:
    """`keep(name, call)` of every attention computation of one eval-mode, no-grad forward of `inputs`
    (or of `forward()`, e.g. a text probe's `TextProbe.call`), by module name; the model's flags and the
    RNG state are restored.

    Raises:
        Exception: what the forward raised, or the first attention call that could not be recomputed.
    """
    flags = [(module, module.training) for module in model.modules()]
    try:
        with torch.random.fork_rng(devices=[]), capturing(model, keep) as found:
            model.eval()
            with torch.no_grad():
                run_model(model, inputs) if forward is None else forward()
    finally:
        for module, flag in flags:
            module.training = flag
    for value in found.values():
        if isinstance(value, Exception):
            raise value
    return dict(found)


def attention_calls(model: nn.Module, inputs: Any) -> dict[str, AttentionCall]:
    """Every attention computation of one forward of `inputs` (see `capture`), by module name:
    probabilities, entropy, max logit. Holds every layer's probabilities at once: for large models
    pass a reduction to `capture` instead."""
    return capture(model, inputs, lambda name, call: call)


def attention_probs(model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
    """{attention module name: (N, heads, queries, keys) probabilities} of one forward of `inputs`
    (see `attention_calls`); reusable for text probes (`inputs` a dict of model keywords)."""
    return {name: call.probs for name, call in attention_calls(model, inputs).items()}
