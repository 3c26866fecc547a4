"""Attention of text probes through the public API: a padded batch on a tiny HuggingFace GPT-2 (the chosen
query is each sequence's last real token) and BERT classifier (its [CLS] token), checked against the
model's own `output_attentions=True` at the weights each probe pass saw; padded keys get zero attention;
training stays bit-identical."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")

from helpers import assert_training_unchanged, state_copy  # noqa: E402
from test_text_probes import (  # noqa: E402
    STEPS,
    L,
    N,
    Tokenizer,
    bert_step,
    gpt2_step,
    probe_batch,
    tiny_bert,
    tiny_gpt2,
    train,
)

from tb_plugin_insight import InsightWriter, read  # noqa: E402

CODE_STEP = 1 / 255  # attention is stored as uint8 codes of probabilities


def truth(model: Any, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """(N, heads, Q, K) attention per layer from the model itself, at `state`."""
    ids, mask, _ = probe_batch()
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    return tuple(a.float() for a in out.attentions)


def recorded(
    tmp_path: Path, make: Any, step: Any, implementation: str = "eager"
) -> tuple[Any, list[dict[str, Any]], list[Any]]:
    ids, mask, labels = probe_batch()
    model = make()
    model.set_attn_implementation(implementation)  # the truth comes from an eager copy
    before = train(
        model,
        step,
        InsightWriter(str(tmp_path)),
        probe={"input_ids": ids, "attention_mask": mask, "labels": labels},
        tokenizer=Tokenizer(),
        attention_every=1,
    )
    reader = read(tmp_path)
    run = reader.runs[0]
    names = sorted({str(name) for name in reader.attention_stats(run)["layer"]})
    return reader, [reader.attention(run, name) for name in names], before


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_gpt2_padded_batch_attention_of_each_last_real_token(tmp_path: Path, implementation: str) -> None:
    _, layers, before = recorded(tmp_path, tiny_gpt2, gpt2_step, implementation)
    _, mask, _ = probe_batch()
    last = [int(m.nonzero().max()) for m in mask]
    assert last == [L - 1, 4, L - 1]
    assert len(layers) == 2
    fresh = tiny_gpt2()
    fresh.set_attn_implementation("eager")
    for s in range(STEPS):
        expected = truth(fresh, before[s])
        for layer, attn in zip(layers, expected):
            assert layer["queryRule"] == "last_token" and list(layer["steps"]) == list(range(STEPS))
            chosen = attn[torch.arange(N), :, torch.tensor(last)]  # (N, heads, K)
            stored = torch.as_tensor(layer["maps"][s])
            assert stored.shape == chosen.shape
            assert torch.all((stored - chosen).abs() <= CODE_STEP)
            assert torch.all(stored[1, :, 5:] == 0)  # padded keys: no attention
            assert not torch.allclose(chosen[1], attn[1, :, L - 1])  # Q-1 (padding) is another row


def test_layers_route_says_the_probe_is_text(tmp_path: Path) -> None:
    from test_plugin import get_json, make_client

    recorded(tmp_path, tiny_gpt2, gpt2_step)
    run = read(tmp_path).runs[0]
    body = get_json(make_client(tmp_path), f"/attention_layers?run={run}")
    assert body["text"] is True and [layer["queryRule"] for layer in body["layers"]] == ["last_token"] * 2
    assert all(layer["queryIndex"] == -1 and layer["numImages"] == N for layer in body["layers"])


def test_bert_attention_of_the_cls_token(tmp_path: Path) -> None:
    _, layers, before = recorded(tmp_path, tiny_bert, bert_step)
    fresh = tiny_bert()
    fresh.set_attn_implementation("eager")
    assert len(layers) == 2
    for s in (0, STEPS - 1):
        expected = truth(fresh, before[s])
        for layer, attn in zip(layers, expected):
            assert layer["queryRule"] == "first"
            stored = torch.as_tensor(layer["maps"][s])
            assert torch.all((stored - attn[:, :, 0]).abs() <= CODE_STEP)
            assert torch.all(stored[1, :, 5:] == 0)


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_training_is_bit_identical_with_text_attention(tmp_path: Path, name: str) -> None:
    make, step = {"bert": (tiny_bert, bert_step), "gpt2": (tiny_gpt2, gpt2_step)}[name]
    ids, mask, labels = probe_batch()

    def final_state(watched: bool) -> dict[str, torch.Tensor]:
        model = make()
        writer = InsightWriter(str(tmp_path / f"{watched}")) if watched else None
        train(model, step, writer, probe={"input_ids": ids, "attention_mask": mask, "labels": labels},
              attention_every=1)  # fmt: skip
        return state_copy(model)

    assert_training_unchanged(final_state)
