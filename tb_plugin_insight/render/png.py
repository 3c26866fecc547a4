"""PNG encoding of uint8 image stacks as vertical sprites (Pillow). No torch here."""

from __future__ import annotations

import io

import numpy as np


def sprite(images: np.ndarray) -> bytes:
    """Encode N images, (N, H, W) grayscale or (N, H, W, 3) RGB uint8, as one PNG N*H pixels tall.

    One PNG per step and series means one request and one decode in the browser, and PNG compresses
    the smooth maps far better than N separate small files.
    """
    from PIL import Image

    array = np.asarray(images)
    if array.dtype != np.uint8:
        raise TypeError(f"sprite() needs uint8 images, got {array.dtype}")
    if array.ndim == 3:
        n, h, w = array.shape
        tall: np.ndarray = array.reshape(n * h, w)
        mode = "L"
    elif array.ndim == 4 and array.shape[-1] == 3:
        n, h, w, _ = array.shape
        tall, mode = array.reshape(n * h, w, 3), "RGB"
    else:
        raise ValueError(f"sprite() needs (N, H, W) or (N, H, W, 3) images, got shape {array.shape}")
    if n == 0 or h == 0 or w == 0:
        raise ValueError(f"sprite() needs at least one non-empty image, got shape {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(tall), mode=mode).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def decode(png: bytes) -> np.ndarray:
    """The uint8 array of a PNG (for tests and tools)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)))


def grid(tiles: np.ndarray) -> bytes:
    """Encode (R, C, h, w) grayscale or (R, C, h, w, 3) RGB uint8 tiles as one PNG R*h tall and C*w wide.

    Tile (r, c) occupies rows r*h ... (r+1)*h-1 and columns c*w ... (c+1)*w-1. Feature maps use rows for
    probe images and columns for channels, so a sprite stays roughly square (browsers cap canvas sides).
    """
    from PIL import Image

    array = np.asarray(tiles)
    if array.dtype != np.uint8:
        raise TypeError(f"grid() needs uint8 tiles, got {array.dtype}")
    if array.ndim == 4:
        r, c, h, w = array.shape
        flat: np.ndarray = array.transpose(0, 2, 1, 3).reshape(r * h, c * w)
        mode = "L"
    elif array.ndim == 5 and array.shape[-1] == 3:
        r, c, h, w, _ = array.shape
        flat, mode = array.transpose(0, 2, 1, 3, 4).reshape(r * h, c * w, 3), "RGB"
    else:
        raise ValueError(f"grid() needs (R, C, h, w) or (R, C, h, w, 3) tiles, got shape {array.shape}")
    if min(r, c, h, w) == 0:
        raise ValueError(f"grid() needs at least one non-empty tile, got shape {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(flat), mode=mode).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def ungrid(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Tiles (R, C, h, w[, 3]) back from a decoded grid image (the inverse of `grid`)."""
    array = np.asarray(image)
    rows, cols = array.shape[0] // height, array.shape[1] // width
    shaped = array.reshape(rows, height, cols, width, *array.shape[2:])
    return np.ascontiguousarray(np.moveaxis(shaped, 2, 1))
