"""Synthetic "shapes" dataset: one circle, square or triangle per image, with its box and mask.

The images are cheap to make (no downloads), fully deterministic for a given seed, and come with
exact ground truth (bounding box and pixel mask), so they serve both as the demo's training data
and as a fixture for tests that check where a model "looks" (e.g. class-activation maps).

Geometry, for an image of ``size`` pixels and a shape of integer side ``s`` placed at ``(x0, y0)``
(pixel ``(x, y)`` has its centre at ``(x + 0.5, y + 0.5)``):

* circle   (class 0): the disc inscribed in the ``s x s`` square; mask area ~ pi/4 of its box.
* square   (class 1): the axis-aligned ``s x s`` square; mask area = its box.
* triangle (class 2): an isosceles triangle filling the square, apex pointing up, left, down or
  right; mask area ~ 1/2 of its box.

A pixel belongs to the shape when its centre does. ``boxes`` are measured on the masks, so they
are always tight: ``(x0, y0, x1, y1)`` in pixels, inclusive-exclusive, i.e.
``masks[i, y0:y1, x0:x1]`` holds every object pixel and each of its four edges touches one.

Typical use::

    data = make_shapes(5000, seed=0)
    train, test = data[:4000], data[4000:]
    logits = model(train.images[:64])
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "CLASSES",
    "CIRCLE",
    "SQUARE",
    "TRIANGLE",
    "MEAN",
    "STD",
    "ShapesData",
    "make_shapes",
    "denormalize",
]

CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
CIRCLE, SQUARE, TRIANGLE = 0, 1, 2

# Fixed normalisation constants (measured on the generator's output in [0, 1]): using constants
# rather than per-dataset statistics keeps every split and every seed on the same scale.
MEAN: float = 0.5
STD: float = 0.29

_CHUNK = 256  # images rendered at once; bounds the temporary memory of the vectorised renderer
_TEXTURE_GRID = 8  # resolution of the low-frequency background noise before upsampling
_TEXTURE_STD = 0.08
_GRADIENT_MAX = 0.2
_PIXEL_NOISE_STD = 0.04


@dataclass(frozen=True)
class ShapesData:
    """A batch of shape images with their ground truth; all tensors share the first dimension.

    Attributes:
        images: float32 ``(N, 3, H, W)``, normalised with :data:`MEAN` / :data:`STD`
            (roughly zero mean, unit std); :func:`denormalize` maps it back to ``[0, 1]``.
        labels: int64 ``(N,)``, index into :data:`CLASSES`.
        boxes: int64 ``(N, 4)``, tight ``(x0, y0, x1, y1)`` pixel box, inclusive-exclusive.
        masks: bool ``(N, H, W)``, exactly the object's pixels.
    """

    images: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor

    CLASSES: ClassVar[tuple[str, ...]] = CLASSES

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int | slice | torch.Tensor) -> ShapesData:
        """Select samples (slice, index tensor or bool mask); an int keeps a batch of one."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return ShapesData(self.images[index], self.labels[index], self.boxes[index], self.masks[index])


def make_shapes(
    n: int,
    *,
    size: int = 64,
    seed: int = 0,
    min_side: int | None = None,
    max_side: int | None = None,
) -> ShapesData:
    """Render ``n`` images of ``size x size`` pixels, each holding one shape fully inside it.

    Deterministic: the same ``(n, size, seed, min_side, max_side)`` always gives identical
    tensors; only private generators seeded with ``seed`` are used (``numpy.random.Generator``
    for the per-image parameters, ``torch.Generator`` for the noise), never the global RNGs.
    Classes are exactly balanced (counts differ by at most one) and shuffled.

    Args:
        n: number of images.
        size: image height and width in pixels.
        seed: seed of the private random generator.
        min_side: smallest shape side in pixels (default ``12 * size / 64``).
        max_side: largest shape side in pixels (default ``28 * size / 64``).
    """
    min_side = max(3, round(12 * size / 64)) if min_side is None else min_side
    max_side = round(28 * size / 64) if max_side is None else max_side
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 3 <= min_side <= max_side <= size:
        raise ValueError(f"need 3 <= min_side <= max_side <= size, got {min_side}, {max_side}")

    rng = np.random.default_rng(seed)
    noise_gen = torch.Generator().manual_seed(seed)
    params = _draw_params(rng, n, size, min_side, max_side)
    masks, boxes = _place_shapes(params, size)
    images = torch.empty((n, 3, size, size), dtype=torch.float32)
    for start in range(0, n, _CHUNK):
        part = {k: torch.from_numpy(v[start : start + _CHUNK]) for k, v in params.items()}
        end = start + len(part["label"])
        _render_images(images[start:end], masks[start:end], part, noise_gen)
    return ShapesData(images, torch.from_numpy(params["label"]), boxes, masks)


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Map normalised images back to RGB in ``[0, 1]`` (for display or saving)."""
    return (images * STD + MEAN).clamp(0.0, 1.0)


def _draw_params(
    rng: np.random.Generator, n: int, size: int, min_side: int, max_side: int
) -> dict[str, np.ndarray]:
    """Per-image random parameters, drawn up front so chunking cannot change them."""
    label = rng.permutation(np.arange(n, dtype=np.int64) % len(CLASSES))
    side = rng.integers(min_side, max_side + 1, size=n)
    # Each background channel is offset from the shape colour by 0.3..0.7 (mod 1), so every
    # channel keeps at least 0.3 of contrast whatever colours are drawn.
    colour = rng.uniform(0.0, 1.0, size=(n, 3)).astype(np.float32)
    background = (colour + rng.uniform(0.3, 0.7, size=(n, 3)).astype(np.float32)) % 1.0
    return {
        "label": label,
        "side": side,
        "x0": rng.integers(0, size - side + 1),
        "y0": rng.integers(0, size - side + 1),
        "orientation": rng.integers(0, 4, size=n),  # triangle apex: up, left, down, right
        "colour": colour,
        "background": background,
        "gradient_angle": rng.uniform(0.0, 2 * np.pi, size=n).astype(np.float32),
        "gradient_amp": rng.uniform(0.0, _GRADIENT_MAX, size=n).astype(np.float32),
    }


@functools.cache
def _template(label: int, side: int, orientation: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Mask of one shape in its ``side x side`` square, and its tight box within that square.

    A pixel belongs to the shape when its centre does, so shapes of one class and side are
    identical up to position: they are computed once and stamped into place.
    """
    centres = (np.arange(side) + 0.5) / side  # pixel centres in units of the side: 0..1
    u, v = centres[None, :], centres[:, None]
    if label == CIRCLE:
        mask = (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    elif label == SQUARE:
        mask = np.ones((side, side), dtype=bool)
    else:  # isosceles triangle, apex at the top centre, base along the bottom edge
        mask = np.abs(u - 0.5) <= v / 2
        mask = np.rot90(mask, k=orientation)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return np.ascontiguousarray(mask, dtype=bool), box


def _place_shapes(p: dict[str, np.ndarray], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean ``(n, size, size)`` masks and their tight int64 ``(n, 4)`` boxes."""
    n = len(p["label"])
    masks = np.zeros((n, size, size), dtype=bool)
    boxes = np.zeros((n, 4), dtype=np.int64)
    for i, (label, side, x0, y0, orientation) in enumerate(
        zip(*(p[k].tolist() for k in ("label", "side", "x0", "y0", "orientation")))
    ):
        mask, (bx0, by0, bx1, by1) = _template(label, side, orientation if label == TRIANGLE else 0)
        masks[i, y0 : y0 + side, x0 : x0 + side] = mask
        boxes[i] = (x0 + bx0, y0 + by0, x0 + bx1, y0 + by1)
    return torch.from_numpy(masks), torch.from_numpy(boxes)


@functools.cache
def _upsample_matrix(size: int) -> torch.Tensor:
    """``(size, _TEXTURE_GRID)`` bilinear-interpolation matrix: ``A @ grid @ A.T`` upsamples.

    Two small matmuls are much cheaper than ``F.interpolate`` on thousands of images.
    """
    eye = torch.eye(_TEXTURE_GRID)[:, None, :]  # one basis vector per "image"
    return F.interpolate(eye, size=size, mode="linear")[:, 0, :].T.contiguous()


def _render_images(
    out: torch.Tensor, mask: torch.Tensor, p: dict[str, torch.Tensor], gen: torch.Generator
) -> None:
    """Fill ``out`` (n, 3, H, W) with normalised images: textured background, flat shape, noise.

    Texture, gradient and noise are luminance-only (shared by the three channels): a third of
    the work of per-channel noise, and the colours stay those drawn in :func:`_draw_params`.
    Everything is scaled to normalised units before it touches the full-size output.
    """
    n, _, height, width = out.shape
    up = _upsample_matrix(width)
    texture = torch.randn((n, _TEXTURE_GRID, _TEXTURE_GRID), generator=gen)
    luminance = up @ texture @ up.T * _TEXTURE_STD  # (n, H, W) smooth blobs
    coords = (torch.arange(width, dtype=torch.float32) + 0.5) / width - 0.5
    angle, amp = p["gradient_angle"][:, None, None], p["gradient_amp"][:, None, None]
    luminance += amp * (angle.cos() * coords[None, None, :] + angle.sin() * coords[None, :, None])
    luminance.masked_fill_(mask, 0.0)  # the shape itself is flat
    # Uniform pixel noise with std _PIXEL_NOISE_STD (cheaper to draw than a Gaussian).
    half_width = _PIXEL_NOISE_STD * 3**0.5
    luminance += torch.empty_like(luminance).uniform_(-half_width, half_width, generator=gen)
    luminance /= STD

    colour = (p["colour"][:, :, None, None] - MEAN) / STD
    background = (p["background"][:, :, None, None] - MEAN) / STD
    torch.where(mask[:, None], colour, background, out=out)
    out.add_(luminance[:, None]).clamp_(-MEAN / STD, (1.0 - MEAN) / STD)
