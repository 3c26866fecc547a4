"""How a layer's output is laid out in space: channels first, channels last, or a sequence of tokens.

CAMs and feature maps need (N, C, h, w). Layer outputs come in three layouts:

* "nchw": convolutional maps (N, C, H, W), used as they are.
* "nhwc": channels last (N, H, W, C): Swin's and ConvNeXt's norms and MLPs (timm, HuggingFace).
* "tokens": transformer tokens (N, T, C), of which the first k (a class token, a distillation token,
  register tokens) stand outside the grid and the other T - k form an h x w grid in row-major order.

Without a declared layout it is inferred from the shape, the input images' size and the module:
a 4-D output is channels last when its dimensions 1 and 2 have the images' aspect ratio and its
dimensions 2 and 3 do not, or when the module acts on the last dimension (a LayerNorm over the last
dimension, a Linear) and dimensions 1 and 2 fit; otherwise it is channels first (the old reading). The
grid of a token output is the smallest k <= MAX_LEADING_TOKENS for which T - k tokens form a grid of the
images' aspect ratio, else a square one; the grid must hold at least 2k and 4 tokens (a few leading
tokens before more grid tokens: 7 tokens are no 2 x 2 grid after 3).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import torch
from torch import nn

Tensor = torch.Tensor
ReshapeTransform = Callable[[Tensor], Tensor]

LAYOUTS: tuple[str, ...] = ("nchw", "nhwc", "tokens")
MAX_LEADING_TOKENS = 16  # class + distillation + register tokens (DINOv2 uses 4 registers, papers up to 16)


@dataclasses.dataclass(frozen=True)
class Layout:
    """A layer output's layout: its name, and for tokens the leading tokens and the grid (h, w)."""

    name: str
    leading: int = 0
    grid: tuple[int, int] = (0, 0)

    def describe(self) -> str:
        """Words for the tab, e.g. "tokens (N, T, C), 1 leading token (class/register), 14x14 grid"."""
        if self.name != "tokens":
            return "channels last (N, H, W, C)" if self.name == "nhwc" else "channels first (N, C, H, W)"
        lead = f"{self.leading} leading token{'s' if self.leading != 1 else ''} (class/register), "
        return f"tokens (N, T, C), {lead if self.leading else ''}{self.grid[0]}x{self.grid[1]} grid"


def check_layout(layout: Optional[str]) -> Optional[str]:
    """`layout=` as given (None: inferred), or a ValueError naming the choices."""
    if layout is None:
        return None
    if not isinstance(layout, str) or layout.lower() not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)} (or None to infer it), got {layout!r}")
    return layout.lower()


def _fits(h: int, w: int, image: Optional[tuple[int, int]], *, exact: bool = False) -> bool:
    """Whether an h x w map can be the images' grid: not larger, and of their aspect ratio (exactly, or
    within one cell, as strided layers round)."""
    if h < 1 or w < 1:
        return False
    if image is None:
        return True
    height, width = image
    if h > height or w > width:
        return False
    return abs(h * width - w * height) <= (0 if exact else max(height, width))


def _acts_on_last_dim(module: Optional[nn.Module], channels: int) -> bool:
    """A LayerNorm over the last dimension (not ConvNeXt's channels-first one) or a Linear."""
    if isinstance(module, nn.Linear):
        return module.out_features == channels
    if isinstance(module, nn.LayerNorm):
        return getattr(module, "data_format", "channels_last") != "channels_first"
    return False


def infer_4d(shape: tuple[int, ...], image: Optional[tuple[int, int]], module: Optional[nn.Module]) -> str:
    """ "nchw" or "nhwc" for a 4-D output of `shape` (module docstring)."""
    first = _fits(int(shape[2]), int(shape[3]), image)
    last = _fits(int(shape[1]), int(shape[2]), image)
    if last and (not first or _acts_on_last_dim(module, int(shape[3]))):
        return "nhwc"
    return "nchw"


def token_grid(tokens: int, image: Optional[tuple[int, int]]) -> Optional[tuple[int, int, int]]:
    """(leading tokens k, h, w) of T tokens (module docstring), or None when no grid fits: the smallest
    k giving the images' exact aspect ratio, else within one cell, else a square grid."""
    leading = [k for k in range(0, min(MAX_LEADING_TOKENS, tokens) + 1) if tokens - k >= max(2 * k, 4)]
    if image is not None:
        height, width = image
        for exact in (True, False):
            for k in leading:
                n = tokens - k
                h = math.isqrt(n * height // width)
                for hh in (h, h + 1):
                    if hh > 1 and n % hh == 0 and n // hh > 1 and _fits(hh, n // hh, image, exact=exact):
                        return k, hh, n // hh
    for k in leading:
        side = math.isqrt(tokens - k)
        if side > 1 and side * side == tokens - k:
            return k, side, side
    return None


def infer(
    shape: tuple[int, ...],
    image: Optional[tuple[int, int]] = None,
    module: Optional[nn.Module] = None,
    layout: Optional[str] = None,
) -> Optional[Layout]:
    """The layout of an output of `shape` (declared `layout` or inferred), None when it has none."""
    layout = check_layout(layout)
    if len(shape) == 4 and layout in (None, "nchw", "nhwc"):
        return Layout(layout or infer_4d(shape, image, module))
    if len(shape) == 3 and layout in (None, "tokens"):
        grid = token_grid(int(shape[1]), image)
        return None if grid is None else Layout("tokens", grid[0], (grid[1], grid[2]))
    return None


def to_nchw(layout: Layout) -> ReshapeTransform:
    """The function taking an output (or its gradient) of this layout to (N, C, h, w)."""
    if layout.name == "nhwc":
        return lambda t: t.permute(0, 3, 1, 2)
    if layout.name == "tokens":
        k, (h, w) = layout.leading, layout.grid

        def tokens(t: Tensor) -> Tensor:
            return t[:, k:].reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)

        return tokens
    return lambda t: t


def spatial_transform(
    shape: tuple[int, ...],
    layer_name: str,
    reshape_transform: Optional[ReshapeTransform] = None,
    *,
    layout: Optional[str] = None,
    image: Optional[tuple[int, int]] = None,
    module: Optional[nn.Module] = None,
) -> ReshapeTransform:
    """The function that turns the layer's output (and its gradient) into (N, C, h, w).

    `reshape_transform` wins (it must only rearrange elements: select, reshape, permute, since it is also
    applied to gradients and used to find which elements form a channel); else the declared `layout`, else
    the inferred one (module docstring).

    Raises:
        ValueError: an output that has no spatial layout, or does not match the declared one.
    """
    if reshape_transform is not None:
        return _checked_transform(reshape_transform, layer_name)
    found = infer(tuple(shape), image, module, layout)
    if found is not None:
        return to_nchw(found)
    declared = f" as layout={layout!r}" if layout is not None else ""
    raise ValueError(
        f"layer {layer_name!r} outputs shape {tuple(shape)}, which cannot be laid out{declared} as an image:"
        " choose a convolutional layer (N, C, H, W) or (N, H, W, C) with layout='nhwc', a token layer"
        " (N, tokens, C) whose tokens form a grid after at most"
        f" {MAX_LEADING_TOKENS} leading class/register tokens, or pass"
        " reshape_transform=callable(output) -> (N, C, H, W)"
    )


def _checked_transform(transform: ReshapeTransform, layer_name: str) -> ReshapeTransform:
    if not callable(transform):
        raise TypeError(
            f"reshape_transform must be a callable output -> (N, C, H, W), got {type(transform).__name__}"
        )

    def spatial(t: Tensor) -> Tensor:
        out = transform(t)
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != t.shape[0]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"reshape_transform must turn layer {layer_name!r}'s output {tuple(t.shape)} into"
                f" (N, C, H, W) with the same N, got {got}"
            )
        return out

    return spatial
