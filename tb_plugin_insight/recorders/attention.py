"""Attention of every attention module on the probe, its health (entropy, max logit) and attention
rollout, every `attention_every` steps, taken in the shared probe pass (never the training step).

On by default when there is a probe and the model computes attention (found by a dry run on one probe
sample at watch() time): `attention_every=None` follows `cam_every` (100 when that is 0); 0 turns it
off. With a grid of tokens (ViT-style), attention rollout is also recorded as the CAM method
"rollout" (layer "": the whole model), so it appears in the CAM viewer beside Grad-CAM.

A text probe (capture/text_probe.py) gets its own forward here, as the model takes it (its attention
mask too), since the shared pass runs image probes only; a causal model's query is then each
sequence's last real token, an encoder's the first ([CLS]) (`AttentionPlan.for_text`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

from torch import nn

from tb_plugin_insight import attention_summary
from tb_plugin_insight.capture import attention as capture_attention
from tb_plugin_insight.capture import maps
from tb_plugin_insight.capture.attention_maps import QUERY_RULES, AttentionPlan, QueryError, rollout_record
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.capture.probe_pass import SharedMaps
from tb_plugin_insight.capture.text_probe import TextProbe
from tb_plugin_insight.options import CAM
from tb_plugin_insight.recorders.base import Recorder, RecordSink, WatchContext, outcome
from tb_plugin_insight.recorders.cams import write_maps

logger = logging.getLogger(__name__)

FLAGS: Mapping[str, Any] = {
    "attention_every": None,
    "attention_query": "auto",
    "attention_max_queries": 64,
    "attention_row_samples": 1,
    "attention_rollout": True,
}


def plan_attention(model: nn.Module, ctx: WatchContext) -> Optional[AttentionPlan]:
    """The attention plan of a watch, checked with a dry run on one probe sample; None when off (no
    probe, `attention_every=0`, or a default watch of a model without attention).

    Raises:
        ValueError / TypeError: a bad option, or `attention_every` given for a model in which no
            attention was found (the message says what is recognised).
    """
    opts = ctx.options
    every, query = opts["attention_every"], opts["attention_query"]
    _check_int("attention_every", every, low=0, none=True)
    _check_int("attention_max_queries", opts["attention_max_queries"], low=1)
    _check_int("attention_row_samples", opts["attention_row_samples"], low=0)
    if not (isinstance(query, int) and not isinstance(query, bool)) and query not in QUERY_RULES:
        raise ValueError(
            f"attention_query must be one of {', '.join(QUERY_RULES)} or a query index, got {query!r}"
        )
    if not isinstance(opts["attention_rollout"], bool):
        raise TypeError(f"attention_rollout must be True or False, got {opts['attention_rollout']!r}")
    if (ctx.probe is None and ctx.text_probe is None) or every == 0:
        if every:
            raise ValueError(
                "attention_every needs a probe: pass probe=(images, labels), a text probe"
                " (probe={'input_ids': ..., 'attention_mask': ...}) or call set_probe"
            )
        return None
    cam: CAM = opts["cam"]
    plan = AttentionPlan(
        every=every if every is not None else (cam.every or 100),
        query=query,
        max_queries=opts["attention_max_queries"],
        row_samples=opts["attention_row_samples"],
        rollout=opts["attention_rollout"],
    )
    try:
        found = _dry_run(model, ctx, plan)
    except QueryError:
        raise
    except Exception as err:
        if every is not None:
            raise ValueError(
                f"attention_every: the attention of {type(model).__name__} cannot be captured: {err}"
            ) from err
        logger.warning(
            "Insight: attention is not recorded (%s: %s); pass attention_every=0 to silence this",
            type(err).__name__,
            err,
        )
        return None
    if not found:
        if every is not None:
            raise ValueError(
                f"attention_every: no attention found in a forward of {type(model).__name__} (recognised:"
                " nn.MultiheadAttention, F.scaled_dot_product_attention, a softmax over the last"
                " dimension of a 4-D (N, heads, queries, keys) tensor)"
            )
        return None
    return plan


def _dry_run(model: nn.Module, ctx: WatchContext, plan: AttentionPlan) -> dict[str, Any]:
    """The attention the plan keeps of one probe forward: one image, or the whole text probe."""
    device = maps.model_device(model)
    if ctx.text_probe is not None:
        return capture_text(model, ctx.text_probe, plan)
    assert ctx.probe is not None
    sample = ctx.probe.on(device, maps.model_dtype(model))[:1]
    return capture_attention.capture(model, sample, plan.keep)  # reduced at once, as in the pass


def capture_text(model: nn.Module, probe: TextProbe, plan: AttentionPlan) -> dict[str, Any]:
    """What `plan` keeps of each attention call of one forward of a text probe, run as the model takes
    it (`TextProbe.call`: its attention mask too, so padded keys get the zero attention the model gives
    them), with each sequence's last real token as a causal model's query."""
    device = maps.model_device(model)
    return capture_attention.capture(
        model, None, plan.for_text(probe.mask).keep, forward=lambda: probe.call(model, device)
    )


def _check_int(name: str, value: Any, *, low: int, none: bool = False) -> None:
    if value is None and none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


class AttentionRecorder(Recorder):
    """`watch(probe=..., attention_every=..., attention_query=..., attention_max_queries=...,
    attention_row_samples=..., attention_rollout=...)`."""

    name = "attention"
    probe_role = "attention"
    flags = FLAGS

    def __init__(self, sink: RecordSink, plan: AttentionPlan, model: nn.Module) -> None:
        super().__init__()
        self.sink = sink
        self.plan = plan
        self._types = {name: (type(m).__name__, i) for i, (name, m) in enumerate(model.named_modules())}

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        plan = plan_attention(ctx.model, ctx)
        return None if plan is None else cls(ctx.sink, plan, ctx.model)

    def due(self, step: int) -> bool:
        has_probe = self.sink.probe() is not None or self.sink.text_probe() is not None
        return not self.failed and step % self.plan.every == 0 and has_probe

    def probe_request(self) -> Any:
        return self.plan if self.sink.text_probe() is None else None  # a text probe: its own forward

    def record_probe(self, step: int, model: nn.Module, shared: SharedMaps) -> None:
        text = self.sink.text_probe()
        probe = self.sink.probe() if text is None else text
        try:
            if probe is None:
                raise RuntimeError("the probe batch was removed")
            found: dict[str, Any] = (
                outcome(shared.attention) if text is None else capture_text(model, text, self.plan)
            )
            layers = [outcome(layer) for layer in found.values()]
            if not layers:
                raise RuntimeError("no attention was computed in the probe forward")
            rollout = rollout_record(found) if self.plan.rollout else None
            for layer in layers:
                layer.head_mean = None  # the device tensors go now
                layer.module_type, layer.order = self._types.get(layer.name.split("#")[0], ("", 0))
            store_images = isinstance(probe, Probe) and self.sink.images_changed(probe)
            self.sink.enqueue(attention_summary.attention, probe, layers, store_images, step=step)
            if rollout is not None and isinstance(probe, Probe):
                write_maps(self.sink, step, probe, "", rollout, auto_selected=False)
        except Exception:  # noqa: BLE001 - recording must never break the user's training
            self.stop("Insight stopped recording attention")
