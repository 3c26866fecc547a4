"""Transformer health through the public API: massive activations of token layers (count, channels,
alert with its first step), the peak-to-RMS ratio against a direct computation, no alert on a normal
model, the routes' validation, and old logdirs still answering."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import assert_training_unchanged
from test_plugin import get_json, make_client
from torch import nn

from conftest import write_run
from tb_plugin_insight import InsightWriter, read

PLANT_STEP = 3  # the planted channel turns massive from this training step on
CHANNEL = 5
STEPS = 6
FIXTURES = Path(__file__).resolve().parent / "fixtures"


class Plant(nn.Module):
    """Scales its input per channel (a parameter, so watched by default); `boost` multiplies one channel
    by 1000 once switched on: a planted massive activation."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(width))
        self.boost = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * self.scale
        if self.boost != 1.0:
            factor = torch.ones(y.shape[-1])
            factor[CHANNEL] = self.boost
            y = y * factor
        return y


class TokenModel(nn.Module):
    """A tiny token model: embedding, a transformer encoder layer, the plant, a head over the tokens."""

    def __init__(self, seed: int = 0, width: int = 32) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(64, width)
        self.block = nn.TransformerEncoderLayer(width, 4, 64, dropout=0.0, batch_first=True)
        self.plant = Plant(width)
        self.head = nn.Linear(width, 64)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.plant(self.block(self.embed(ids))))


def train(model: TokenModel, logdir: Path | None, *, every: int = 1, **watch: Any) -> dict[int, torch.Tensor]:
    """STEPS steps of SGD on fixed token batches; the plant boosts channel CHANNEL from PLANT_STEP on.
    Returns the plant's output at each step (read by a test hook, to check against)."""
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    seen: dict[int, torch.Tensor] = {}
    step = {"now": 0}
    hook = model.plant.register_forward_hook(
        lambda m, a, out: seen.setdefault(step["now"], out.detach().clone())
    )
    writer = InsightWriter(str(logdir)) if logdir is not None else None
    if writer is not None:
        writer.watch(model, every=every, **watch)
    for s in range(STEPS):
        step["now"] = s
        model.plant.boost = 1000.0 if s >= PLANT_STEP else 1.0
        ids = torch.randint(0, 64, (4, 12), generator=gen)
        opt.zero_grad()
        logits = model(ids)
        loss = nn.functional.cross_entropy(logits.reshape(-1, 64), ids.reshape(-1))
        loss.backward()
        opt.step()
    hook.remove()
    if writer is not None:
        writer.close()
    return seen


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, torch.Tensor]]:
    logdir = tmp_path_factory.mktemp("health")
    outputs = train(TokenModel(), logdir / "planted")
    return logdir, outputs


def _rows(frame: Any, layer: str) -> Any:
    return frame[frame["layer"] == layer].sort_values("step")


def test_planted_massive_channel_is_counted_with_its_index_from_its_step(planted: Any) -> None:
    logdir, outputs = planted
    table = _rows(read(logdir).massive_activations("planted"), "plant")
    assert list(table["step"]) == list(range(STEPS))
    for step, count, index, ratio in zip(
        table["step"], table["massiveCount"], table["topIndex0"], table["topRatio0"]
    ):
        out = outputs[step]
        peaks = out.abs().amax(dim=(0, 1))
        median = peaks.median()
        direct = peaks / median
        assert count == int((direct > 100).sum())
        assert count == (1 if step >= PLANT_STEP else 0)
        assert index == int(direct.argmax())
        assert ratio == pytest.approx(float(direct.max()), rel=1e-5)
    assert set(table["topIndex0"][table["step"] >= PLANT_STEP]) == {CHANNEL}


def test_massive_alert_names_layer_channel_and_first_step(planted: Any) -> None:
    logdir, _ = planted
    alerts = read(logdir).health_alerts("planted")
    massive = [a for a in alerts if a["kind"] == "massive_activations"]
    assert [a["layer"] for a in massive] == ["plant"]  # the head after it mixes channels: no alert there
    alert = massive[0]
    assert alert["first_step"] == PLANT_STEP
    assert alert["head"] is None
    assert alert["channels"] == [CHANNEL]
    assert alert["threshold"] == 100.0
    assert alert["value"] > 100
    assert alert["last_step"] == STEPS - 1 and alert["steps"] == STEPS - PLANT_STEP
    assert set(alert) >= {"kind", "layer", "head", "first_step", "value", "threshold"}
    # a ratio above the planted one: no massive alert
    assert not [
        a
        for a in read(logdir).health_alerts("planted", massive_ratio=1e5)
        if a["kind"] == "massive_activations"
    ]


def test_peak_to_rms_matches_a_direct_computation(planted: Any) -> None:
    logdir, outputs = planted
    table = _rows(read(logdir).peak_to_rms("planted"), "plant")
    for step, ratio in zip(table["step"], table["peakToRms"]):
        out = outputs[step].double()
        direct = float(out.abs().max() / out.square().mean().sqrt())
        assert ratio == pytest.approx(direct, rel=1e-4)


def test_peak_to_rms_alert_at_a_lower_threshold(planted: Any) -> None:
    logdir, outputs = planted
    boosted = outputs[PLANT_STEP].double()
    ratio = float(boosted.abs().max() / boosted.square().mean().sqrt())
    alerts = read(logdir).health_alerts("planted", peak_rms=ratio * 0.9)
    plant = [a for a in alerts if a["kind"] == "peak_to_rms" and a["layer"] == "plant"]
    assert len(plant) == 1 and plant[0]["first_step"] == PLANT_STEP
    assert plant[0]["value"] == pytest.approx(ratio, rel=1e-4)


def test_no_alert_on_a_normal_token_model(tmp_path: Path) -> None:
    model = TokenModel(seed=2)
    model.plant.boost = 1.0
    gen = torch.Generator().manual_seed(3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with InsightWriter(str(tmp_path / "normal")) as writer:
        writer.watch(model)
        for _ in range(20):
            ids = torch.randint(0, 64, (4, 12), generator=gen)
            opt.zero_grad()
            nn.functional.cross_entropy(model(ids).reshape(-1, 64), ids.reshape(-1)).backward()
            opt.step()
    reader = read(tmp_path)
    assert reader.health_alerts("normal") == []
    table = reader.massive_activations("normal")
    assert (
        len(table["step"]) > 0
        and (np.asarray(table["massiveCount"])[~np.isnan(table["massiveCount"])] == 0).all()
    )


def test_only_token_layers_get_massive_rows(planted: Any) -> None:
    logdir, _ = planted
    table = read(logdir).massive_activations("planted")
    counted = set(table["layer"][~np.isnan(np.asarray(table["massiveCount"], dtype=float))])
    assert {"embed", "plant", "head", "block.linear1", "block.norm1"} <= counted


def test_cnn_writes_no_massive_table_and_alerts_answer(tmp_path: Path) -> None:
    write_run(tmp_path / "cnn", steps=3)
    reader = read(tmp_path)
    assert len(reader.massive_activations("cnn")["step"]) == 0
    assert reader.health_alerts("cnn") == []
    body = get_json(make_client(tmp_path), "/health_alerts?run=cnn")
    assert body["offered"] == ["peakToRms"] and body["alerts"] == []


def test_health_off_and_option_checks(tmp_path: Path) -> None:
    train(TokenModel(), tmp_path / "off", health=False)
    assert len(read(tmp_path).massive_activations("off")["step"]) == 0
    model = TokenModel()
    with InsightWriter(str(tmp_path / "bad")) as writer:
        for ratio in (1, 0.5, math.inf, "100", True):
            with pytest.raises(ValueError, match="massive_ratio"):
                writer.watch(model, massive_ratio=ratio)
        with pytest.raises(TypeError, match="health"):
            writer.watch(model, health="yes")


def test_counting_ratio_is_kept_and_used_by_the_layer_route(tmp_path: Path) -> None:
    train(TokenModel(), tmp_path / "r", massive_ratio=2000.0)
    client = make_client(tmp_path)
    body = get_json(client, "/layer_health?run=r&layer=plant")
    assert body["massive"]["ratio"] == 2000.0
    assert body["massiveCount"] == [0.0] * STEPS  # ~1000x is below 2000x
    assert body["massive"]["channels"] == [[]] * STEPS
    assert len(body["peakToRms"]) == len(body["steps"]) == STEPS


def test_training_unchanged_with_health(tmp_path: Path) -> None:
    def final(watched: bool) -> dict[str, torch.Tensor]:
        model = TokenModel()
        train(model, tmp_path / f"w{int(watched)}" if watched else None)
        return {k: v.clone() for k, v in model.state_dict().items()}

    assert_training_unchanged(final)


def test_routes(planted: Any) -> None:
    logdir, _ = planted
    client = make_client(logdir)
    body = get_json(client, "/health_alerts?run=planted&massive_ratio=200&peak_rms=1e6")
    assert body["thresholds"] == {
        "massive_ratio": 200.0,
        "peak_rms": 1e6,
        "entropy_min": 0.1,
        "logit_growth": 10,
    }
    assert body["offered"] == ["peakToRms", "massiveCount"]
    assert [a["layer"] for a in body["alerts"]] == ["plant"]
    layer = get_json(client, "/layer_health?run=planted&layer=plant")
    assert layer["massiveCount"] == [0.0] * PLANT_STEP + [1.0] * (STEPS - PLANT_STEP)
    assert layer["massive"]["channels"][-1] == [CHANNEL]
    heat = get_json(client, "/stats_heatmap?run=planted&stat=massiveCount&max_steps=2")
    row = heat["values"][heat["layers"].index("plant")]
    assert row == [0.0, 1.0]  # thinned: each column the maximum of its steps
    heat = get_json(client, "/stats_heatmap?run=planted&stat=peakToRms")
    assert heat["steps"] == list(range(STEPS)) and len(heat["values"]) == len(heat["layers"])


@pytest.mark.parametrize(
    "query",
    [
        "/health_alerts",
        "/health_alerts?run=planted&massive_ratio=abc",
        "/health_alerts?run=planted&massive_ratio=1",
        "/health_alerts?run=planted&massive_ratio=nan",
        "/health_alerts?run=planted&peak_rms=inf",
        "/health_alerts?run=planted&peak_rms=-3",
        "/layer_health?run=planted",
        "/stats_heatmap?run=planted&stat=entropy",
    ],
)
def test_bad_parameters_get_400(planted: Any, query: str) -> None:
    body = get_json(make_client(planted[0]), query, status=400)
    assert body["error"]


@pytest.mark.parametrize("query", ["/health_alerts?run=nope", "/layer_health?run=planted&layer=nope"])
def test_unknown_run_or_layer_get_404(planted: Any, query: str) -> None:
    get_json(make_client(planted[0]), query, status=404)


def test_v1_logdir_answers_health(tmp_path: Path) -> None:
    client = make_client(FIXTURES / "v1_logdir")
    body = get_json(client, "/health_alerts?run=run")
    assert body["offered"] == ["peakToRms"] and isinstance(body["alerts"], list)
    layer = get_json(client, "/layer_health?run=run&layer=0")
    assert "massiveCount" not in layer and len(layer["peakToRms"]) == len(layer["steps"]) > 0
    assert all(v is None or v >= 1 for v in layer["peakToRms"])
    heat = get_json(client, "/stats_heatmap?run=run&stat=peakToRms")
    assert heat["layers"] and heat["steps"]


def test_huggingface_gpt2_token_layers_and_no_alert(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100, n_positions=32)
    model = transformers.GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    with InsightWriter(str(tmp_path / "gpt2")) as writer:
        writer.watch(model, every=2)
        for _ in range(6):
            ids = torch.randint(0, 100, (4, 16))
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad()
    reader = read(tmp_path)
    table = reader.massive_activations("gpt2")
    token = set(table["layer"][~np.isnan(np.asarray(table["massiveCount"], dtype=float))])
    assert {"transformer.h.0.mlp.c_fc", "transformer.h.1.ln_2", "lm_head"} <= token  # HF's Conv1D too
    assert reader.health_alerts("gpt2") == []


def test_massive_reduction_edge_cases() -> None:
    from tb_plugin_insight import metadata
    from tb_plugin_insight.capture.health import massive_activations

    top = metadata.MASSIVE_TOP
    few = massive_activations(torch.randn(2, 3, 4), 100.0)  # fewer channels than stored ratios
    assert few.shape == (len(metadata.MASSIVE_FIELDS),) and few[0] == 0
    assert torch.isnan(few[2 + 4 : 2 + top]).all() and torch.isnan(few[2 + top + 4 :]).all()
    assert sorted(few[2 : 2 + 4].tolist()) == [0, 1, 2, 3]
    zeros = massive_activations(torch.zeros(2, 3, 16), 100.0)  # median peak 0: nothing is massive
    assert zeros[0] == 0 and zeros[1] == 0 and (zeros[2 + top :] == 0).all()
    x = torch.randn(2, 3, 16)
    x[0, 0, 2] = math.nan  # NaN values are the statistics' to count, not a massive channel
    x[1, 2, 7] = math.inf
    out = massive_activations(x, 100.0)
    assert out[0] == 1 and out[2] == 7 and math.isinf(out[2 + top])
    half = massive_activations(x.bfloat16(), 100.0)
    assert half.dtype == torch.float64 and half[2] == 7
