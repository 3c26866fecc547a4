"""Input saliency: which input pixels the score of a class (or any per-sample score) is sensitive to.

Public API:
    compute_saliency(model, inputs, method, targets, *, signed=False, **options)
        (N, H, W) maps in [0, 1] for image batches (N, C, H, W); the signed attribution with `signed=True`.
    compute_attribution(model, inputs, method, targets, **options)
        The raw signed attribution, same shape as `inputs` (= `compute_saliency(..., signed=True)`).
    saliency_map(attribution, *, percentile=99.0)
        The reduction and normalisation `compute_saliency` applies to an attribution.
    METHODS
        The method names, each with the options it accepts.

Methods (attribution of the target score S(x) of each sample):
    gradient              dS/dx (Simonyan et al., 2013).
    gradient_x_input      x * dS/dx.
    guided_backprop       dS/dx with ReLUs backpropagating only positive gradients (Springenberg et al.,
                          2015); see `tb_plugin_insight.explain.guided` for which ReLUs are covered.
    smoothgrad            mean of dS/dx at x + noise, noise ~ N(0, sigma^2) per pixel with
                          sigma = noise_level * (max(x) - min(x)) per image (Smilkov et al., 2017).
    integrated_gradients  (x - b) * integral over a in [0, 1] of dS/dx at b + a (x - b)
                          (Sundararajan et al., 2017); the attributions sum to S(x) - S(b).
    guided_gradcam        guided_backprop * Grad-CAM of `target_layer` upsampled to the input size
                          (Selvaraju et al., 2017); needs (N, C, H, W) inputs.

Integrated gradients quadrature: the path integral is a `steps`-point rule on [0, 1], Gauss–Legendre by
default (exact for polynomials of degree 2 * steps - 1; nodes are interior, so the baseline itself, where
with a zero baseline every ReLU sits exactly at its kink and torch's relu'(0) = 0, is never evaluated), or
the trapezoid rule. Where the path crosses no ReLU kink the integrand is smooth and 32 points are complete
to ~1e-5 (the tests check < 1%). Each kink crossed is a jump in the integrand, which no fixed rule resolves
better than O(1/steps): on small random ReLU networks with biases the median sample is within ~1% of
S(x) - S(b) at 32 steps, 90% within ~5%, and 128 steps quarter that. Raise `steps` for tighter
completeness at proportional cost.

Guided backprop covers `nn.ReLU` modules (also `inplace=True`) and functional `F.relu`, `F.relu_`,
`torch.relu(_)` and `Tensor.relu(_)` calls made by the forward in the calling thread, through a torch
function mode (`tb_plugin_insight.explain.guided`). When the forward makes no such call (another
activation, TorchScript) a warning is emitted once per model and the result is the plain gradient.

Safety, as the model is the user's live model in the middle of training:
    * Gradients come from `torch.autograd.grad` with respect to a detached copy of the inputs, never
      `.backward()`: parameters' `.grad` are never read or written and the caller's tensor is untouched.
    * Every module's `training` flag is set to False for the computation (eval: BatchNorm uses and does
      not update its running statistics, Dropout is off) and each is put back to its own value in a
      `finally`. Flags are set directly, so overridden `train()` methods do not run.
    * No hooks, no patched modules: guided backprop uses a thread-local torch-function mode that lives only
      for the forward passes of this call (Grad-CAM, for guided_gradcam, registers its hooks within its
      own call and removes them in a `finally`).
    * Gradient is enabled locally (works under `torch.no_grad()` and `torch.inference_mode()`). SmoothGrad
      noise comes from a private `torch.Generator`; the global RNG state (CPU, and the inputs' CUDA device)
      is restored afterwards in case the model's own forward draws from it, so training stays
      bit-identical whether or not saliency was computed.
    * `nn.DataParallel` / `DistributedDataParallel` / `torch.compile` wrappers are unwrapped and the
      computation runs on the wrapped module eagerly, so DDP's reducer, buffer broadcasts and compiled
      graphs are not involved.
    * Work is split so that no forward pass sees more than `batch_size` rows (default: the number of
      inputs), bounding peak memory at one forward+backward of the caller's batch.
"""

from __future__ import annotations

import math
import numbers
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from tb_plugin_insight import validate
from tb_plugin_insight.explain import pooling
from tb_plugin_insight.explain.guided import guided_relus
from tb_plugin_insight.explain.targets import TargetSpec, model_output, predicted_classes, target_scores

__all__ = ["METHODS", "compute_attribution", "compute_saliency", "saliency_map", "saliency_map_and_scale"]

_COMMON = ("batch_size",)
METHODS: dict[str, tuple[str, ...]] = {
    "gradient": _COMMON,
    "gradient_x_input": _COMMON,
    "guided_backprop": _COMMON,
    "smoothgrad": (*_COMMON, "noise_level", "samples", "seed"),
    "integrated_gradients": (*_COMMON, "baseline", "steps", "rule"),
    "guided_gradcam": (*_COMMON, "target_layer", "reshape_transform"),
}
IG_RULES = ("gausslegendre", "trapezoid")

_warned_no_relu: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def compute_saliency(
    model: nn.Module,
    inputs: torch.Tensor,
    method: str = "gradient",
    targets: TargetSpec = None,
    *,
    signed: bool = False,
    **options: Any,
) -> torch.Tensor:
    """Saliency maps of `inputs` for `model`'s `targets` scores.

    Args:
        model: the network; left exactly as found (see the module docstring).
        inputs: a batch (N, ...), floating point; images are (N, C, H, W). Not modified.
        method: one of METHODS: gradient, gradient_x_input, guided_backprop, smoothgrad,
            integrated_gradients, guided_gradcam.
        targets: what to explain per sample (see `explain.targets`): None = the predicted class (argmax
            of the output for the unperturbed input), an int class, one class per sample, or a callable
            output -> (N,) scores. For smoothgrad and integrated_gradients the callable is applied to the
            outputs of noisy / interpolated copies, in batches of up to `batch_size` rows, so each score
            must depend on its own row only.
        signed: False (default) returns `saliency_map(attribution)`; True returns the raw signed
            attribution with the shape of `inputs` (same as `compute_attribution`).
        options: per method (an option the method does not take raises TypeError):
            batch_size (all): most rows in one forward pass; default N, the size of `inputs`.
            noise_level (smoothgrad): noise sigma as a fraction of each image's value range; 0.15.
            samples (smoothgrad): noisy copies per image; 16.
            seed (smoothgrad): seed of the private noise generator; 0, so maps are reproducible and
                differences between training steps come from the model, not from the noise.
            baseline (integrated_gradients): None (zeros), a float, or a tensor broadcastable to
                `inputs` (e.g. the per-channel mean as (C, 1, 1)).
            steps (integrated_gradients): points of the path integral; 32.
            rule (integrated_gradients): "gausslegendre" (default) or "trapezoid".
            target_layer (guided_gradcam, required): the module, or its name in `model.named_modules()`,
                whose Grad-CAM weights the guided backprop.
            reshape_transform (guided_gradcam): passed to `compute_cam` for token-shaped layers.

    Returns:
        Without `signed`: for (N, C, H, W) inputs, (N, H, W) float maps in [0, 1]; see `saliency_map`.
        With `signed=True`: the attribution, shaped and typed like `inputs`.

    Raises:
        TypeError / ValueError naming the fix for a bad model, input, method, option or target.
    """
    if not isinstance(signed, bool):
        raise TypeError(f"signed must be True or False, got {signed!r}")
    attribution = compute_attribution(model, inputs, method, targets, **options)
    return attribution if signed else saliency_map(attribution)


def saliency_map(attribution: torch.Tensor, *, percentile: float = 99.0) -> torch.Tensor:
    """Per-sample maps in [0, 1] from a signed attribution (N, ...).

    Channel reduction: for (N, C, H, W) the map is the max over channels of |attribution| (Simonyan et
    al., 2013), so a pixel is salient if any of its channels is; other ranks keep their shape (|a|).
    Normalisation: each sample's map is divided by its own `percentile`-th percentile (nearest rank) and
    clipped to [0, 1]. Gradient maps are heavy-tailed; scaling by the maximum lets a few pixels turn the
    rest black, scaling by the 99th percentile (as in the SmoothGrad paper's figures) keeps the contrast.
    If that percentile is 0 (fewer than 1% of pixels non-zero) the maximum is used; an all-zero map stays
    zero. Returns float32 (float64 for float64 input).
    """
    return saliency_map_and_scale(attribution, percentile=percentile)[0]


def saliency_map_and_scale(
    attribution: torch.Tensor, *, percentile: float = 99.0, max_side: Optional[int] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`saliency_map(attribution)` and the (N,) value each sample's map was divided by (its percentile,
    else its maximum, else 1): map * scale recovers the unscaled map below the clip.

    With `max_side`, (N, H, W) maps larger than it are average-pooled (capture/pooling.py) after the
    channel reduction and before the normalisation, so the percentile is that of the stored map."""
    if not isinstance(attribution, torch.Tensor) or attribution.dim() < 2:
        raise ValueError("attribution must be a tensor (N, ...) with a batch dimension")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    a = attribution.detach().abs()
    a = a.to(torch.promote_types(a.dtype, torch.float32))
    if a.dim() == 4:
        a = a.amax(dim=1)
    if a.dim() == 3:
        a = pooling.pool_2d(a, pooling.pool_factor(max(a.shape[1:]), max_side))
    flat = a.flatten(1)
    if flat.shape[1] == 0:
        return a, a.new_ones(a.shape[0])
    k = min(flat.shape[1], max(1, math.ceil(percentile / 100.0 * flat.shape[1])))
    scale = flat.kthvalue(k, dim=1).values
    scale = torch.where(scale > 0, scale, flat.amax(dim=1))
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (a / scale.view(-1, *([1] * (a.dim() - 1)))).clamp_(0.0, 1.0), scale


def compute_attribution(
    model: nn.Module,
    inputs: torch.Tensor,
    method: str = "gradient",
    targets: TargetSpec = None,
    **options: Any,
) -> torch.Tensor:
    """The signed attribution of `method`, shaped and typed like `inputs`.

    Arguments and options as in `compute_saliency`. For integrated_gradients the attributions of each
    sample sum to S(x) - S(baseline) up to the quadrature error (see the module docstring).
    """
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}: choose one of {', '.join(METHODS)}")
    unknown = sorted(set(options) - set(METHODS[method]))
    if unknown:
        raise TypeError(
            f"method {method!r} does not take option(s) {', '.join(unknown)}; it takes"
            f" {', '.join(METHODS[method])}"
        )
    model = _unwrap(model)
    _check_inputs(inputs)
    n = inputs.shape[0]
    batch_size = _positive_int(options.get("batch_size", n), "batch_size")
    spec = _per_sample_targets(targets, n, inputs.device)

    if method == "guided_gradcam":
        return _guided_gradcam(model, inputs, spec, targets, batch_size, options)

    flags = [(m, m.training) for m in model.modules()]
    devices = [inputs.device.index or 0] if inputs.device.type == "cuda" else []
    try:
        for m, _ in flags:
            m.training = False
        with torch.random.fork_rng(devices=devices), torch.inference_mode(False), torch.enable_grad():
            x = inputs.detach().clone()
            if method in ("gradient", "gradient_x_input", "guided_backprop"):
                grad = _path_gradients(
                    model, x, spec, 1, batch_size, lambda k, i: x[i], guided=method == "guided_backprop"
                )
                return (grad * x if method == "gradient_x_input" else grad).to(inputs.dtype)
            if method == "smoothgrad":
                return _smoothgrad(model, x, spec, batch_size, options).to(inputs.dtype)
            return _integrated_gradients(model, x, spec, batch_size, options).to(inputs.dtype)
    finally:
        for m, flag in flags:
            m.training = flag


# --- methods -------------------------------------------------------------------------------------------


def _smoothgrad(model: nn.Module, x: torch.Tensor, spec: Any, batch_size: int, options: dict) -> torch.Tensor:
    noise_level = _nonnegative_float(options.get("noise_level", 0.15), "noise_level")
    samples = _positive_int(options.get("samples", 16), "samples")
    seed = options.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if spec is None:
        spec = _predicted(model, x, batch_size)
    flat = x.flatten(1)
    sigma = (noise_level * (flat.amax(1) - flat.amin(1))).view(-1, *([1] * (x.dim() - 1)))
    generator = torch.Generator(device=x.device)
    generator.manual_seed(int(seed))
    noise: dict[int, torch.Tensor] = {}

    def rows(k: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        # One (N, ...) draw per sample index k, in order, so results do not depend on batch_size.
        first, last = int(k[0]), int(k[-1])
        for kk in [kk for kk in noise if kk < first]:
            del noise[kk]
        drawn = max(noise, default=first - 1)
        for kk in range(drawn + 1, last + 1):
            noise[kk] = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        eps = torch.cat([noise[int(kk)][i[k == kk]] for kk in torch.unique_consecutive(k)])
        return x[i] + sigma[i] * eps

    weights = torch.full((samples,), 1.0 / samples, dtype=torch.float64)
    return _path_gradients(model, x, spec, samples, batch_size, rows, weights=weights)


def _integrated_gradients(
    model: nn.Module, x: torch.Tensor, spec: Any, batch_size: int, options: dict
) -> torch.Tensor:
    steps = _positive_int(options.get("steps", 32), "steps")
    rule = options.get("rule", "gausslegendre")
    if rule not in IG_RULES:
        raise ValueError(f"unknown integration rule {rule!r}: choose one of {', '.join(IG_RULES)}")
    if rule == "trapezoid" and steps < 2:
        raise ValueError("the trapezoid rule needs steps >= 2")
    baseline = _baseline(options.get("baseline"), x)
    if spec is None:
        spec = _predicted(model, x, batch_size)
    alphas, weights = (gauss_legendre if rule == "gausslegendre" else trapezoid)(steps)
    diff = x - baseline
    shape = (-1, *([1] * (x.dim() - 1)))
    alpha = alphas.to(device=x.device, dtype=x.dtype)

    def rows(k: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return baseline[i] + alpha[k].view(shape) * diff[i]

    return diff * _path_gradients(model, x, spec, steps, batch_size, rows, weights=weights)


def _guided_gradcam(
    model: nn.Module, inputs: torch.Tensor, spec: Any, targets: TargetSpec, batch_size: int, options: dict
) -> torch.Tensor:
    if inputs.dim() != 4:
        raise ValueError(f"guided_gradcam needs image inputs (N, C, H, W), got {tuple(inputs.shape)}")
    if options.get("target_layer") is None:
        raise TypeError("guided_gradcam needs the option target_layer=<module or its name in the model>")
    from tb_plugin_insight.explain.cam import compute_cam  # imported when first needed

    guided = compute_attribution(model, inputs, "guided_backprop", targets, batch_size=batch_size)
    cam_kwargs = {}
    if options.get("reshape_transform") is not None:
        cam_kwargs["reshape_transform"] = options["reshape_transform"]
    with torch.inference_mode(False):  # compute_cam takes gradients; it cannot use inference tensors
        x = inputs.detach().clone()
        cam = compute_cam(model, x, options["target_layer"], method="gradcam", targets=targets, **cam_kwargs)
    cam = cam.detach().to(device=guided.device, dtype=guided.dtype)
    if cam.dim() == 4 and cam.shape[1] == 1:
        cam = cam[:, 0]
    if cam.dim() != 3 or cam.shape[0] != inputs.shape[0]:
        raise RuntimeError(f"compute_cam returned shape {tuple(cam.shape)}, expected (N, h, w)")
    if cam.shape[-2:] != inputs.shape[-2:]:
        cam = F.interpolate(cam[:, None], size=inputs.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return guided * cam[:, None]


# --- quadrature ---------------------------------------------------------------------------------------


def gauss_legendre(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights (float64, weights sum to 1) of the n-point Gauss–Legendre rule on [0, 1].

    Golub–Welsch: the nodes are the eigenvalues of the Jacobi matrix of the Legendre polynomials, the
    weights twice the squared first components of its eigenvectors; exact for polynomials of degree
    2n - 1. The endpoints are never evaluated.
    """
    k = torch.arange(1, n, dtype=torch.float64)
    beta = k / torch.sqrt(4 * k * k - 1)
    nodes, vectors = torch.linalg.eigh(torch.diag(beta, 1) + torch.diag(beta, -1))
    weights = 2 * vectors[0] ** 2
    return (nodes + 1) / 2, weights / 2


def trapezoid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes (including both ends) and weights of the n-point trapezoid rule on [0, 1], n >= 2."""
    weights = torch.full((n,), 1.0 / (n - 1), dtype=torch.float64)
    weights[0] = weights[-1] = 0.5 / (n - 1)
    return torch.linspace(0, 1, n, dtype=torch.float64), weights


# --- the one gradient loop ------------------------------------------------------------------------------


def _path_gradients(
    model: nn.Module,
    x: torch.Tensor,
    spec: Any,
    repeats: int,
    batch_size: int,
    make_rows: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    weights: torch.Tensor | None = None,
    guided: bool = False,
) -> torch.Tensor:
    """sum_k weights[k] * dS_i/dx at make_rows(k, i), for each sample i, over `repeats` points k.

    Rows (k, i) are enumerated k-major and evaluated at most `batch_size` per forward pass.
    """
    n = x.shape[0]
    acc_dtype = torch.promote_types(x.dtype, torch.float32)
    acc = torch.zeros(x.shape, dtype=acc_dtype, device=x.device)
    w = None if weights is None else weights.to(device=x.device, dtype=acc_dtype)
    shape = (-1, *([1] * (x.dim() - 1)))
    relu_calls = 0
    for k, i in _row_chunks(n, repeats, batch_size, x.device):
        leaf = make_rows(k, i).detach().requires_grad_(True)
        fed = leaf.clone()  # not a leaf: a forward may modify its input in place (x.sub_(mean), relu_)
        mode = guided_relus() if guided else None
        if mode is not None:
            with mode:
                out = model(fed)
            relu_calls += mode.calls
        else:
            out = model(fed)
        scores = _differentiable(_scores(out, spec, i, leaf.shape[0]))
        (grad,) = torch.autograd.grad(scores.sum(), leaf, allow_unused=True)
        if grad is None:
            continue  # the scores do not depend on the inputs: their attribution is zero
        grad = grad.to(acc_dtype)
        acc.index_add_(0, i, grad if w is None else grad * w[k].view(shape))
    if guided and relu_calls == 0 and model not in _warned_no_relu:
        _warned_no_relu.add(model)
        warnings.warn(
            f"guided backprop: {type(model).__name__}'s forward made no ReLU call (nn.ReLU, F.relu,"
            " torch.relu, Tensor.relu), so the result is the plain gradient",
            stacklevel=3,
        )
    return acc


def _differentiable(scores: torch.Tensor) -> torch.Tensor:
    if not scores.requires_grad:
        raise RuntimeError(
            "the target scores do not depend differentiably on the inputs: does the model's forward"
            " use torch.no_grad(), .detach() or a non-differentiable step?"
        )
    return scores


# --- one gradient shared with other maps (capture/probe_pass.py) ----------------------------------------

#: Methods whose attribution is one gradient of the target scores with respect to the inputs.
INPUT_GRADIENT_METHODS = ("gradient", "gradient_x_input")


def shares_input_gradient(method: str, options: dict[str, Any], n: int) -> bool:
    """True when `compute_attribution(model, inputs, method, **options)` of n inputs is one gradient of
    all n target scores at once, which a forward shared with other maps can give (`from_input_gradient`)."""
    batch_size = options.get("batch_size", n)
    return method in INPUT_GRADIENT_METHODS and isinstance(batch_size, int) and batch_size >= n


def input_gradient_scores(raw: Any, targets: TargetSpec, n: int, device: torch.device) -> torch.Tensor:
    """The (n,) target scores `compute_attribution` differentiates, from the model's output `raw` of n
    inputs (computed with gradients from a leaf copy of the inputs)."""
    spec = _per_sample_targets(targets, n, device)
    return _differentiable(_scores(raw, spec, torch.arange(n, device=device), n))


def from_input_gradient(method: str, inputs: torch.Tensor, grad: Optional[torch.Tensor]) -> torch.Tensor:
    """`compute_attribution(model, inputs, method)` for INPUT_GRADIENT_METHODS, from the gradient of the
    summed target scores with respect to (a copy of) `inputs` (None: the scores do not depend on them)."""
    acc_dtype = torch.promote_types(inputs.dtype, torch.float32)
    if grad is None:
        grad = torch.zeros(inputs.shape, dtype=acc_dtype, device=inputs.device)
    grad = grad.to(acc_dtype)
    return (grad * inputs.detach() if method == "gradient_x_input" else grad).to(inputs.dtype)


def _row_chunks(
    n: int, repeats: int, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    total = n * repeats
    for start in range(0, total, batch_size):
        r = torch.arange(start, min(start + batch_size, total), device=device)
        yield r // n, r % n


def _scores(out: Any, spec: Any, i: torch.Tensor, rows: int) -> torch.Tensor:
    out = _batch_output(out, rows)
    if isinstance(spec, torch.Tensor):
        spec = spec[i]
    return target_scores(out, spec)


def _batch_output(out: Any, rows: int) -> torch.Tensor:
    out = model_output(out)
    if out.dim() == 0 or out.shape[0] != rows:
        raise ValueError(
            f"the model returned {tuple(out.shape)} for a batch of {rows}: inputs need a leading batch"
            " dimension (for one image use x.unsqueeze(0)), and the output one score row per sample"
        )
    return out


def _predicted(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Predicted class per sample on the unperturbed inputs (for paths that move away from them)."""
    classes = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start : start + batch_size].clone()  # the forward may modify it in place
            classes.append(predicted_classes(_batch_output(model(chunk), chunk.shape[0])))
    return torch.cat(classes)


# --- argument checks ------------------------------------------------------------------------------------


def _unwrap(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and isinstance(
            getattr(model, "_orig_mod", None), nn.Module
        ):
            model = model._orig_mod
        else:
            return model


def _check_inputs(inputs: Any) -> None:
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor batch (N, ...), got {type(inputs).__name__}")
    if not inputs.dtype.is_floating_point:
        raise TypeError(f"inputs must be floating point to take gradients, got {inputs.dtype}: use .float()")
    if inputs.dim() < 2:
        raise ValueError(
            f"inputs of shape {tuple(inputs.shape)} have no batch dimension: pass (N, ...), e.g."
            " x.unsqueeze(0) for one sample"
        )
    if inputs.shape[0] == 0:
        raise ValueError("inputs is an empty batch (N = 0)")


def _per_sample_targets(targets: TargetSpec, n: int, device: torch.device) -> Any:
    """None, an int, a callable, or an (N,) long tensor; range checks happen against the output."""
    if targets is None or (callable(targets) and not isinstance(targets, torch.Tensor)):
        return targets
    if isinstance(targets, bool):
        raise TypeError("targets must be None, an int, a sequence of ints, or a callable; got a bool")
    if isinstance(targets, numbers.Integral):
        return int(targets)
    try:
        classes = torch.as_tensor(targets, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"targets must be None, an int, a sequence of ints, or a callable; got {type(targets).__name__}"
        ) from err
    if classes.dtype.is_floating_point or classes.dtype.is_complex or classes.dtype == torch.bool:
        raise TypeError(f"target classes must be integers, got dtype {classes.dtype}")
    classes = classes.long().reshape(-1)
    if classes.numel() != n:
        raise ValueError(f"got {classes.numel()} targets for a batch of {n}: give one per sample")
    return classes


def _baseline(baseline: Any, x: torch.Tensor) -> torch.Tensor:
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, bool):
        raise TypeError("baseline must be None, a float or a tensor; got a bool")
    if isinstance(baseline, numbers.Real):
        return torch.full_like(x, float(baseline))
    if not isinstance(baseline, torch.Tensor):
        raise TypeError(f"baseline must be None, a float or a tensor, got {type(baseline).__name__}")
    try:
        shape = torch.broadcast_shapes(baseline.shape, x.shape)
    except RuntimeError:
        shape = None
    if shape != x.shape:
        raise ValueError(
            f"baseline of shape {tuple(baseline.shape)} does not broadcast to the inputs"
            f" {tuple(x.shape)}: use the input's shape, one sample's shape, or e.g. (C, 1, 1)"
        )
    return baseline.detach().to(device=x.device, dtype=x.dtype).expand_as(x).clone()


def _positive_int(value: Any, name: str) -> int:
    return validate.int_option(value, f"{name} must be a positive int, got {value!r}")


def _nonnegative_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value) >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)
