"""Class-activation maps (Grad-CAM family) for one layer of a live PyTorch model, safe to call while training.

Typical use::

    from tb_plugin_insight.cam import compute_cam, compute_cams

    heat = compute_cam(model, images, "layer4", method="gradcam")            # (N, H, W) in [0, 1]
    cams = compute_cams(model, images, "layer4", methods=["gradcam", "layercam", "eigencam"])
    cams["layercam"], cams.predicted, cams.probability                        # maps + what the model said

Every map is computed at the layer's resolution, passed through ReLU, resized bilinearly to the input's
height and width, and min-max scaled per image (a constant map, e.g. all zeros, becomes all zeros).

The call leaves no trace on the model: see `tb_plugin_insight.explain.capture` for the guarantees
(eval mode restored per module, BatchNorm statistics untouched, no `.backward()` and no parameter `.grad`
written, RNG state restored, hooks removed in `finally`). Gradients are enabled locally, so calling it
under `torch.no_grad()` works (but not under `torch.inference_mode()`). Gradient methods cost about one
forward pass: the backward pass stops at the target layer.

Methods (formulas in `tb_plugin_insight.explain.cam_methods`):

=============== ======================================================== ===========================
name            map                                                      cost
=============== ======================================================== ===========================
gradcam         sum_c mean_hw(G_c) A_c                                   1 forward + short backward
hirescam        sum_c G_c * A_c                                          same
gradcam++       sum_c [sum_hw alpha_c ReLU(G_c)] A_c (2nd/3rd-order)     same
xgradcam        sum_c [sum_hw(G_c A_c) / sum_hw(A_c)] A_c                same
layercam        sum_c ReLU(G_c) * A_c                                    same
eigencam        A projected on its first principal component             1 forward, no gradient
eigengradcam    G * A projected on its first principal component         1 forward + short backward
scorecam        sum_c softmax_c(S(x * upsampled A_c)) A_c                + N*C masked forwards
ablationcam     sum_c [(S - S with A_c zeroed) / S] A_c                  + N*C ablated forwards
fullgrad        |x dS/dx| + sum over biases b of |b dS/dz| (no layer)    own forward + full backward
=============== ======================================================== ===========================

A is the target layer's activation, G the gradient of the explained score S with respect to it.
FullGrad needs no target layer (`target_layer=None` when it is the only method; with other methods it
ignores the layer): it sums the input term and one term per convolution/BatchNorm bias, each scaled per
channel, at the input's resolution (see `tb_plugin_insight.explain.fullgrad`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional, Union, cast

import torch
from torch import nn

from tb_plugin_insight import validate
from tb_plugin_insight.explain import cam_methods, fullgrad, layouts
from tb_plugin_insight.explain import targets as targets_mod
from tb_plugin_insight.explain.capture import (
    Captured,
    LayerSpec,
    capture,
    forward_substituted,
    resolve_layer,
    side_effect_free,
)
from tb_plugin_insight.explain.targets import TargetSpec

__all__ = ["METHODS", "GRADIENT_METHODS", "LAYERLESS_METHODS", "CamResult", "compute_cam", "compute_cams"]

ReshapeTransform = Callable[[torch.Tensor], torch.Tensor]

#: Every method name, in the order the tab lists them.
METHODS: tuple[str, ...] = (
    "gradcam",
    "hirescam",
    "gradcam++",
    "xgradcam",
    "layercam",
    "eigencam",
    "eigengradcam",
    "scorecam",
    "ablationcam",
    "fullgrad",
)
#: Methods that explain the whole network rather than a target layer.
LAYERLESS_METHODS: frozenset[str] = frozenset({"fullgrad"})
#: Methods that need the gradient of the target score (all computed from one forward together).
GRADIENT_METHODS: frozenset[str] = cam_methods.GRADIENT_METHODS

_Scorer = Callable[[Any, torch.Tensor], torch.Tensor]


class CamResult(dict):
    """Maps `method name -> (N, H, W)` CAMs, plus what the model predicted on the same forward pass.

    Attributes:
        output: the explained model output (N, ...) (see `explain.targets.model_output`), detached.
        target_score: (N,) the raw score each map explains.
        target_class: (N,) the class each map explains, or None for callable targets.
        predicted: (N,) argmax class, or None when the output is not (N, classes).
        probability: (N,) softmax probability of the predicted class, or None likewise.
        target_probability: (N,) softmax probability of `target_class`, or None.
        raw_range: method -> (N, 2) min and max of each map after ReLU, before the per-image scaling to
            [0, 1] (lets a viewer put all images of a batch on one shared scale).
        layout: how the layer's output was read: "nchw", "nhwc", "tokens", "custom" (reshape_transform),
            or "" (no layer: fullgrad alone); `layout_description` says it in words.
    """

    def __init__(
        self,
        maps: dict[str, torch.Tensor],
        *,
        output: torch.Tensor,
        target_score: torch.Tensor,
        target_class: Optional[torch.Tensor],
    ) -> None:
        super().__init__(maps)
        self.output = output
        self.target_score = target_score
        self.target_class = target_class
        self.predicted: Optional[torch.Tensor] = None
        self.probability: Optional[torch.Tensor] = None
        self.target_probability: Optional[torch.Tensor] = None
        self.raw_range: dict[str, torch.Tensor] = {}
        self.layout = ""
        self.layout_description = ""
        if output.dim() == 2 and output.shape[1] > 0:
            probabilities = torch.softmax(output.float(), dim=1)
            self.probability, self.predicted = probabilities.max(dim=1)
            if target_class is not None:
                self.target_probability = probabilities.gather(1, target_class[:, None]).squeeze(1)


def compute_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    target_layer: Optional[LayerSpec],
    method: str = "gradcam",
    targets: TargetSpec = None,
    reshape_transform: Optional[ReshapeTransform] = None,
    *,
    batch_size: int = 32,
    layout: Optional[str] = None,
) -> torch.Tensor:
    """Class-activation maps of one method for a batch of images.

    Args:
        model: the network; left exactly as it was (modes, buffers, `.grad`, RNG state, hooks).
        inputs: images (N, C, H, W); they need not require grad. A single image needs `unsqueeze(0)`.
        target_layer: a module of `model` or its qualified name (as in `model.named_modules()`). Its output
            must be (N, C, h, w), channels last (N, h, w, C), transformer tokens (N, T, C) whose last
            T - k tokens form a grid of the images' aspect ratio after k <= 16 leading class, distillation
            or register tokens, or anything `reshape_transform` turns into (N, C, h, w). The layout is
            inferred (see `tb_plugin_insight.explain.layouts`) unless `layout` says it. None (or anything:
            it is ignored) for fullgrad, which explains the whole network.
        method: one of `METHODS`.
        targets: what to explain per sample. None: the predicted class; an int: that class for all; a
            sequence/tensor of ints: one class per sample; a callable `output -> (N,)` scores. A class
            explains its raw (pre-softmax) score. A model returning a tuple/list is explained through its
            first element, a dict through "logits" (else its first value). For scorecam/ablationcam a
            callable is also called on batches of perturbed copies, so it must score each row on its own.
        reshape_transform: callable turning the layer output into (N, C, h, w); it must only rearrange
            elements (it is applied to gradients too).
        batch_size: perturbed inputs per forward for scorecam and ablationcam (bounds their memory).
        layout: "nchw", "nhwc" or "tokens" to declare the layer output's layout instead of inferring it
            (ignored when `reshape_transform` is given).

    Returns:
        float32 (N, H, W) in [0, 1] on the inputs' device.

    Raises:
        ValueError: unknown method or layer name (close matches listed), inputs without a batch dimension,
            a layer output that cannot be made spatial, a class index out of range.

    Example::

        heat = compute_cam(model, images[:8], "features.relu_last", method="gradcam++")
        full = compute_cam(model, images[:8], None, method="fullgrad")
    """
    return compute_cams(
        model,
        inputs,
        target_layer,
        [method],
        targets,
        reshape_transform,
        batch_size=batch_size,
        layout=layout,
    )[_canonical(method)]


def compute_cams(
    model: nn.Module,
    inputs: torch.Tensor,
    target_layer: Optional[LayerSpec],
    methods: Union[str, Sequence[str]] = ("gradcam",),
    targets: TargetSpec = None,
    reshape_transform: Optional[ReshapeTransform] = None,
    *,
    batch_size: int = 32,
    upsample: bool = True,
    layout: Optional[str] = None,
) -> CamResult:
    """Several methods on one layer, sharing one forward pass and one gradient computation.

    All of gradcam, hirescam, gradcam++, xgradcam, layercam, eigencam and eigengradcam come from the same
    single forward (and the same backward, which stops at the target layer); scorecam and ablationcam add
    their perturbed forwards, fullgrad its own forward and full backward. Arguments are those of
    `compute_cam`; with `upsample=False` the maps stay at the layer's own resolution (ReLU and min-max
    scaling still applied), which is what InsightWriter stores: the browser upsamples them bilinearly, and
    a 7x7 map costs 49 bytes instead of 50k at 224x224. With fullgrad among the methods all maps come at
    the input's resolution (fullgrad's map has the input's detail).

    Returns:
        A `CamResult`: a dict `method -> (N, H, W)` whose attributes give the model's predicted class and
        its softmax probability per sample (`predicted`, `probability`) and what was explained.

    Example::

        cams = compute_cams(model, images, "layer4", methods=["gradcam", "layercam"])
        for heat, cls, p in zip(cams["gradcam"], cams.predicted, cams.probability): ...
    """
    chosen = check_methods(methods)
    _check_inputs(inputs)
    validate.int_option(batch_size, f"batch_size must be a positive int, got {batch_size!r}")
    layouts.check_layout(layout)
    if all(m in LAYERLESS_METHODS for m in chosen):
        with side_effect_free(model, inputs):
            return cams_from_capture(model, inputs, None, None, chosen, targets, None, batch_size, upsample)
    if target_layer is None:
        raise ValueError(
            f"{', '.join(m for m in chosen if m not in LAYERLESS_METHODS)} need a target_layer (a module or"
            " its qualified name); only fullgrad works without one"
        )
    name, layer = resolve_layer(model, target_layer)
    with side_effect_free(model, inputs):
        captured = capture(
            model, inputs, layer, name, targets, gradient=any(m in GRADIENT_METHODS for m in chosen)
        )
        return cams_from_capture(
            model, inputs, name, captured, chosen, targets, reshape_transform, batch_size, upsample, layout
        )


def cams_from_capture(
    model: nn.Module,
    inputs: torch.Tensor,
    target_layer: Optional[LayerSpec],
    captured: Optional[Captured],
    methods: Sequence[str],
    targets: TargetSpec = None,
    reshape_transform: Optional[ReshapeTransform] = None,
    batch_size: int = 32,
    upsample: bool = True,
    layout: Optional[str] = None,
) -> CamResult:
    """`compute_cams` from a capture already made (`explain.capture.capture`, or a probe pass shared
    with other maps, see `capture/probe_pass.py`): the maps of `methods` (canonical names, checked),
    plus the extra forwards of scorecam/ablationcam and fullgrad's own pass. Call inside
    `side_effect_free(model, inputs)`; `captured.gradient` must be set when a method of GRADIENT_METHODS
    is asked for. `target_layer` and `captured` may be None when only LAYERLESS_METHODS are asked for.

    With fullgrad among the methods every map comes at the input's resolution, also with
    `upsample=False` (its map has the input's detail, and all maps of a result share one size)."""
    chosen = check_methods(methods)
    layered = [m for m in chosen if m not in LAYERLESS_METHODS]
    full = fullgrad.fullgrad(model, inputs, targets) if len(layered) < len(chosen) else None
    input_size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
    raw: list[torch.Tensor] = []
    if layered:
        if captured is None or target_layer is None:
            raise ValueError(f"{', '.join(layered)} need a target layer and its capture")
        name, layer = resolve_layer(model, target_layer)
        run = _Run(model, inputs, layer, name, captured, targets, (reshape_transform, layout), batch_size)
        output, scores, classes = captured.output, run.scores, run.classes
        layer_maps = torch.stack([run.layer_map(method) for method in layered])  # (methods, N, h, w)
        own = (int(layer_maps.shape[-2]), int(layer_maps.shape[-1]))
        size = input_size if upsample or full is not None else own
        raw.append(cam_methods.resize(torch.relu(layer_maps.flatten(0, 1).float()), size))
    else:
        assert full is not None
        output, scores, size = full.output, full.scores, input_size
        classes = None if _is_callable(targets) else targets_mod.resolve_classes(output, targets)
    if full is not None:
        raw.append(full.raw)
    order = layered + [m for m in chosen if m in LAYERLESS_METHODS]
    resized = torch.cat(raw)
    low, high = torch.aminmax(resized.flatten(1), dim=1)  # the range the scaling below removes
    maps = cam_methods.scale_to_unit_(resized).view(len(order), len(inputs), *size)
    ranges = torch.stack([low, high], dim=1).view(len(order), len(inputs), 2)
    by_method = dict(zip(order, maps.unbind(0)))
    result = CamResult(
        {m: by_method[m] for m in chosen}, output=output, target_score=scores, target_class=classes
    )
    range_of = dict(zip(order, ranges.unbind(0)))
    result.raw_range = {m: range_of[m] for m in chosen}
    if layered:
        result.layout, result.layout_description = run.layout
    return result


class _Run:
    """Everything one `compute_cams` call derives from its single capture, shared by all methods."""

    def __init__(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        layer: nn.Module,
        name: str,
        captured: Captured,
        targets: TargetSpec,
        arrangement: tuple[Optional[ReshapeTransform], Optional[str]],
        batch_size: int,
    ) -> None:
        self.model, self.inputs, self.layer, self.name = model, inputs, layer, name
        self.captured, self.batch_size = captured, batch_size
        self.size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
        self.classes = (
            None if _is_callable(targets) else targets_mod.resolve_classes(captured.output, targets)
        )
        scores = captured.scores
        self.scores = (
            targets_mod.target_scores(captured.output, targets).detach() if scores is None else scores
        )
        self.scorer = _scorer(targets, self.classes)
        reshape_transform, layout = arrangement
        self.layout = _layout_of(tuple(captured.activation.shape), self.size, layer, arrangement)
        self.spatial = cam_methods.spatial_transform(
            tuple(captured.activation.shape),
            name,
            reshape_transform,
            layout=layout,
            image=self.size,
            module=layer,
        )
        self.activation = self.spatial(captured.activation).float()
        gradient = captured.gradient
        self.gradient = None if gradient is None else self.spatial(gradient).float()

    def layer_map(self, method: str) -> torch.Tensor:
        """The method's (N, h, w) map at the layer's resolution, before ReLU and scaling."""
        a = self.activation
        if method in cam_methods.FROM_CAPTURE:
            # eigencam reads no gradient; the gradient methods' capture always has one
            return cam_methods.FROM_CAPTURE[method](a, cast(torch.Tensor, self.gradient))
        if method == "scorecam":
            masked = _masked_scores(self.model, self.inputs, a, self.scorer, self.batch_size)
            return cam_methods.weighted_sum(cam_methods.scorecam_weights(masked), a)
        ablated = _ablated_scores(
            self.model,
            self.inputs,
            self.layer,
            self.name,
            self.captured.activation,
            self.spatial,
            self.scores,
            self.scorer,
            self.batch_size,
        )
        return cam_methods.weighted_sum(cam_methods.ablationcam_weights(self.scores.float(), ablated), a)


def _layout_of(
    shape: tuple[int, ...],
    image: tuple[int, int],
    layer: nn.Module,
    arrangement: tuple[Optional[ReshapeTransform], Optional[str]],
) -> tuple[str, str]:
    """(layout name, words) of how the layer output is read (see `CamResult.layout`)."""
    if arrangement[0] is not None:
        return "custom", "laid out by reshape_transform"
    found = layouts.infer(shape, image, layer, arrangement[1])
    return ("", "") if found is None else (found.name, found.describe())


def _canonical(method: str) -> str:
    if not isinstance(method, str):
        raise TypeError(f"a CAM method is named by a string, got {type(method).__name__}")
    key = method.lower().replace("-", "").replace("_", "").replace(" ", "")
    key = {"gradcamplusplus": "gradcam++", "gradcampp": "gradcam++"}.get(key, key)
    if key not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose from {', '.join(METHODS)}")
    return key


def check_methods(methods: Union[str, Sequence[str]]) -> list[str]:
    names = [methods] if isinstance(methods, str) else list(methods)
    if not names:
        raise ValueError(f"give at least one CAM method, from {', '.join(METHODS)}")
    return list(dict.fromkeys(_canonical(m) for m in names))


def _check_inputs(inputs: Any) -> None:
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a tensor of images (N, C, H, W), got {type(inputs).__name__}")
    if inputs.dim() == 3:
        raise ValueError(
            f"inputs of shape {tuple(inputs.shape)} have no batch dimension: pass images as (N, C, H, W),"
            " e.g. image.unsqueeze(0)"
        )
    if inputs.dim() != 4 or inputs.shape[0] == 0:
        raise ValueError(
            f"inputs must be a non-empty batch of images (N, C, H, W), not {tuple(inputs.shape)}"
        )


def _is_callable(targets: TargetSpec) -> bool:
    return callable(targets) and not isinstance(targets, torch.Tensor)


def _scorer(targets: TargetSpec, classes: Optional[torch.Tensor]) -> _Scorer:
    """Scores of a perturbed batch whose row j comes from sample `samples[j]`."""

    def score(raw: Any, samples: torch.Tensor) -> torch.Tensor:
        output = targets_mod.model_output(raw)
        if classes is None:
            return targets_mod.target_scores(output, targets).float()
        if output.dim() != 2 or output.shape[0] != samples.numel():
            raise ValueError(
                f"expected ({samples.numel()}, classes) outputs for a perturbed batch,"
                f" got {tuple(output.shape)}"
            )
        return output.gather(1, classes[samples][:, None]).squeeze(1).float()

    return score


def _masked_scores(
    model: nn.Module, inputs: torch.Tensor, activation: torch.Tensor, score: _Scorer, batch_size: int
) -> torch.Tensor:
    """(N, C) target scores of each image multiplied by each of its upsampled, min-max scaled channels.

    A constant channel (often an all-zero one after a ReLU) scales to an all-zero mask, so every such
    channel of an image has the same masked input, all zeros: one of them is run and stands for the rest.
    """
    n, c = activation.shape[:2]
    size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
    flat = activation.flatten(2)
    constant = flat.amax(dim=2) == flat.amin(dim=2)  # (N, C)
    stand_in = constant & (constant.cumsum(dim=1) == 1)  # the first constant channel of each image
    result = torch.zeros(n, c, device=activation.device)
    for pairs in (~constant | stand_in).flatten().nonzero().squeeze(1).split(batch_size):
        samples, channels = pairs // c, pairs % c
        masks = cam_methods.scale_to_unit_(cam_methods.resize(activation[samples, channels], size))
        with torch.no_grad():
            raw = model(inputs[samples.to(inputs.device)] * masks[:, None].to(inputs))
        result.view(-1)[pairs] = score(raw, samples).to(result)
    return torch.where(constant, (result * stand_in).sum(dim=1, keepdim=True), result)


def _ablated_scores(
    model: nn.Module,
    inputs: torch.Tensor,
    layer: nn.Module,
    name: str,
    raw_activation: torch.Tensor,
    spatial: ReshapeTransform,
    scores: torch.Tensor,
    score: _Scorer,
    batch_size: int,
) -> torch.Tensor:
    """(N, C) target scores with each channel of the target layer's output set to zero, one at a time.

    Channels that are all zero are skipped (ablating them changes nothing). Fast path: one image goes in
    and the target layer's hook hands on `B` ablated copies, so the layers before the target run once per
    batch instead of `B` times. That is only right when the rest of the
    network treats rows independently and does not rely on the input's batch size; it is checked on the
    first batch with an unablated reference row, and the input is repeated `B` times otherwise.
    """
    sample_shape = tuple(raw_activation.shape[1:])
    elements = cam_methods.channel_elements(sample_shape, spatial).to(raw_activation.device)
    n = raw_activation.shape[0]
    flat = raw_activation.reshape(n, -1)
    # zeroing a channel that is already all zero changes nothing: it keeps the unablated score
    result = scores.float().to(raw_activation.device)[:, None].repeat(1, elements.shape[0])
    active = (flat[:, elements] != 0).any(dim=2)  # (N, C)
    expand: Optional[bool] = None
    for i in range(n):
        for channels in active[i].nonzero().squeeze(1).split(batch_size):
            rows = flat[i].repeat(channels.numel(), 1).scatter_(1, elements[channels], 0.0)
            if expand is None:
                trial = _try_expanded(model, inputs, i, layer, name, flat[i], rows, scores[i], score)
                expand = trial is not None
                if trial is not None:
                    result[i, channels] = trial.to(result)
                    continue
            image = inputs[i : i + 1]
            if not expand:
                image = image.expand(rows.shape[0], *inputs.shape[1:])
            ablated = rows.reshape(rows.shape[0], *sample_shape)
            raw = forward_substituted(model, image, layer, name, _substitute_with(ablated))
            samples = torch.full((rows.shape[0],), i, dtype=torch.long, device=raw_activation.device)
            result[i, channels] = score(raw, samples).to(result)
    return result


def _try_expanded(
    model: nn.Module,
    inputs: torch.Tensor,
    sample: int,
    layer: nn.Module,
    name: str,
    reference: torch.Tensor,
    rows: torch.Tensor,
    expected: torch.Tensor,
    score: _Scorer,
) -> Optional[torch.Tensor]:
    """Scores of `rows` fed on from the layer's output for image `sample`, or None if that is not valid.

    Valid means the model returns one score per row and the unablated reference row gets the score of
    the normal forward.
    """
    batch = torch.cat([reference[None], rows])
    samples = torch.full((batch.shape[0],), sample, dtype=torch.long, device=batch.device)
    image = inputs[sample : sample + 1]
    try:
        raw = forward_substituted(
            model, image, layer, name, lambda t: batch.reshape(batch.shape[0], *t.shape[1:]).to(t)
        )
        got = score(raw, samples)
    except (RuntimeError, ValueError, IndexError):
        return None  # the repeated-input path reproduces any genuine error
    expected = expected.float().to(got.device)
    if got.shape != (batch.shape[0],):
        return None
    close = torch.isclose(got[0], expected, rtol=1e-3, atol=1e-4 * (1.0 + float(expected.abs())))
    return got[1:] if bool(close) else None


def _substitute_with(values: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A substitute for a layer's output: `values`, on the output's device and dtype."""

    def substitute(output: torch.Tensor) -> torch.Tensor:
        return values.to(output)

    return substitute
