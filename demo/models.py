"""Small CNN for the synthetic shapes: fast to train on a CPU, with readable layer names.

The layer names are what the Insight tab shows, so every module has a meaningful one
(``features.conv1``, ``features.bn1``, ... ``features.conv_last``, ``classifier``) rather than
``features.0``. The architecture ends the CAM way: last conv block -> global average pool ->
linear, so a class-activation map is ``classifier.weight[c] @ features.relu_last`` output.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["ShapesCNN"]


def _conv_block(index: int | str, c_in: int, c_out: int, *, pool: bool) -> list[tuple[str, nn.Module]]:
    """Named conv 3x3 -> batch norm -> ReLU (-> 2x2 max pool) layers, for an OrderedDict."""
    layers: list[tuple[str, nn.Module]] = [
        (f"conv{index}", nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)),
        (f"bn{index}", nn.BatchNorm2d(c_out)),
        (f"relu{index}", nn.ReLU(inplace=False)),
    ]
    if pool:
        layers.append((f"pool{index}", nn.MaxPool2d(2)))
    return layers


class ShapesCNN(nn.Module):
    """Conv-BN-ReLU-pool x3, a last conv block, global average pool, linear classifier.

    On 64x64 inputs the last conv block (``features.conv_last`` / ``bn_last`` / ``relu_last``)
    works at 8x8 with a receptive field of 38 px, enough to see a whole shape. Modules are
    created in forward order, so ``named_modules()`` lists them input to output.

    Args:
        num_classes: output logits (3 for circle / square / triangle).
        width: channels of the first block; later blocks use 2x, 4x, 4x.
        seed: if given, weights are initialised from this seed without touching the caller's
            global RNG state, so two models built with the same seed are identical.
    """

    #: Qualified name of the last spatial layer (post-ReLU feature maps), e.g. for CAM hooks.
    LAST_SPATIAL_LAYER = "features.relu_last"

    def __init__(self, num_classes: int = 3, *, width: int = 16, seed: int | None = None) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self._build(num_classes, width)

    def _build(self, num_classes: int, width: int) -> None:
        """Create the layers (split out so ``__init__`` can seed their initialisation)."""
        channels = [3, width, 2 * width, 4 * width]
        layers: list[tuple[str, nn.Module]] = []
        for i in range(1, 4):
            layers += _conv_block(i, channels[i - 1], channels[i], pool=True)
        layers += _conv_block("_last", channels[-1], channels[-1], pool=False)
        self.features = nn.Sequential(OrderedDict(layers))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for images ``(N, 3, H, W)``."""
        return self.classifier(self.flatten(self.gap(self.features(x))))

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Last spatial feature maps ``(N, C, H/8, W/8)``, the input of the global pool."""
        return self.features(x)

    def class_activation_maps(self, x: torch.Tensor) -> torch.Tensor:
        """CAM per class ``(N, num_classes, H/8, W/8)``: classifier weights over feature maps.

        Averaging a map over its positions and adding the bias gives exactly the logit.
        """
        maps = self.feature_maps(x)
        return torch.einsum("kc,nchw->nkhw", self.classifier.weight, maps)
