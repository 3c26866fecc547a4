"""Reading a trainer's run back the way TensorBoard does: through the plugin's routes on TensorBoard's
event multiplexer and data provider, and the trainer's own scalars from the same run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tensorboard.backend import application
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

from tb_plugin_insight.plugin.plugin import InsightPlugin

PREFIX = "/data/plugin/insight"


class PluginReader:
    """The Insight routes and the scalar tags of every run under `logdir`, loaded once."""

    def __init__(self, logdir: Path) -> None:
        hints = {"insight": 0, "scalars": 0}
        self.mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance=hints)
        self.mux.AddRunsFromDirectory(str(logdir))
        self.mux.Reload()
        provider = data_provider.MultiplexerDataProvider(self.mux, str(logdir))
        context = base_plugin.TBContext(
            data_provider=provider, logdir=str(logdir), multiplexer=self.mux, sampling_hints=hints
        )
        self.client = Client(application.TensorBoardWSGI([InsightPlugin(context)]))

    def get(self, url: str) -> Any:
        response = self.client.get(PREFIX + url)
        assert response.status_code == 200, response.get_data(as_text=True)
        return json.loads(response.get_data(as_text=True))

    def insight_runs(self) -> list[str]:
        return [run["run"] for run in self.get("/runs")["runs"]]

    def stat_steps(self, run: str) -> list[int]:
        return self.get(f"/stats_heatmap?run={run}&stat=mean")["steps"]

    def scalar_steps(self, run: str, tag: str) -> list[int]:
        """The steps of a scalar the trainer logged (written by its own writer into the same run)."""
        return [event.step for event in self.mux.Tensors(run, tag)]
