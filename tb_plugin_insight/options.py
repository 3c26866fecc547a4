"""Grouped options of `InsightWriter.watch`: one frozen dataclass per capability, each checking itself.

`watch()` keeps its flat keywords (`cam_every=`, `grad_accumulation=`, ...) and takes these as their
grouped twins (`cam=CAM(every=50)`, `gradients=Gradients(update_ratio=False)`). Each field below names
its flat keyword; the two forms are the same option. `resolve` merges them: a flat keyword left at its
default takes the group's value, a group field left at its default takes the flat keyword's value, and
both set to different values is an error naming both.

Checks here need no model (types and ranges); what needs the model (layer names, a dry run on the probe)
is checked by the capability's recorder when `watch()` builds it. This module imports no torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Callable, ClassVar, Optional, Union

from tb_plugin_insight import validate

__all__ = [
    "CAM",
    "FeatureMaps",
    "FeatureVis",
    "Gradients",
    "Histograms",
    "Saliency",
    "TokenSaliency",
    "resolve",
]

TARGETS = ("predicted", "label")
LAYOUTS = ("nchw", "nhwc", "tokens")  # as tb_plugin_insight.explain.layouts.LAYOUTS (no torch import here)


class OptionGroup:
    """Shared behaviour of the option groups: self-checks with the flat keyword names in messages."""

    # field name -> flat keyword of watch()
    FLAT: ClassVar[Mapping[str, str]] = {}

    def __post_init__(self) -> None:
        try:
            self.check()
        except (ValueError, TypeError) as err:
            raise type(err)(f"{type(self).__name__}: {err}") from None

    def check(self) -> None:
        """Raise ValueError/TypeError for a field that can never be valid (messages name the flat keyword)."""


@dataclasses.dataclass(frozen=True)
class CAM(OptionGroup):
    """Class-activation maps of the probe (Grad-CAM and relatives), `watch(..., cam=CAM(...))`.

    Attributes:
        every: `cam_every`: steps between CAMs of the probe (0 = never).
        layer: `cam_layer`: the module (or its qualified name) to explain; None picks the last layer
            with a spatial output and logs its name.
        methods: `cam_methods`: one or several of `tb_plugin_insight.cam.METHODS` (they share one pass).
        target: `cam_target`: "predicted" explains each image's predicted class, "label" its label.
        reshape_transform: `cam_reshape_transform`: a callable taking the layer's output (N, ...) to
            (N, C, H, W), as in pytorch-grad-cam, for layouts no rule can guess; it must only rearrange
            elements (select, reshape, permute), since gradients go through it too.
        layout: `cam_layout`: "nchw", "nhwc" (channels last) or "tokens" (N, T, C) to declare the layer
            output's layout; None infers it (`tb_plugin_insight.explain.layouts`). Without `layer`, the
            automatic choice then takes only layers of that layout.
    """

    every: int = 100
    layer: Any = None
    methods: Union[Sequence[str], str] = ("gradcam",)
    target: str = "predicted"
    reshape_transform: Optional[Callable[[Any], Any]] = None
    layout: Optional[str] = None

    FLAT: ClassVar[Mapping[str, str]] = {
        "every": "cam_every",
        "layer": "cam_layer",
        "methods": "cam_methods",
        "target": "cam_target",
        "reshape_transform": "cam_reshape_transform",
        "layout": "cam_layout",
    }

    def check(self) -> None:
        validate.int_option(
            self.every,
            f"cam_every must be a non-negative int (steps between CAMs, 0 = never), got {self.every!r}",
            low=0,
        )
        validate.choice_option("cam_target", self.target, TARGETS)
        if self.reshape_transform is not None and not callable(self.reshape_transform):
            raise TypeError(
                "cam_reshape_transform must be a callable taking the layer output to (N, C, H, W), got"
                f" {type(self.reshape_transform).__name__}"
            )
        if self.layout is not None:
            validate.choice_option("cam_layout", self.layout, LAYOUTS)


@dataclasses.dataclass(frozen=True)
class Saliency(OptionGroup):
    """Input saliency maps of the probe, `watch(..., saliency=Saliency(...))`.

    Attributes:
        every: `saliency_every`: steps between maps. Default: `cam_every` (100 if that is 0), when
            `methods` is given.
        methods: `saliency_methods`: one or several of `tb_plugin_insight.saliency.METHODS` (default
            "gradient" when only `every` is given; None and no `every`: no saliency).
        target: `saliency_target`: "predicted" or "label"; default: the CAM target.
        options: `saliency_options`: per method, options of `compute_saliency`, e.g.
            `{"smoothgrad": {"samples": 8}}`; guided_gradcam's `target_layer` defaults to the CAM layer.
        max_side: `saliency_max_side`: maps with a side above it are stored average-pooled (before their
            normalisation) by the smallest integer factor that brings both sides within it; None stores
            them at the probe's resolution.
    """

    every: Optional[int] = None
    methods: Union[Sequence[str], str, None] = None
    target: Optional[str] = None
    options: Optional[Mapping[str, Mapping[str, Any]]] = None
    max_side: Optional[int] = 64

    FLAT: ClassVar[Mapping[str, str]] = {
        "every": "saliency_every",
        "methods": "saliency_methods",
        "target": "saliency_target",
        "options": "saliency_options",
        "max_side": "saliency_max_side",
    }

    def check(self) -> None:
        if self.every is not None:
            validate.int_option(
                self.every, f"saliency_every must be a positive int (steps between maps), got {self.every!r}"
            )
        if self.target is not None:
            validate.choice_option("saliency target", self.target, TARGETS)
        _check_max_side("saliency_max_side", self.max_side)

    @property
    def enabled(self) -> bool:
        return self.every is not None or bool(self.methods)


@dataclasses.dataclass(frozen=True)
class FeatureMaps(OptionGroup):
    """Feature maps of the probe and filters of convolutions, `watch(..., feature_maps=FeatureMaps(...))`.

    Attributes:
        every: `maps_every`: steps between feature maps (0 = never). The first convolution's filters are
            recorded at the same steps (without a probe: only when `filters_layers` is given).
        k: `maps_k`: channels per layer: the `k` most active on the probe (highest mean activation at the
            first maps step), kept for the whole run.
        layers: `maps_layers`: the layers with feature maps, selected like `watch(layers=...)`. Default:
            the watched layers when `layers` is given; otherwise the last layer of each stage (of
            consecutive layers whose maps have the same size, the last one). Outputs that are not (N, C),
            (N, C, L), (N, L, C), (N, C, H, W) or (N, C, D, H, W) are skipped.
        channels: `maps_channels`: channels chosen by index per layer, e.g. `{"features.3": [0, 5, 9]}`.
        depth: `maps_depth`: for 3-D layers, the depth slice shown: an int, or `{"layer": index}`
            (default: the middle slice).
        filters_layers: `filters_layers`: further convolutions whose weights are recorded as image tiles.
        max_side: `maps_max_side`: maps with a side above it are average-pooled on the device, before
            quantisation, by the smallest integer factor that brings both sides within it (32: a 56 x 56
            stem map is stored as 28 x 28). None stores full resolution.
        bits: `maps_bits`: precision of the stored maps, 1..8 (default 6: 52 levels per map's range,
            within (max - min) / 102 of the value; see `capture/quantize.py`). Filters keep 8 bits.
    """

    every: int = 100
    k: int = 16
    layers: Any = None
    channels: Optional[Mapping[str, Sequence[int]]] = None
    depth: Any = None
    filters_layers: Optional[Sequence[str]] = None
    max_side: Optional[int] = 32
    bits: int = 6

    FLAT: ClassVar[Mapping[str, str]] = {
        "every": "maps_every",
        "k": "maps_k",
        "layers": "maps_layers",
        "channels": "maps_channels",
        "depth": "maps_depth",
        "filters_layers": "filters_layers",
        "max_side": "maps_max_side",
        "bits": "maps_bits",
    }

    def check(self) -> None:
        validate.int_option(
            self.every,
            "maps_every must be a non-negative int (steps between feature maps, 0 = never),"
            f" got {self.every!r}",
            low=0,
        )
        validate.int_option(self.k, f"maps_k must be a positive int (channels per layer), got {self.k!r}")
        _check_max_side("maps_max_side", self.max_side)


@dataclasses.dataclass(frozen=True)
class Gradients(OptionGroup):
    """Gradient flow from the user's own backward, `watch(..., gradients=Gradients(...))`.

    Attributes:
        enabled: `grads`: record, at the recorded steps, per layer the norm, mean |g| and max |g| of its
            parameters' gradients and of the gradient into its output, NaN/Inf counts, the weight norm and
            the update ratio. Nothing is recomputed and `.grad` is only read; steps under `no_grad()` or
            `inference_mode()` are skipped quietly. The values are those before any clipping.
        accumulation: `grad_accumulation`: micro-batches per optimizer step. The record of step s then
            holds the gradients accumulated over the micro-batches of s's group (read after the last one's
            backward). Make `every` a multiple of it.
        scaler: `grad_scaler`: the `torch.amp.GradScaler` (or any object with `get_scale()`) that scales
            the loss: statistics are divided by its scale, so they show unscaled values.
        update_ratio: `update_ratio`: False skips the update ratio ||w_after - w_before|| / ||w_before||
            and the copy it needs: whole parameters up to 4096 elements, a fixed sample of about 4096
            elements of larger ones (error about 1% for dense updates; see `capture/weight_sample.py`).
        across_ranks: `grad_across_ranks`: in a job with several ranks (torch.distributed initialised),
            read `.grad` just before the optimizer step and reduce the statistics across the ranks
            (whole parameters under DDP and FSDP2, and the gradient noise scale; one collective per
            recorded step): every rank must then call `watch` and `close` (`ranks="first"` keeps the
            other ranks silent). False: each rank describes what it holds, with no collective (for a
            watch made on one rank only). See docs/guides/distributed.md.
    """

    enabled: bool = True
    accumulation: int = 1
    scaler: Any = None
    update_ratio: bool = True
    across_ranks: bool = True

    FLAT: ClassVar[Mapping[str, str]] = {
        "enabled": "grads",
        "accumulation": "grad_accumulation",
        "scaler": "grad_scaler",
        "update_ratio": "update_ratio",
        "across_ranks": "grad_across_ranks",
    }

    def check(self) -> None:
        validate.flag_option("grads", self.enabled)
        validate.int_option(
            self.accumulation,
            "grad_accumulation must be a positive int (micro-batches per optimizer step),"
            f" got {self.accumulation!r}",
        )
        if self.scaler is not None and not callable(getattr(self.scaler, "get_scale", None)):
            raise TypeError(
                "grad_scaler must be a torch.amp.GradScaler (or have get_scale()),"
                f" got {type(self.scaler).__name__}"
            )
        validate.flag_option("update_ratio", self.update_ratio)
        validate.flag_option("grad_across_ranks", self.across_ranks)


@dataclasses.dataclass(frozen=True)
class Histograms(OptionGroup):
    """Activation histograms of the watched layers, `watch(..., histograms=Histograms(...))`.

    Attributes:
        enabled: `histograms` (as a bool): record a histogram of every watched layer's output every
            `every` steps, on the device, with bin edges fixed at the layer's first histogram, plus
            underflow/overflow counts.
        bins: `histogram_bins`: equal-width bins, 1..4096 (default 32, about TensorBoard's 30 buckets).
        every: `histogram_every`: steps between histograms, a multiple of `watch(every=)`. Default: 100
            rounded up to a multiple of `every` (a histogram costs about all of its layer's statistics).
        params: `histogram_params`: also record, at the same steps, a histogram of each watched layer's
            parameter tensors (weight and bias apart) and of their gradients from the user's backward
            (needs `grads` on; edges chosen per step, see docs/guides/histograms-units.md).
    """

    enabled: bool = True
    bins: int = 32
    every: Optional[int] = None
    params: bool = True

    FLAT: ClassVar[Mapping[str, str]] = {
        "enabled": "histograms",
        "bins": "histogram_bins",
        "every": "histogram_every",
        "params": "histogram_params",
    }

    def check(self) -> None:
        validate.flag_option("histograms", self.enabled)
        validate.flag_option("histogram_params", self.params)
        validate.int_option(
            self.bins, f"histogram_bins must be an int from 1 to 4096, got {self.bins!r}", high=4096
        )
        if self.every is not None:
            validate.int_option(
                self.every,
                f"histogram_every must be a positive int (steps between histograms), got {self.every!r}",
            )


@dataclasses.dataclass(frozen=True)
class FeatureVis(OptionGroup):
    """Feature visualisation over training, `watch(..., featurevis=FeatureVis(...))`: per layer, for each
    chosen channel, the input that maximises its mean activation (`tb_plugin_insight.featurevis`).

    Attributes:
        every: `featurevis_every`: steps between visualisations (0 = never, the default: one costs `steps`
            forwards and backwards up to the layer for all its channels together; see the guide for a
            setting within 1% of training time).
        layers: `featurevis_layers`: a layer name (or module) or a list of them. Default: the last layer
            with a spatial (N, C, H, W) output, the layer CAMs explain by default.
        channels: `featurevis_channels`: an int k: the first k channels the feature-maps view shows for
            that layer (its `maps_channels`, or the most active on the probe), or, for a layer without
            feature maps, the k most active on the probe (channels 0..k-1 without a probe); a list of
            channel indices for every layer; or `{"layer": [indices]}` (its layers are the default
            `layers`; a layer of `layers` must have an entry).
        size: `featurevis_size`: the images' side. Default: the probe's (height, width); 32 without a
            probe.
        steps: `featurevis_steps`: optimisation steps per visualisation (the same seed each time, so the
            images change only with the model).
    """

    every: int = 0
    layers: Any = None
    channels: Any = 8
    size: Optional[int] = None
    steps: int = 64

    FLAT: ClassVar[Mapping[str, str]] = {
        "every": "featurevis_every",
        "layers": "featurevis_layers",
        "channels": "featurevis_channels",
        "size": "featurevis_size",
        "steps": "featurevis_steps",
    }

    def check(self) -> None:
        validate.int_option(
            self.every,
            "featurevis_every must be a non-negative int (steps between visualisations, 0 = never),"
            f" got {self.every!r}",
            low=0,
        )
        validate.int_option(
            self.steps, f"featurevis_steps must be a positive int (optimisation steps), got {self.steps!r}"
        )
        if self.size is not None:
            validate.int_option(
                self.size, f"featurevis_size must be an int >= 2 (pixels) or None, got {self.size!r}", low=2
            )
        channels = self.channels
        if isinstance(channels, bool) or not isinstance(channels, (int, Sequence, Mapping)):
            raise TypeError(
                "featurevis_channels must be an int k, a list of channel indices or {layer: [indices]},"
                f" got {channels!r}"
            )
        if isinstance(channels, int):
            validate.int_option(channels, f"featurevis_channels must be a positive int, got {channels!r}")
        elif isinstance(channels, str):
            raise TypeError(
                f"featurevis_channels must be an int or a list of channel indices, got {channels!r}"
            )


TOKEN_SALIENCY_METHODS = ("grad_x_input", "integrated_gradients")
TOKEN_BASELINES = ("zeros", "pad")


@dataclasses.dataclass(frozen=True)
class TokenSaliency(OptionGroup):
    """Token saliency of a text probe, `watch(..., token_saliency=TokenSaliency(...))`: how much each
    token's input embedding moves the explained logit (guide: docs/guides/text-probes.md).

    Attributes:
        every: `token_saliency_every`: steps between token saliency records of a text probe (0 = never).
            Default: `cam_every` (100 if that is 0).
        methods: `token_saliency_methods`: "grad_x_input" (default) and/or "integrated_gradients".
        target: `token_saliency_target`: "predicted" or "label". Default: the label when the probe has
            labels and the model is a language model (logits (N, L, V)), else `cam_target`.
        steps: `token_saliency_steps`: points of the integrated-gradients path (Gauss-Legendre), 1..256.
        baseline: `token_saliency_baseline`: the integrated-gradients baseline embedding: "zeros" or
            "pad" (the embedding of the tokenizer's or the model config's pad token).
        layer: `token_saliency_layer`: the input embedding module (or its qualified name). Default:
            `model.get_input_embeddings()` when the model has it, else its first `nn.Embedding`.
    """

    every: Optional[int] = None
    methods: Union[Sequence[str], str] = ("grad_x_input",)
    target: Optional[str] = None
    steps: int = 16
    baseline: str = "zeros"
    layer: Any = None

    FLAT: ClassVar[Mapping[str, str]] = {
        "every": "token_saliency_every",
        "methods": "token_saliency_methods",
        "target": "token_saliency_target",
        "steps": "token_saliency_steps",
        "baseline": "token_saliency_baseline",
        "layer": "token_saliency_layer",
    }

    def check(self) -> None:
        if self.every is not None:
            validate.int_option(
                self.every,
                "token_saliency_every must be a non-negative int (steps between records, 0 = never),"
                f" got {self.every!r}",
                low=0,
            )
        names = [self.methods] if isinstance(self.methods, str) else list(self.methods)
        if not names:
            raise ValueError(
                f"token_saliency_methods needs at least one of {', '.join(TOKEN_SALIENCY_METHODS)}"
            )
        for name in names:
            validate.choice_option("token_saliency_methods", name, TOKEN_SALIENCY_METHODS)
        if self.target is not None:
            validate.choice_option("token_saliency_target", self.target, TARGETS)
        validate.int_option(
            self.steps, f"token_saliency_steps must be an int from 1 to 256, got {self.steps!r}", high=256
        )
        validate.choice_option("token_saliency_baseline", self.baseline, TOKEN_BASELINES)


def _check_max_side(name: str, value: Any) -> None:
    if value is not None:
        validate.int_option(
            value, f"{name} must be a positive int (pixels) or None for full resolution, got {value!r}"
        )


GROUPS: dict[str, type[OptionGroup]] = {
    "cam": CAM,
    "saliency": Saliency,
    "feature_maps": FeatureMaps,
    "gradients": Gradients,
    "histograms": Histograms,
    "featurevis": FeatureVis,
    "token_saliency": TokenSaliency,
}


def resolve(
    flat: Mapping[str, Any], grouped: Mapping[str, Any], groups: Mapping[str, type[OptionGroup]] = GROUPS
) -> dict[str, OptionGroup]:
    """One instance per group from watch()'s flat keywords and grouped options (see the module doc).

    `flat` holds flat keywords as passed (absent ones take their defaults); `grouped` the group keywords
    (None when not given); `groups` the group classes by keyword.

    Raises:
        TypeError: a group keyword holding something other than its class.
        ValueError: a flat keyword and its grouped twin given with different values (names both), or a
            value no option accepts (from the groups' own checks).
    """
    resolved: dict[str, OptionGroup] = {}
    for key, cls in groups.items():
        given = grouped.get(key)
        if given is not None and not isinstance(given, cls):
            raise TypeError(f"{key}= takes a {cls.__name__}(...), got {type(given).__name__}")
        defaults = cls()
        values: dict[str, Any] = {}
        for name, flat_name in cls.FLAT.items():
            default = getattr(defaults, name)
            flat_value = flat.get(flat_name, default)
            group_value = getattr(given, name) if given is not None else default
            flat_set, group_set = not _same(flat_value, default), not _same(group_value, default)
            if flat_set and group_set and not _same(flat_value, group_value):
                raise ValueError(
                    f"{flat_name}={flat_value!r} and {key}={cls.__name__}({name}={group_value!r}) disagree:"
                    f" pass only one of them"
                )
            values[name] = flat_value if flat_set else group_value
        resolved[key] = _checked(cls, values)
    return resolved


def _checked(cls: Callable[..., OptionGroup], values: dict[str, Any]) -> OptionGroup:
    """cls(**values), with the flat keywords' messages (without the class prefix of a grouped option)."""
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:
        message = str(err)
        prefix = f"{getattr(cls, '__name__', '')}: "
        raise type(err)(message[len(prefix) :] if message.startswith(prefix) else message) from None


def _same(a: Any, b: Any) -> bool:
    """Equality that never raises (options may hold tensors, modules or callables)."""
    if a is b:
        return True
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001 - values without a plain boolean equality are different
        return False
