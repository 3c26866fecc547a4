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
        tall, mode = array.reshape(n * h, w), "L"
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
