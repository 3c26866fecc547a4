"""Token saliency: how much each input token moves one logit, from the gradient at the input embeddings.

Tokens are discrete, so the gradient is taken at the output of the input embedding layer (E, (N, L, H))
and reduced over the hidden dimension H to one number per token:

    grad_x_input          sum over H of E * dS/dE: the first-order Taylor estimate of how much S
                          changes when the token's embedding is removed (set to 0); signed.
    integrated_gradients  sum over H of (E - B) * integral over a in [0, 1] of dS/dE at B + a (E - B)
                          (Sundararajan et al., 2017), Gauss-Legendre with `steps` points; the tokens'
                          values sum to S(E) - S(B) (completeness). B: zeros, or the pad token's embedding.

The sum (rather than a norm) keeps the sign (a token for or against the target) and is what makes
integrated gradients complete; both methods share it, so their values compare. Padding positions
(attention mask 0) get 0.

S, the explained score: for a sequence classifier (logits (N, classes)) the logit of the target class;
for a language model (logits (N, L, vocab)) the next-token logit at the last non-padding position of
each sequence (the target: the given next token, else the predicted one).

Gradients come from `torch.autograd.grad` in an eval-mode forward with the RNG forked
(`side_effect_free`): no parameter's `.grad` is touched, no module's mode or buffer changes. This module
imports nothing from the recording side.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from tb_plugin_insight.explain import targets as targets_mod
from tb_plugin_insight.explain.capture import side_effect_free, split_output
from tb_plugin_insight.explain.saliency import gauss_legendre

METHODS = ("grad_x_input", "integrated_gradients")
CLASSIFICATION, NEXT_TOKEN = "classification", "next_token"


@dataclasses.dataclass
class TokenExplanation:
    """One explanation of N sequences: per method (N, L) float32 values on the CPU, and what was
    explained (CPU tensors)."""

    attributions: dict[str, torch.Tensor]
    task: str  # CLASSIFICATION or NEXT_TOKEN
    targets: torch.Tensor  # (N,) the class / next token explained
    predicted: torch.Tensor  # (N,) argmax of the explained logits
    probability: torch.Tensor  # (N,) softmax probability of the predicted class / token
    positions: Optional[torch.Tensor]  # (N,) the explained position (language models), else None
    scores: torch.Tensor  # (N,) S, the explained logit


def find_embedding(model: nn.Module, layer: Any = None) -> tuple[str, nn.Module]:
    """(qualified name, module) of the input embedding layer: `layer` (a module of the model or its
    name) if given, else `model.get_input_embeddings()` when the model has it, else the first
    `nn.Embedding` in `model.named_modules()` order.

    Raises:
        ValueError: a `layer` not in the model, or a model without an embedding (names the fix).
    """
    names = {id(m): n for n, m in model.named_modules()}
    if layer is not None:
        if isinstance(layer, str):
            found = dict(model.named_modules()).get(layer)
            if found is None:
                raise ValueError(f"token_saliency_layer {layer!r} is not a module of the model")
            return layer, found
        if isinstance(layer, nn.Module) and id(layer) in names:
            return names[id(layer)], layer
        raise ValueError("token_saliency_layer must be a module of the watched model or its qualified name")
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        try:
            module = getter()
        except (NotImplementedError, AttributeError):
            module = None
        if isinstance(module, nn.Module) and id(module) in names:
            return names[id(module)], module
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding):
            return name, module
    raise ValueError(
        "found no input embedding layer (no get_input_embeddings(), no nn.Embedding): pass"
        " token_saliency_layer= (the module whose output holds one vector per token)"
    )


def explain_tokens(
    model: nn.Module,
    forward: Callable[[], Any],
    embedding: nn.Module,
    mask: torch.Tensor,
    methods: Sequence[str],
    *,
    classes: Optional[torch.Tensor] = None,
    steps: int = 16,
    baseline: Union[None, torch.Tensor] = None,
) -> TokenExplanation:
    """Token saliency of the N sequences that `forward()` runs through `model` (see the module doc).

    Args:
        forward: one forward of the sequences (e.g. `lambda: model(**inputs)`).
        embedding: the input embedding module (`find_embedding`); its first call in a forward is used.
        mask: (N, L) attention mask (1: real token) on the model's device.
        classes: the class / next token to explain per sequence (N,); None: the predicted ones.
        steps: integrated-gradients points; baseline: B as a (H,) vector (None: zeros).

    Raises:
        ValueError: an unknown method, logits that are neither (N, classes) nor (N, L, vocab), target
            classes out of range, an embedding output that is not (N, L, H).
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown token saliency method {unknown[0]!r}: choose from {', '.join(METHODS)}")
    with side_effect_free(model, mask), torch.enable_grad():
        tap = _EmbeddingTap(None)
        with _hooked(embedding, tap):
            raw = forward()
        leaf = tap.checked(mask)
        per_class, positions = explained_logits(raw, mask)
        predicted = per_class.detach().argmax(dim=1)
        chosen = predicted if classes is None else targets_mod.resolve_classes(per_class, classes)
        scores = per_class.gather(1, chosen[:, None]).squeeze(1)
        gradient = _gradient(scores, leaf)
        values = {}
        keep = mask.to(leaf.dtype)
        if "grad_x_input" in methods:
            values["grad_x_input"] = (gradient * leaf.detach()).sum(-1) * keep
        if "integrated_gradients" in methods:
            ig = _integrated(forward, embedding, mask, leaf.detach(), chosen, steps, baseline)
            values["integrated_gradients"] = ig * keep
    probability = torch.softmax(per_class.detach().float(), dim=1).gather(1, predicted[:, None]).squeeze(1)
    return TokenExplanation(
        attributions={m: values[m].detach().float().cpu() for m in methods},
        task=CLASSIFICATION if positions is None else NEXT_TOKEN,
        targets=chosen.cpu(),
        predicted=predicted.cpu(),
        probability=probability.cpu(),
        positions=None if positions is None else positions.cpu(),
        scores=scores.detach().float().cpu(),
    )


def compute_token_saliency(
    model: nn.Module,
    inputs: Any,
    targets: Any = None,
    *,
    method: str = "grad_x_input",
    attention_mask: Optional[torch.Tensor] = None,
    embedding: Any = None,
    steps: int = 16,
    baseline: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Token saliency of a batch of sequences, without a writer: (N, L) float32, signed, 0 at padding.

    Args:
        model: a sequence classifier (logits (N, classes)) or a language model (logits (N, L, vocab):
            the next-token logit at each sequence's last non-padding position is explained).
        inputs: a dict of model inputs with `input_ids` (the model is called as `model(**inputs)`; its
            `attention_mask` marks the real tokens), or token ids (N, L) (called as `model(ids)`).
        targets: None (the predicted class / next token), an int, or one per sequence.
        method: "grad_x_input" or "integrated_gradients" (see the module docstring).
        attention_mask: (N, L) real tokens, for token-id inputs with padding (default: all real).
        embedding: the input embedding module or its name (default: `find_embedding`).
        steps, baseline: integrated gradients: path points, and B as a (H,) vector (None: zeros).

    Raises:
        ValueError: as `explain_tokens`, or inputs without integer `input_ids`.
    """
    ids = inputs.get("input_ids") if isinstance(inputs, Mapping) else inputs
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype.is_floating_point:
        raise ValueError("inputs must be a dict with integer input_ids (N, L), or token ids (N, L)")
    mask = inputs.get("attention_mask") if isinstance(inputs, Mapping) else attention_mask
    mask = torch.ones_like(ids) if mask is None else (mask != 0).long().to(ids.device)
    _, module = find_embedding(model, embedding)
    classes = None
    if targets is not None:
        classes = torch.as_tensor(targets, device=ids.device).long().reshape(-1)
        if classes.numel() not in (1, len(ids)):
            raise ValueError(f"got {classes.numel()} targets for {len(ids)} sequences: give one, or one each")
        classes = classes.expand(len(ids))

    def forward() -> Any:
        return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)

    with torch.inference_mode(False):
        found = explain_tokens(
            model, forward, module, mask, [method], classes=classes, steps=steps, baseline=baseline
        )
    return found.attributions[method]


def explained_logits(raw: Any, mask: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(the logits explained (N, K), the position they were taken at per sequence or None).

    A model output of (N, classes) is a classifier's; (N, L, vocab) a language model's, read at each
    sequence's last non-padding position (the logits of the token that comes next).
    """
    logits = targets_mod.model_output(raw)  # a tensor, a tuple's first, a dict's (ModelOutput's) logits
    if logits.dim() == 2:
        return logits, None
    if logits.dim() == 3 and logits.shape[:2] == mask.shape:
        index = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        positions = torch.where(mask.bool(), index, torch.full_like(index, -1)).amax(dim=1)
        if bool((positions < 0).any()):
            raise ValueError("a probe sequence has no real token (its attention mask is all 0)")
        rows = torch.arange(len(positions), device=logits.device)
        return logits[rows, positions.to(logits.device)], positions
    raise ValueError(
        f"token saliency explains logits (N, classes) or (N, L, vocab) with L = {mask.shape[1]} probe"
        f" tokens, got a model output of shape {tuple(logits.shape)}"
    )


class _EmbeddingTap:
    """Forward hook on the embedding: its first output becomes a leaf that requires grad (or, with
    `substitute`, the leaf `substitute(output)`), so dS/dE comes from `torch.autograd.grad`."""

    def __init__(self, substitute: Optional[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.substitute = substitute
        self.leaf: Optional[torch.Tensor] = None

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        if self.leaf is not None:
            return None  # a second call of the embedding in one forward is left alone
        tensor, rebuild = split_output(output)
        kept = tensor.detach()
        kept = kept.clone() if kept.is_inference() else kept
        if self.substitute is not None:
            kept = self.substitute(kept)
        self.leaf = kept.clone().requires_grad_(True)
        return rebuild(self.leaf)

    def checked(self, mask: torch.Tensor) -> torch.Tensor:
        if self.leaf is None:
            raise ValueError("the input embedding layer did not run in the probe's forward")
        if self.leaf.dim() != 3 or tuple(self.leaf.shape[:2]) != tuple(mask.shape):
            raise ValueError(
                f"the input embedding's output must be (N, L, hidden) with (N, L) = {tuple(mask.shape)},"
                f" got {tuple(self.leaf.shape)}: pass token_saliency_layer= (the token embedding)"
            )
        return self.leaf


class _hooked:
    """Context manager: `tap` on `module`'s forward while inside."""

    def __init__(self, module: nn.Module, tap: _EmbeddingTap) -> None:
        self.module, self.tap = module, tap

    def __enter__(self) -> None:
        self.handle = self.module.register_forward_hook(self.tap)

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()


def _gradient(scores: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    if not scores.requires_grad:
        raise ValueError("the explained logits do not depend on the input embedding's output")
    (gradient,) = torch.autograd.grad(scores.sum(), leaf, allow_unused=True)
    return torch.zeros_like(leaf) if gradient is None else gradient


def _integrated(
    forward: Callable[[], Any],
    embedding: nn.Module,
    mask: torch.Tensor,
    inputs: torch.Tensor,
    classes: torch.Tensor,
    steps: int,
    baseline: Optional[torch.Tensor],
) -> torch.Tensor:
    """(N, L): sum over H of (E - B) * the Gauss-Legendre mean of dS/dE on the path B -> E."""
    base = torch.zeros_like(inputs) if baseline is None else baseline.to(inputs).expand_as(inputs)
    diff = inputs - base
    alphas, weights = gauss_legendre(steps)
    total = torch.zeros_like(inputs, dtype=torch.float64)
    for alpha, weight in zip(alphas.tolist(), weights.tolist()):
        tap = _EmbeddingTap(_point(base, diff, alpha))
        with _hooked(embedding, tap):
            raw = forward()
        leaf = tap.checked(mask)
        per_class, _ = explained_logits(raw, mask)
        scores = per_class.gather(1, classes[:, None]).squeeze(1)
        total += weight * _gradient(scores, leaf).double()
    return (diff.double() * total).sum(-1).to(inputs.dtype)


def _point(base: torch.Tensor, diff: torch.Tensor, alpha: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The substitute for the embedding's output at path point `alpha`: B + alpha (E - B)."""

    def substitute(_output: torch.Tensor) -> torch.Tensor:
        return base + alpha * diff

    return substitute
