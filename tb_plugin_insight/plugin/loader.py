"""Entry point TensorBoard loads at start-up: keep it light (no torch, nothing that can fail).

Gives the `insight` plugin a keep-everything sampling default: without it TensorBoard keeps a random
10 (Python) or 100 (Rust data server) records per tag, and the tab would show a few random steps.
An explicit `--samples_per_plugin insight=N` from the user wins.
"""

from __future__ import annotations

from typing import Any

from tensorboard.plugins import base_plugin

PLUGIN_NAME = "insight"  # == metadata.PLUGIN_NAME; duplicated so this module imports nothing heavy

# 0 means "keep all" to both data backends (`--samples_per_plugin insight=all` is rejected by the CLI).
KEEP_ALL = 0


class InsightLoader(base_plugin.TBLoader):
    """Sets the sampling default, then builds the plugin."""

    def fix_flags(self, flags: Any) -> None:
        samples = getattr(flags, "samples_per_plugin", None)
        if samples is None:
            samples = {}
            flags.samples_per_plugin = samples
        if isinstance(samples, dict):
            samples.setdefault(PLUGIN_NAME, KEEP_ALL)

    def load(self, context: base_plugin.TBContext) -> base_plugin.TBPlugin:
        from tb_plugin_insight.plugin.plugin import InsightPlugin

        return InsightPlugin(context)
