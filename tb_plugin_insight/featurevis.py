"""Feature visualisation (Lucid / Lucent style): the public module.

The maths lives in `tb_plugin_insight.explain.featurevis` (explain/ imports nothing from the recording
side); this module re-exports its public names: `from tb_plugin_insight.featurevis import visualize`.
"""

from __future__ import annotations

from tb_plugin_insight.explain.featurevis import channel_activations, check_channels, visualize

__all__ = ["channel_activations", "check_channels", "visualize"]
