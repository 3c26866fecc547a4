"""Token saliency of a text probe every `token_saliency_every` steps, with the model's predictions.

Runs in the probe pass (before the counted forward of a due step, hooks suspended): one eval-mode
forward of the probe sequences with the input embedding's output made a leaf, `torch.autograd.grad` of
the explained logits (and `token_saliency_steps` more forwards for integrated gradients); the maths is
`explain/token_saliency.py`. Training is not touched (bit-identical weights). Records: PROBE_TOKENS and
TOKEN_SALIENCY (`token_records.py`).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from tb_plugin_insight import token_records
from tb_plugin_insight.capture.maps import model_device
from tb_plugin_insight.capture.text_probe import TextProbe
from tb_plugin_insight.explain import token_saliency as ts
from tb_plugin_insight.options import CAM, TokenSaliency
from tb_plugin_insight.recorders.base import Recorder, RecordSink, WatchContext


class TokenPlan:
    """What a watch records of its text probe (checked at watch() time)."""

    def __init__(self, every: int, options: TokenSaliency, target: Optional[str], layer: str) -> None:
        self.every = every
        self.methods = tuple(
            dict.fromkeys([options.methods] if isinstance(options.methods, str) else options.methods)
        )
        self.target = target  # None: decided at the first pass (label for language models with labels)
        self.steps = options.steps
        self.baseline = options.baseline
        self.layer = layer


def check_image_options(ctx: WatchContext) -> None:
    """With a text probe, CAM options the user set are errors naming the text twin (image saliency
    options: the saliency recorder says so)."""
    cam: CAM = ctx.options["cam"]
    if cam.layer is not None or cam.methods != CAM().methods:
        raise ValueError(
            "cam_layer/cam_methods explain image probes, but the probe is text: token saliency"
            " (token_saliency_methods=) explains each token"
        )


def plan_tokens(model: nn.Module, probe: TextProbe, options: TokenSaliency, cam: CAM) -> TokenPlan:
    """Check the token-saliency options with a dry run on the probe (gradient x input).

    Raises:
        ValueError: no embedding layer, model outputs that are not logits, target "label" without
            labels, baseline "pad" without a pad token (each message names the fix).
    """
    every = options.every if options.every is not None else (cam.every or 100)
    layer, embedding = ts.find_embedding(model, options.layer)
    plan = TokenPlan(every, options, options.target, layer)
    if plan.target == "label" and probe.labels is None:
        raise ValueError("token_saliency_target='label' needs probe labels: pass (inputs, labels)")
    if plan.baseline == "pad":
        _pad_embedding(model, probe, embedding)
    explanation = _explain(model, probe, plan, embedding, methods=("grad_x_input",))  # a dry run
    if plan.target is None:
        lm = explanation.task == ts.NEXT_TOKEN
        plan.target = "label" if lm and probe.labels is not None else cam.target
        if plan.target == "label" and probe.labels is None:
            plan.target = "predicted"
        if plan.target == "label":  # the labels must be classes / tokens of these logits
            _explain(model, probe, plan, embedding, methods=("grad_x_input",))
    return plan


def _pad_embedding(model: nn.Module, probe: TextProbe, embedding: nn.Module) -> torch.Tensor:
    pad = probe.pad_token_id()
    if pad is None:
        pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    weight = getattr(embedding, "weight", None)
    if not isinstance(pad, int) or isinstance(pad, bool):
        raise ValueError(
            "token_saliency_baseline='pad' needs a pad token id: pass tokenizer= with a pad token, or set"
            " model.config.pad_token_id; or use token_saliency_baseline='zeros'"
        )
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not 0 <= pad < weight.shape[0]:
        raise ValueError(
            f"token_saliency_baseline='pad' needs an embedding table with row {pad} (an nn.Embedding);"
            " use token_saliency_baseline='zeros'"
        )
    return weight[pad].detach()


def _explain(
    model: nn.Module,
    probe: TextProbe,
    plan: TokenPlan,
    embedding: nn.Module,
    methods: Optional[tuple[str, ...]] = None,
) -> ts.TokenExplanation:
    device = model_device(model)
    labels = probe.labels.to(device) if probe.labels is not None else None
    baseline = _pad_embedding(model, probe, embedding) if plan.baseline == "pad" else None
    return ts.explain_tokens(
        model,
        lambda: probe.call(model, device),
        embedding,
        probe.mask.to(device),
        methods or plan.methods,
        classes=labels if plan.target == "label" else None,
        steps=plan.steps,
        baseline=baseline,
    )


class TokenSaliencyRecorder(Recorder):
    """`watch(probe=<text probe>, token_saliency_every=..., token_saliency_methods=...)`."""

    name = "token_saliency"
    options_keyword = "token_saliency"
    options_group = TokenSaliency
    probe_role = "tokens"

    stopped = "Insight stopped recording token saliency of its text probe"

    def __init__(self, sink: RecordSink, plan: TokenPlan) -> None:
        super().__init__()
        self.sink = sink
        self.plan = plan
        self._stored: Optional[str] = None  # fingerprint of the sequences last written

    @classmethod
    def build(cls, ctx: WatchContext) -> Optional[Recorder]:
        options: TokenSaliency = ctx.options["token_saliency"]
        probe = ctx.text_probe
        if probe is None:
            if options != TokenSaliency():
                raise ValueError(
                    "token saliency needs a text probe: pass probe={'input_ids': ..., 'labels': ...} or"
                    " probe=(token_ids, labels) (or call set_probe with them)"
                )
            return None
        check_image_options(ctx)
        plan = plan_tokens(ctx.model, probe, options, ctx.options["cam"])
        return cls(ctx.sink, plan) if plan.every else None

    def due(self, step: int) -> bool:
        return not self.failed and step % self.plan.every == 0 and self.sink.text_probe() is not None

    def record_probe(self, step: int, model: nn.Module, shared: Any) -> None:
        probe = self.sink.text_probe()
        try:
            if probe is None:
                raise RuntimeError("the text probe was removed")
            _, embedding = ts.find_embedding(model, self.plan.layer)
            if self.plan.target == "label" and probe.labels is None:
                raise ValueError("the new text probe has no labels, and token_saliency_target is 'label'")
            with torch.inference_mode(False):
                explanation = _explain(model, probe, self.plan, embedding)
            document = _document(probe, explanation)
            fingerprint = probe.fingerprint()
            if fingerprint != self._stored:
                document.update(_sequences(probe, explanation.task))
                self._stored = fingerprint
            saliency = {m: v.numpy() for m, v in explanation.attributions.items()}
            info = {
                "num_images": len(probe.ids),
                "width": probe.ids.shape[1],
                "class_names": probe.class_names,
                "token_task": explanation.task,
                "token_target": self.plan.target,
                "embedding_layer": self.plan.layer,
                "token_steps": self.plan.steps,
                "token_baseline": self.plan.baseline,
            }
            self.sink.enqueue(token_records.build, probe.name, document, saliency, info, step=step)
        except Exception:  # noqa: BLE001 - recording must never break the user's training
            self.stop(self.stopped)


def _name(probe: TextProbe, task: str, index: int) -> str:
    if task == ts.NEXT_TOKEN:
        return probe.token_name(index)
    names = probe.class_names
    return names[index] if 0 <= index < len(names) else str(index)


def _document(probe: TextProbe, explanation: ts.TokenExplanation) -> dict[str, Any]:
    task = explanation.task
    predicted = [int(v) for v in explanation.predicted.tolist()]
    return {
        "predicted": predicted,
        "probability": [float(np.float32(p)) for p in explanation.probability.tolist()],
        "predictedNames": [_name(probe, task, p) for p in predicted],
        "targets": [int(v) for v in explanation.targets.tolist()],
        "positions": None if explanation.positions is None else [int(p) for p in explanation.positions],
    }


def _sequences(probe: TextProbe, task: str) -> dict[str, Any]:
    labels = None if probe.labels is None else [int(v) for v in probe.labels.tolist()]
    return {
        "tokens": probe.tokens,
        "ids": probe.ids.tolist(),
        "mask": probe.mask.tolist(),
        "labels": labels,
        "labelNames": None if labels is None else [_name(probe, task, v) for v in labels],
    }
