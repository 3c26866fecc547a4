"""Feature visualisation: the input that a channel responds to most (Olah et al., Distill 2017).

One image per channel, all optimised together in one batch by gradient ascent on the channel's mean
activation at a layer. Plain gradient ascent on pixels finds high-frequency adversarial patterns; the
regularisers of Lucid and Lucent make the images show structure instead:

* Fourier parametrisation: each image is a spectrum (real and imaginary parts per frequency) scaled by
  1 / f, so that every frequency has about the same effect per unit of the parameter (natural images have
  a 1/f spectrum) and the optimisation does not favour high frequencies. `irfft2` gives the image.
* Colour decorrelation (3-channel inputs, optional): the parameters are decorrelated colours, mapped to
  RGB by the square root of ImageNet's colour covariance (Lucid's `color_correlation_svd_sqrt`).
* A sigmoid keeps each pixel in (0, 1); `input_range` maps that to the model's input values.
* Redirected ReLU gradients (Lucid) in the first steps: a unit of an `nn.ReLU` module that is off passes
  the gradient on where it asks for a larger input, so a channel silent on the initial image still gets
  a direction (ReLUs called as functions are left as they are).
* Transformation robustness: at every step each image is jittered, scaled and slightly rotated (one
  affine resampling, reflected at the borders) before the model sees it, so the image has to excite the
  channel wherever it lands, not at one exact pixel alignment.

All randomness (the initial spectra and every transformation) comes from a private `torch.Generator`
seeded by `seed`, never the global RNG, so a call is deterministic for a seed (on the CPU; on CUDA the
backward of `grid_sample` accumulates with atomics and may differ in the last bits).

The model is left as it was: every module in eval mode during the optimisation and given its own
`training` flag back after (BatchNorm statistics untouched), the global RNG state restored, and gradients
taken with `torch.autograd.grad` with respect to the image parameters only (no `.backward()`, no `.grad`
on any of the model's parameters). The forward stops at the layer: the rest of the network never runs.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from tb_plugin_insight.explain.capture import LayerSpec, resolve_layer, side_effect_free, split_output

__all__ = ["channel_activations", "check_channels", "input_channels", "visualize"]

# Square root of ImageNet's RGB colour correlation (Lucid / Lucent), columns normalised to at most 1.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR_SQRT = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()
_SPECTRUM_SD = 0.01  # Lucent's initial spread of the spectrum parameters
_IMAGE_SCALE = 4.0  # Lucent's "magic" divisor of the image from the spectrum
_MAX_DEGREES = 10.0  # rotations in [-10, 10] degrees
_SCALES = (0.9, 1.1)  # scale factors drawn in this range
_JITTER = 1 / 16  # translations of up to this fraction of the image side (Lucent: 8 + 4 px at 224)
_BETAS, _EPS = (0.9, 0.999), 1e-8  # Adam
_REDIRECT_STEPS = 16  # Lucid's redirected ReLU gradient in the first steps (at most a quarter of them)


class _Stop(Exception):
    """Raised by the layer's hook once its output is taken: the rest of the network need not run."""


def visualize(
    model: nn.Module,
    layer: LayerSpec,
    channels: Sequence[int],
    *,
    size: Union[int, tuple[int, int]] = 64,
    steps: int = 128,
    seed: int = 0,
    image_channels: Optional[int] = None,
    input_range: Any = (0.0, 1.0),
    lr: float = 0.05,
    decorrelate: bool = True,
    transforms: bool = True,
) -> torch.Tensor:
    """The inputs that maximise each channel's mean activation at `layer`: (len(channels), C, H, W).

    Args:
        model: the network (left unchanged: see the module doc).
        layer: a module of `model` or its qualified name; its output's dimension 1 holds the channels
            ((N, C), (N, C, L), (N, C, H, W), ...).
        channels: channel indices, one image each (repeats allowed), optimised together in one batch.
        size: the images' side, or (height, width).
        steps: optimisation steps (Adam, learning rate `lr`, on the spectrum parameters).
        seed: seeds the private generator of the initial images and the transformations.
        image_channels: C of the model's input; default: `in_channels` of its first convolution (3 if it
            has none).
        input_range: (low, high) the pixels' (0, 1) range is mapped to before the model sees them: numbers
            or per-channel sequences / tensors (e.g. the range of normalised training images).
        decorrelate: 3-channel images are parametrised in decorrelated colours (Lucid's colour basis).
        transforms: random jitter, scale and rotation at every step (transformation robustness).

    Returns:
        The optimised images as the model takes them (input_range applied, no transformation), detached,
        on the model's device and in its floating dtype.

    Raises:
        ValueError / TypeError: a bad layer, channel index, size or steps (messages say what to pass).
    """
    name, module = resolve_layer(model, layer)
    indices = check_channels(channels)
    height, width = _check_size(size)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.dtype.is_floating_point else torch.float32
    c = image_channels if image_channels is not None else input_channels(model)
    anchor = torch.empty(0, device=device)
    # inference_mode(False): the image parameters must be ordinary tensors also inside the caller's
    # inference_mode (the model's own parameters are ordinary tensors).
    with side_effect_free(model, anchor), torch.inference_mode(False), torch.enable_grad():
        generator = torch.Generator().manual_seed(int(seed))
        image = _FourierImage(len(indices), c, height, width, generator, decorrelate=decorrelate)
        image.to(device)
        low, high = _range_tensors(input_range, c, device)
        target = torch.tensor(indices, device=device)
        adam = _Adam(image.spectrum, lr)
        redirect = min(_REDIRECT_STEPS, steps // 4)
        for step in range(steps):
            pixels = image.pixels()
            if transforms:
                pixels = _transform(pixels, generator)
            inputs = (low + pixels * (high - low)).to(dtype)
            with _redirected_relus(model) if step < redirect else contextlib.nullcontext():
                scores = _channel_means(model, module, name, inputs, indices, target)
            (grad,) = torch.autograd.grad(scores.sum(), image.spectrum)
            adam.ascend(grad)
        with torch.no_grad():
            result = (low + image.pixels() * (high - low)).to(dtype)
    return result.detach()


def channel_activations(
    model: nn.Module, layer: LayerSpec, inputs: torch.Tensor, channels: Sequence[int]
) -> torch.Tensor:
    """(N, len(channels)) mean activation of each channel at `layer` for each input, without side effects
    (what `visualize` maximises; tests and tools compare the images with it)."""
    name, module = resolve_layer(model, layer)
    indices = check_channels(channels)
    with side_effect_free(model, inputs), torch.no_grad():
        out = _layer_output(model, module, name, inputs)
        _check_range(indices, out, name)
        means = out.float().flatten(start_dim=2).mean(dim=2) if out.dim() > 2 else out.float()
    return means[:, list(indices)]


def check_channels(channels: Any) -> tuple[int, ...]:
    """`channels` as a tuple of non-negative ints.

    Raises:
        TypeError / ValueError: not a non-empty sequence of non-negative ints.
    """
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence):
        raise TypeError(f"channels must be a list of channel indices, got {channels!r}")
    if not channels:
        raise ValueError("channels is empty: give at least one channel index")
    for value in channels:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"channels must hold non-negative ints, got {value!r}")
    return tuple(int(v) for v in channels)


def _check_size(size: Any) -> tuple[int, int]:
    sides = (size, size) if isinstance(size, int) else tuple(size) if isinstance(size, Sequence) else ()
    if len(sides) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 2 for s in sides):
        raise ValueError(f"size must be an int >= 2 or (height, width), got {size!r}")
    return int(sides[0]), int(sides[1])


def input_channels(model: nn.Module) -> int:
    """C of the model's input: `in_channels` of its first convolution (3 without one)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return int(module.in_channels)
    return 3


def _range_tensors(input_range: Any, c: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        low, high = input_range
    except (TypeError, ValueError):
        raise ValueError(f"input_range must be (low, high), got {input_range!r}") from None
    ends = []
    for end in (low, high):
        t = torch.as_tensor(end, dtype=torch.float32).to(device).reshape(-1).clone()
        if t.numel() not in (1, c):
            raise ValueError(f"input_range ends must be numbers or {c} per-channel values, got {end!r}")
        ends.append(t.reshape(1, -1, 1, 1))
    return ends[0], ends[1]


class _FourierImage:
    """A batch of images as 1/f-scaled spectra, optionally in decorrelated colours, sigmoid to (0, 1)."""

    def __init__(
        self, n: int, c: int, height: int, width: int, generator: torch.Generator, *, decorrelate: bool
    ) -> None:
        self.size = (height, width)
        fy = torch.fft.fftfreq(height).reshape(-1, 1)
        fx = torch.fft.rfftfreq(width).reshape(1, -1)
        freqs = (fx * fx + fy * fy).sqrt()
        self.scale = (1.0 / freqs.clamp_min(1.0 / max(height, width)))[..., None]
        shape = (n, c, *freqs.shape, 2)
        self.spectrum = torch.randn(shape, generator=generator) * _SPECTRUM_SD
        self.colors = _COLOR_SQRT if decorrelate and c == 3 else None

    def to(self, device: torch.device) -> None:
        self.scale = self.scale.to(device)
        self.spectrum = self.spectrum.to(device).requires_grad_(True)
        self.colors = self.colors.to(device) if self.colors is not None else None

    def pixels(self) -> torch.Tensor:
        """(N, C, H, W) in (0, 1)."""
        spectrum = torch.view_as_complex(self.spectrum * self.scale)
        image = torch.fft.irfftn(spectrum, s=self.size, norm="ortho") / _IMAGE_SCALE
        if self.colors is not None:
            image = torch.einsum("nchw,dc->ndhw", image, self.colors)
        return torch.sigmoid(image)


def _transform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image jittered, scaled and rotated at random (one bilinear resampling, borders reflected)."""
    n = images.shape[0]
    draws = torch.rand((n, 4), generator=generator).to(images.device)
    angle = (draws[:, 0] * 2 - 1) * math.radians(_MAX_DEGREES)
    scale = _SCALES[0] + draws[:, 1] * (_SCALES[1] - _SCALES[0])
    shift = (draws[:, 2:] * 2 - 1) * (2 * _JITTER)  # grid coordinates span 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _layer_output(model: nn.Module, module: nn.Module, name: str, inputs: torch.Tensor) -> torch.Tensor:
    """`module`'s first output in a forward of `inputs`, stopping the forward right there."""
    taken: list[torch.Tensor] = []

    def hook(mod: nn.Module, args: Any, output: Any) -> None:
        taken.append(split_output(output)[0])
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        model(inputs)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not taken:
        raise ValueError(f"layer {name!r} was not called in the forward pass: choose a layer the model uses")
    out = taken[0]
    if out.dim() < 2:
        raise ValueError(f"layer {name!r} returned shape {tuple(out.shape)}: it needs (N, C, ...) outputs")
    return out


def _check_range(indices: Sequence[int], out: torch.Tensor, name: str) -> None:
    bad = [i for i in indices if i >= out.shape[1]]
    if bad:
        raise ValueError(
            f"channels {bad} are outside layer {name!r}'s {out.shape[1]} channels: use 0..{out.shape[1] - 1}"
        )


def _channel_means(
    model: nn.Module,
    module: nn.Module,
    name: str,
    inputs: torch.Tensor,
    indices: Sequence[int],
    target: torch.Tensor,
) -> torch.Tensor:
    """(N,) mean activation of channel indices[i] (`target` on the device) for image i."""
    out = _layer_output(model, module, name, inputs)
    _check_range(indices, out, name)
    picked = out[torch.arange(out.shape[0], device=out.device), target]
    return picked.flatten(start_dim=1).float().mean(dim=1) if picked.dim() > 1 else picked.float()


class _Adam:
    """Adam ascent on one tensor, updated in place (no optimizer object, nothing written to `.grad`)."""

    def __init__(self, tensor: torch.Tensor, lr: float) -> None:
        self.tensor, self.lr, self.t = tensor, lr, 0
        self.m = torch.zeros_like(tensor)
        self.v = torch.zeros_like(tensor)

    def ascend(self, grad: torch.Tensor) -> None:
        self.t += 1
        b1, b2 = _BETAS
        with torch.no_grad():
            self.m.mul_(b1).add_(grad, alpha=1 - b1)
            self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            m_hat = self.m / (1 - b1**self.t)
            v_hat = self.v / (1 - b2**self.t)
            self.tensor.add_(self.lr * m_hat / (v_hat.sqrt() + _EPS))


class _Redirect(torch.autograd.Function):
    """Forward: the ReLU's output. Backward to the ReLU's input: the gradient where the unit is on, and
    where it is off but the gradient asks for a larger input (Lucid's redirected ReLU, for ascent)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return out.detach().clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * ((x > 0) | (grad > 0)).to(grad.dtype), None


@contextlib.contextmanager
def _redirected_relus(model: nn.Module) -> Iterator[None]:
    """Hooks on every `nn.ReLU` of `model` that redirect its gradient (removed on exit). An in-place ReLU
    gets a copy of its input, so the input the redirection needs is kept."""
    inputs: dict[int, torch.Tensor] = {}

    def before(module: nn.Module, args: Any) -> Any:
        if not args or not isinstance(args[0], torch.Tensor):
            return None
        inputs[id(module)] = args[0]
        return (args[0].clone(), *args[1:]) if getattr(module, "inplace", False) else None

    def after(module: nn.Module, args: Any, output: Any) -> Any:
        x = inputs.pop(id(module), None)
        if x is None or not isinstance(output, torch.Tensor) or not x.requires_grad:
            return None
        return _Redirect.apply(x, output)

    handles = []
    try:
        for module in model.modules():
            if isinstance(module, nn.ReLU):
                handles.append(module.register_forward_pre_hook(before))
                handles.append(module.register_forward_hook(after))
        yield
    finally:
        for handle in handles:
            handle.remove()
