"""Insight for TensorBoard: see inside a PyTorch network while it trains.

Public surface:
    InsightWriter   drop-in `torch.utils.tensorboard.SummaryWriter` that can `watch(model)`.
    WatchHandle     what `watch` returns.
    CAM, Saliency, FeatureMaps, FeatureVis, Gradients, Histograms, TokenSaliency
                    grouped options of `watch` (tb_plugin_insight.options).
    compute_cam, compute_cams, compute_saliency, compute_token_saliency
                    the explanation functions on their own (tb_plugin_insight.cam, .saliency).
    model_summary, ModelSummary
                    the model table on its own, like torchinfo.summary (tb_plugin_insight.model_info).
    read, InsightReader
                    a logdir's records as pandas DataFrames / numpy arrays (tb_plugin_insight.reader).
    integrations.lightning.InsightCallback, integrations.transformers.InsightCallback
                    trainer callbacks, imported from their modules (each needs its trainer installed).

Importing this package does not import torch: TensorBoard imports `tb_plugin_insight.plugin.loader`
at start-up, and an import error or a slow import there would hurt every TensorBoard user. Each name
above is imported when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "InsightWriter": "tb_plugin_insight.writer",
    "WatchHandle": "tb_plugin_insight.handle",
    "CAM": "tb_plugin_insight.options",
    "Saliency": "tb_plugin_insight.options",
    "FeatureMaps": "tb_plugin_insight.options",
    "FeatureVis": "tb_plugin_insight.options",
    "Gradients": "tb_plugin_insight.options",
    "Histograms": "tb_plugin_insight.options",
    "TokenSaliency": "tb_plugin_insight.options",
    "compute_cam": "tb_plugin_insight.cam",
    "compute_cams": "tb_plugin_insight.cam",
    "compute_saliency": "tb_plugin_insight.saliency",
    "compute_token_saliency": "tb_plugin_insight.saliency",
    "model_summary": "tb_plugin_insight.model_info",
    "ModelSummary": "tb_plugin_insight.model_info",
    "read": "tb_plugin_insight.reader",
    "InsightReader": "tb_plugin_insight.reader",
}

__all__ = [
    "CAM",
    "FeatureMaps",
    "FeatureVis",
    "Gradients",
    "Histograms",
    "InsightReader",
    "InsightWriter",
    "ModelSummary",
    "Saliency",
    "TokenSaliency",
    "WatchHandle",
    "__version__",
    "compute_cam",
    "compute_cams",
    "compute_saliency",
    "compute_token_saliency",
    "model_summary",
    "read",
]

if TYPE_CHECKING:
    from tb_plugin_insight.cam import compute_cam, compute_cams
    from tb_plugin_insight.handle import WatchHandle
    from tb_plugin_insight.model_info import ModelSummary, model_summary
    from tb_plugin_insight.options import (
        CAM,
        FeatureMaps,
        FeatureVis,
        Gradients,
        Histograms,
        Saliency,
        TokenSaliency,
    )
    from tb_plugin_insight.reader import InsightReader, read
    from tb_plugin_insight.saliency import compute_saliency, compute_token_saliency
    from tb_plugin_insight.writer import InsightWriter


def __getattr__(name: str) -> Any:
    """Import the torch-side API only when it is first used."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tb_plugin_insight' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
