"""Insight for TensorBoard: see inside a PyTorch network while it trains.

Public surface:
    InsightWriter   drop-in `torch.utils.tensorboard.SummaryWriter` that can `watch(model)`.

Private modules (no stable API): metadata, summary, crc, capture.*, plugin.*, proto.*.

Importing this package does not import torch: TensorBoard imports `tb_plugin_insight.plugin.loader`
at start-up, and an import error or a slow import there would hurt every TensorBoard user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["InsightWriter", "__version__"]

if TYPE_CHECKING:
    from tb_plugin_insight.writer import InsightWriter


def __getattr__(name: str) -> Any:
    """Import the torch-side API only when it is first used."""
    if name == "InsightWriter":
        from tb_plugin_insight.writer import InsightWriter

        return InsightWriter
    raise AttributeError(f"module 'tb_plugin_insight' has no attribute {name!r}")
