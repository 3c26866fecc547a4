"""The Model view's table: one row per module (type, output shape, parameters, depth, watched), from the
first recorded training forward (capture/model_table.py), written once per watch."""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from tb_plugin_insight import records, validate
from tb_plugin_insight.capture import model_table as model_table_mod
from tb_plugin_insight.recorders.base import Recorder, RecordSink, TrainingNeeds, WatchContext


class ModelTableRecorder(Recorder):
    """`watch(model_table=True)` (the default)."""

    name = "model_table"
    flags = {"model_table": True}

    def __init__(self, sink: RecordSink) -> None:
        super().__init__()
        self.sink = sink

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        if not validate.flag_option("model_table", ctx.options["model_table"]):
            return None
        return cls(ctx.sink)

    def training_needs(self, needs: TrainingNeeds) -> None:
        needs.on_model_table = self.record

    def record(self, step: int, model: nn.Module, rows: list[dict[str, Any]]) -> None:
        document = model_table_mod.table_document(model, rows)
        self.sink.enqueue(records.model_table, document, step=step)
