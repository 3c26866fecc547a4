"""The fixed probe batch: validation, display images, and the name of the layer CAMs default to."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from tb_plugin_insight.capture.cam_layer import choose_cam_layer


@dataclasses.dataclass
class Probe:
    """A fixed batch explained at every map step; `display` is what the tab shows under the maps."""

    name: str
    images: torch.Tensor  # (N, C, H, W) model inputs, on the CPU
    labels: Optional[torch.Tensor]  # (N,) int64 or None
    class_names: tuple[str, ...]
    display: np.ndarray  # (N, H, W, 3) uint8
    _on_device: dict[tuple[torch.device, Optional[torch.dtype]], torch.Tensor] = dataclasses.field(
        default_factory=dict, repr=False
    )

    def on(self, device: torch.device, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """The images on `device` (in floating `dtype` if given), copied once per device and dtype: models
        may move between devices and dtypes after watch()."""
        key = (device, dtype if dtype is not None and dtype.is_floating_point else None)
        if key not in self._on_device:
            self._on_device[key] = self.images.to(device=device, dtype=key[1])
        return self._on_device[key]

    def fingerprint(self) -> str:
        """Changes when the shown images change: decides whether they are stored again."""
        return hashlib.sha1(self.display.tobytes() + str(self.display.shape).encode()).hexdigest()


def make_probe(
    name: str,
    images: Any,
    labels: Any = None,
    *,
    class_names: Optional[Sequence[str]] = None,
    display: Any = None,
) -> Probe:
    """Validate a probe batch and prepare what the tab shows.

    Raises:
        TypeError / ValueError: images that are not an (N, C, H, W) tensor, labels of the wrong length or
            type, a display array of the wrong shape; each message says what shape is expected.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"probe images must be a torch.Tensor (N, C, H, W), got {type(images).__name__}")
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(
            f"probe images must be a non-empty batch (N, C, H, W), got shape {tuple(images.shape)};"
            " add a batch dimension with images.unsqueeze(0)"
        )
    images = images.detach().to("cpu").clone()
    label_tensor = None
    if labels is not None:
        label_tensor = torch.as_tensor(labels).detach().to("cpu").reshape(-1)
        if label_tensor.dtype.is_floating_point or label_tensor.numel() != images.shape[0]:
            raise ValueError(
                f"probe labels must be {images.shape[0]} integer class indices (one per image),"
                f" got {label_tensor.numel()} of dtype {label_tensor.dtype}"
            )
        label_tensor = label_tensor.long()
    shown = to_display(images) if display is None else _check_display(display, images)
    names = tuple(str(n) for n in class_names) if class_names is not None else ()
    return Probe(name, images, label_tensor, names, shown)


def to_display(images: torch.Tensor) -> np.ndarray:
    """(N, H, W, 3) uint8 from model inputs, each image min-max scaled over all its channels.

    Inputs are usually normalised (zero mean, unit std), so a per-image stretch recovers a viewable
    picture without knowing the normalisation. Pass `display=` to show exact pixels instead.
    """
    x = images.detach().float()
    channels = x.shape[1]
    if channels == 1:
        x = x.expand(-1, 3, -1, -1)
    elif channels != 3:
        raise ValueError(
            f"cannot show {channels}-channel probe images: pass display= as (N, H, W, 3) uint8 images"
        )
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    scaled = (x - lo) / (hi - lo).clamp_min(1e-12)
    return (scaled * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _check_display(display: Any, images: torch.Tensor) -> np.ndarray:
    array = display.detach().cpu().numpy() if isinstance(display, torch.Tensor) else np.asarray(display)
    n, _, h, w = images.shape
    if array.shape == (n, 3, h, w):
        array = array.transpose(0, 2, 3, 1)
    if array.shape != (n, h, w, 3):
        raise ValueError(f"display must be (N, H, W, 3) = {(n, h, w, 3)} images, got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"display must be uint8 0..255 or float 0..1, got dtype {array.dtype}")
        array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    return np.ascontiguousarray(array)


def maps_to_uint8(maps: torch.Tensor) -> np.ndarray:
    """(N, H, W) maps in [0, 1] to uint8 for a grayscale sprite (round to nearest, |error| <= 1/510)."""
    return (maps.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def find_last_spatial_layer(model: nn.Module, sample: torch.Tensor) -> str:
    """Qualified name of the layer CAMs explain by default (`capture.cam_layer.choose_cam_layer`, which
    also says why and in which layout)."""
    return choose_cam_layer(model, sample).name
