"""Dead units of token layers through the public API: a unit is a hidden dimension (the last one) of a
transformer's (N, L, C) outputs, from the same rule as the massive activations' token layers
(capture/layout.py), while 1-D CNNs keep their channels on dimension 1. A dead hidden unit is planted
(a bias of -1e4 before the activation) at a known step and read back through the `/units` route."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from test_plugin import get_json, make_client
from torch import nn

from tb_plugin_insight import InsightWriter, read
from tb_plugin_insight.capture import layout

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: models are built from configs

PLANT_STEP = 2  # the planted hidden unit is dead from this training step on
STEPS = 4
UNIT = 3
BATCH, TOKENS, VOCAB = 4, 8, 40


class TokenMLP(nn.Module):
    """Embedding, then a transformer MLP on the tokens (Linear, activation, Linear), then a head."""

    def __init__(self, activation: nn.Module, width: int = 12, hidden: int = 20) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.fc1 = nn.Linear(width, hidden)
        self.act = activation
        self.fc2 = nn.Linear(hidden, width)
        self.head = nn.Linear(width, VOCAB)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc2(self.act(self.fc1(self.embed(ids)))))


class ConvNet1d(nn.Module):
    """A 1-D CNN: outputs (N, C, L) with C != L."""

    def __init__(self, channels: int = 6) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, channels, 3, padding=1)
        self.norm = nn.BatchNorm1d(channels)
        self.act = nn.ReLU()
        self.head = nn.Linear(channels, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.norm(self.conv(x))).mean(dim=2))


def train(
    model: nn.Module,
    run: Path,
    bias: nn.Parameter,
    batch: Callable[[torch.Generator], tuple[Any, torch.Tensor]],
    loss: Callable[[Any, torch.Tensor], torch.Tensor],
) -> None:
    """STEPS SGD steps, recorded at every step; from PLANT_STEP on `bias[UNIT]` is -1e4 (a dead unit)."""
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with InsightWriter(str(run)) as writer:
        writer.watch(model, every=1)
        for step in range(STEPS):
            if step == PLANT_STEP:
                with torch.no_grad():
                    bias[UNIT] = -1e4
            inputs, target = batch(gen)
            opt.zero_grad()
            loss(model(**inputs) if isinstance(inputs, dict) else model(inputs), target).backward()
            opt.step()


def token_batch(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, VOCAB, (BATCH, TOKENS), generator=gen)
    return ids, ids


def token_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.reshape(-1, VOCAB), ids.reshape(-1))


def units_of(run: Path, layer: str) -> dict[str, Any]:
    """The `/units` answer for one layer: its dead fractions per step, first dead step and channels."""
    body = get_json(make_client(run.parent), f"/units?run={run.name}")
    row = [layer_["name"] for layer_ in body["layers"]].index(layer)
    return {
        "steps": body["steps"],
        "dead": body["dead"][row],
        "deadSince": body["deadSince"][row],
        "channels": body["channels"][row],
    }


def token_layers(logdir: Path, run: str) -> set[str]:
    """The layers the massive activations measured (token layers), from the same rule as the units."""
    massive = read(logdir).massive_activations(run)
    return set(massive["layer"][~np.isnan(np.asarray(massive["massiveCount"], dtype=float))])


def assert_planted(got: dict[str, Any], hidden: int) -> None:
    assert got["steps"] == list(range(STEPS))
    assert got["channels"] == hidden
    want = [0.0] * PLANT_STEP + [1 / hidden] * (STEPS - PLANT_STEP)
    assert got["dead"] == pytest.approx(want)
    assert got["deadSince"] == PLANT_STEP


@pytest.mark.parametrize("activation", [nn.GELU(), nn.ReLU()], ids=["gelu", "relu"])
def test_dead_hidden_unit_of_a_token_mlp(tmp_path: Path, activation: nn.Module) -> None:
    torch.manual_seed(0)
    model = TokenMLP(activation)
    train(model, tmp_path / "mlp", model.fc1.bias, token_batch, token_loss)
    assert_planted(units_of(tmp_path / "mlp", "act"), hidden=20)  # not the 8 tokens
    assert units_of(tmp_path / "mlp", "fc2")["channels"] == 12
    # the same rule makes the activation a token layer for the massive activations
    assert {"embed", "fc1", "act", "fc2"} <= token_layers(tmp_path, "mlp")


def test_conv1d_channels_stay_on_dimension_1(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ConvNet1d(channels=6)

    def batch(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(BATCH, 3, 10, generator=gen), torch.randint(0, 2, (BATCH,), generator=gen)

    train(model, tmp_path / "cnn", model.norm.bias, batch, nn.functional.cross_entropy)
    assert_planted(units_of(tmp_path / "cnn", "act"), hidden=6)  # channels, not the 10 positions
    assert units_of(tmp_path / "cnn", "conv")["channels"] == 6
    assert not token_layers(tmp_path, "cnn") & {"conv", "norm", "act"}  # (N, C, L): no token layers


def test_tiny_gpt2_mlp_activation_counts_hidden_units(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=1, n_embd=16, n_head=2, vocab_size=VOCAB, n_positions=16, bos_token_id=0, eos_token_id=0
    )
    model = transformers.GPT2LMHeadModel(config)
    c_fc = model.transformer.h[0].mlp.c_fc

    def batch(gen: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        ids = token_batch(gen)[0]
        return {"input_ids": ids}, ids

    train(model, tmp_path / "gpt2", c_fc.bias, batch, lambda out, ids: token_loss(out.logits, ids))
    assert_planted(units_of(tmp_path / "gpt2", "transformer.h.0.mlp.act"), hidden=64)  # 4 x n_embd
    assert units_of(tmp_path / "gpt2", "transformer.h.0.mlp.c_proj")["channels"] == 16
    assert "transformer.h.0.mlp.act" in token_layers(tmp_path, "gpt2")


def test_tiny_bert_intermediate_activation_counts_hidden_units(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
        max_position_embeddings=16, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config)
    dense = model.bert.encoder.layer[0].intermediate.dense

    def batch(gen: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        ids = torch.randint(0, VOCAB, (BATCH, TOKENS), generator=gen)
        return {"input_ids": ids}, torch.randint(0, 2, (BATCH,), generator=gen)

    train(
        model, tmp_path / "bert", dense.bias, batch, lambda out, y: nn.functional.cross_entropy(out.logits, y)
    )
    layer = "bert.encoder.layer.0.intermediate.intermediate_act_fn"
    assert_planted(units_of(tmp_path / "bert", layer), hidden=24)


def test_layout_rule_on_structures() -> None:
    """The shared rule on its own: the feeding module decides for pass-through modules; a feeding
    module whose size does not fit (a block that permutes back) leaves it to the rank."""
    mlp = TokenMLP(nn.GELU())
    layouts = layout.Layouts(mlp, list(mlp.children()))
    assert layouts.channel_dim(mlp.act, (4, 8, 20)) == 2 and layouts.is_token_output(mlp.act, (4, 8, 20))
    cnn = ConvNet1d()
    layouts = layout.Layouts(cnn, list(cnn.children()))
    assert layouts.channel_dim(cnn.act, (4, 6, 10)) == 1 and not layouts.is_token_output(cnn.act, (4, 6, 10))
    # ConvNeXt-style: Linear + GELU on (N, H, W, C); the block's own output is permuted back to (N, C, H, W)
    block = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1), nn.LayerNorm(8), nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 8)
    )
    layouts = layout.Layouts(block, [block, block[3]])
    assert layouts.channel_dim(block[3], (2, 5, 5, 32)) == 3
    assert layouts.channel_dim(block, (2, 8, 5, 5)) == 1
    # a whole encoder layer: its last leaves are a dropout after a Linear, (N, L, C) with C = d_model
    encoder = nn.TransformerEncoderLayer(16, 2, 24, batch_first=True)
    layouts = layout.Layouts(encoder, [encoder])
    assert layouts.is_token_output(encoder, (2, 7, 16))
    # a LayerNorm over (C, H, W) is no channels-last layer: its 4-D output keeps channels on dimension 1
    norm = nn.LayerNorm([8, 5, 5])
    assert layout.Layouts(norm, [norm]).channel_dim(norm, (2, 8, 5, 5)) == 1
    # a 3-D output of an unknown module is a token layer; 4-D and more keep dimension 1
    assert layout.channel_dim([], (2, 7, 5)) == 2 and layout.channel_dim([], (2, 7, 5, 5)) == 1
