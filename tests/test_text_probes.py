"""Text probes through the public API, on the language models people train: a tiny HuggingFace BERT
classifier and GPT-2 language model (built from configs, offline) and an own embedding + TransformerEncoder
classifier. Token saliency is checked against a direct computation on the same weights, statistics and
gradients are recorded, training stays bit-identical, bad combinations get errors naming the fix."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: the models are built from configs
transformers = pytest.importorskip("transformers")

from helpers import assert_training_unchanged, hook_count, state_copy  # noqa: E402

from tb_plugin_insight import InsightWriter, TokenSaliency, read  # noqa: E402
from tb_plugin_insight.token_records import CODE_MAX  # noqa: E402

transformers.logging.set_verbosity_error()
N, L, VOCAB = 3, 7, 40
STEPS = 3


class Tokenizer:
    """The part of a HuggingFace tokenizer Insight uses: token strings by id, and a pad token."""

    pad_token_id = 0

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return ["<pad>" if i == 0 else ("<script>" if i == 5 else f"w{i}") for i in ids]


def probe_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (N, L), generator=gen)
    ids[0, 2] = 5  # shown as "<script>": escaped in the tab
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # right padding
    ids[1, 5:] = 0
    labels = torch.tensor([0, 1, 2])
    return ids, mask, labels


def tiny_bert() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=16,
        num_labels=3,
        pad_token_id=0,
    )
    return transformers.BertForSequenceClassification(config)


def tiny_gpt2() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=2, n_positions=16, bos_token_id=1, eos_token_id=1
    )
    return transformers.GPT2LMHeadModel(config)


class OwnClassifier(nn.Module):
    """Token embedding + learned positions + nn.TransformerEncoder, mean-pooled, linear head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 16)
        self.pos = nn.Parameter(torch.randn(L, 16) * 0.1)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def from_embeddings(self, e: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(e + self.pos).mean(dim=1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.from_embeddings(self.embed(ids))


def train(model: nn.Module, step: Callable[[nn.Module], torch.Tensor], writer: Any = None, **watch: Any):
    """STEPS SGD steps; the weights before each step (what each step's probe pass saw)."""
    if writer is not None:
        writer.watch(model, every=1, **watch)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    before = []
    torch.manual_seed(3)  # dropout is on: the probe pass must not move the RNG
    for _ in range(STEPS):
        before.append(copy.deepcopy(model.state_dict()))
        model.train()
        step(model).backward()
        opt.step()
        opt.zero_grad()
    if writer is not None:
        writer.close()
    return before


def bert_step(model: nn.Module) -> torch.Tensor:
    ids, mask, labels = probe_batch()
    return model(input_ids=ids, attention_mask=mask, labels=labels).loss


def gpt2_step(model: nn.Module) -> torch.Tensor:
    ids, mask, _ = probe_batch()
    return model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss


def own_step(model: nn.Module) -> torch.Tensor:
    ids, _, labels = probe_batch()
    return nn.functional.cross_entropy(model(ids), labels)


def direct(model: nn.Module, logits_of: Callable[[torch.Tensor], torch.Tensor], mask, targets, lm: bool):
    """grad x input at the token embeddings, summed over the hidden dimension, by hand."""
    ids = probe_batch()[0]
    model.eval()
    e = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = logits_of(e)
    if lm:
        positions = torch.tensor([int(m.nonzero().max()) for m in mask])
        logits = logits[torch.arange(N), positions]
    chosen = logits.argmax(1) if targets is None else targets
    score = logits.gather(1, chosen[:, None]).sum()
    (grad,) = torch.autograd.grad(score, e)
    return (grad * e).sum(-1).detach() * mask, logits.detach()


def assert_close_to_stored(stored: torch.Tensor, expected: torch.Tensor) -> None:
    """Stored int8 codes times each sequence's scale: within scale / 254 (plus float noise)."""
    scale = expected.abs().amax(dim=1, keepdim=True)
    assert torch.all((stored - expected).abs() <= scale / (2 * CODE_MAX) + 1e-5 * (1 + scale))
    assert expected.abs().max() > 0


def test_bert_classifier_token_saliency_matches_a_direct_computation(tmp_path: Path) -> None:
    ids, mask, labels = probe_batch()
    names = [[f"tok{i}" for i in row] for row in ids.tolist()]
    names[0][2] = "<script>"
    model = tiny_bert()
    before = train(
        model,
        bert_step,
        InsightWriter(str(tmp_path)),
        probe={"input_ids": ids, "attention_mask": mask, "labels": labels},
        token_names=names,
        class_names=["neg", "neu", "pos"],
        token_saliency=TokenSaliency(
            every=1, methods=("grad_x_input", "integrated_gradients"), target="label"
        ),
    )
    assert hook_count(model) == 0  # every hook is gone after close, the embedding tap's too
    reader = read(tmp_path)
    run = reader.runs[0]
    gx = reader.token_saliency(run, "grad_x_input")
    assert gx.layer == "bert.embeddings.word_embeddings"
    assert gx.steps.tolist() == list(range(STEPS)) and gx.values.shape == (STEPS, N, L)
    fresh = tiny_bert()
    for step in (0, STEPS - 1):
        fresh.load_state_dict(before[step])
        expected, logits = direct(
            fresh, lambda e: fresh(inputs_embeds=e, attention_mask=mask).logits, mask, labels, lm=False
        )
        assert_close_to_stored(torch.as_tensor(gx.values[step], dtype=torch.float32), expected)
        document = reader.text_probe(run, step=step)
        assert document["predicted"] == logits.argmax(1).tolist()
        assert document["targets"] == labels.tolist()
        assert document["predictedNames"] == [["neg", "neu", "pos"][c] for c in document["predicted"]]
    document = reader.text_probe(run)
    assert document["tokens"] == names and document["mask"] == mask.tolist()
    assert document["task"] == "classification" and document["labelNames"] == ["neg", "neu", "pos"]
    # integrated gradients: each sequence's tokens sum to S(E) - S(0) (Gauss-Legendre, 16 points)
    ig = reader.token_saliency(run, "integrated_gradients").values[0]
    fresh.load_state_dict(before[0])
    fresh.eval()
    with torch.no_grad():
        e = fresh.get_input_embeddings()(ids)
        s_e = fresh(inputs_embeds=e, attention_mask=mask).logits.gather(1, labels[:, None])[:, 0]
        s_0 = fresh(inputs_embeds=torch.zeros_like(e), attention_mask=mask).logits.gather(1, labels[:, None])[
            :, 0
        ]
    sums = torch.as_tensor(ig.sum(axis=1), dtype=torch.float32)
    assert torch.allclose(sums, s_e - s_0, atol=0.02 * float((s_e - s_0).abs().max()) + 1e-3)
    # the usual records of the watched layers are there too
    assert "bert.embeddings.word_embeddings" in reader.layers(run)
    assert len(reader.stats(run)) > 0 and len(reader.gradients(run)) > 0


def test_gpt2_next_token_saliency_at_the_last_real_position(tmp_path: Path) -> None:
    ids, mask, _ = probe_batch()
    next_tokens = torch.tensor([3, 4, 5])
    model = tiny_gpt2()
    before = train(
        model,
        gpt2_step,
        InsightWriter(str(tmp_path)),
        probe=({"input_ids": ids, "attention_mask": mask}, next_tokens),
        tokenizer=Tokenizer(),
        token_saliency_every=1,
    )
    reader = read(tmp_path)
    run = reader.runs[0]
    values = reader.token_saliency(run).values
    fresh = tiny_gpt2()
    for step in (0, STEPS - 1):
        fresh.load_state_dict(before[step])
        expected, logits = direct(
            fresh, lambda e: fresh(inputs_embeds=e, attention_mask=mask).logits, mask, next_tokens, lm=True
        )
        assert_close_to_stored(torch.as_tensor(values[step], dtype=torch.float32), expected)
        document = reader.text_probe(run, step=step)
        assert document["task"] == "next_token"
        assert document["positions"] == [L - 1, 4, L - 1]
        assert document["targets"] == next_tokens.tolist()  # the label, given: the default target
        assert document["predicted"] == logits.argmax(1).tolist()
        assert document["predictedNames"] == Tokenizer().convert_ids_to_tokens(document["predicted"])
    document = reader.text_probe(run)
    assert document["tokens"][0][2] == "<script>" and document["tokens"][1][5] == "<pad>"
    assert document["labelNames"] == ["w3", "w4", "<script>"]
    assert all(v == 0 for v in document["saliency"]["grad_x_input"][1][5:])  # padding
    assert len(reader.stats(run)) > 0 and len(reader.gradients(run)) > 0


def test_own_transformer_encoder_classifier_with_token_ids(tmp_path: Path) -> None:
    ids, _, labels = probe_batch()
    ones = torch.ones_like(ids)
    model = OwnClassifier()
    before = train(model, own_step, InsightWriter(str(tmp_path)), probe=(ids, labels), token_saliency_every=1)
    reader = read(tmp_path)
    values = reader.token_saliency(reader.runs[0]).values
    fresh = OwnClassifier()
    fresh.get_input_embeddings = lambda: fresh.embed  # type: ignore[method-assign]
    for step in (0, STEPS - 1):
        fresh.load_state_dict(before[step])
        expected, _ = direct(fresh, fresh.from_embeddings, ones, None, lm=False)  # default: predicted
        assert_close_to_stored(torch.as_tensor(values[step], dtype=torch.float32), expected)
    assert reader.token_saliency(reader.runs[0]).layer == "embed"  # the first nn.Embedding


@pytest.mark.parametrize("name", ["bert", "gpt2", "own"])
def test_training_is_bit_identical_with_a_text_probe(tmp_path: Path, name: str) -> None:
    make, step = {
        "bert": (tiny_bert, bert_step),
        "gpt2": (tiny_gpt2, gpt2_step),
        "own": (OwnClassifier, own_step),
    }[name]
    ids, mask, labels = probe_batch()
    probe: Any = (
        (ids, labels) if name == "own" else {"input_ids": ids, "attention_mask": mask, "labels": labels}
    )

    def final_state(watched: bool) -> dict[str, torch.Tensor]:
        model = make()
        writer = InsightWriter(str(tmp_path / f"{watched}")) if watched else None
        methods = ("grad_x_input", "integrated_gradients")
        train(model, step, writer, probe=probe, token_saliency_every=1, token_saliency_methods=methods)
        return state_copy(model)

    assert_training_unchanged(final_state)


def test_bad_combinations_name_the_problem_and_the_fix(tmp_path: Path) -> None:
    ids, mask, labels = probe_batch()
    model = tiny_bert()
    writer = InsightWriter(str(tmp_path))
    text = {"input_ids": ids, "attention_mask": mask}
    cases: list[tuple[dict[str, Any], type, str]] = [
        ({"probe": text, "token_names": [["a"] * L]}, ValueError, "3 lists"),
        (
            {"probe": text, "token_names": [["a"] * (L - 1)] * N},
            ValueError,
            "token_names[0] must be a list of 7",
        ),
        ({"probe": text, "token_names": [["a"] * L] * N, "tokenizer": Tokenizer()}, ValueError, "not both"),
        ({"probe": text, "tokenizer": object()}, TypeError, "convert_ids_to_tokens"),
        ({"probe": (text, ids)}, ValueError, "one integer per sequence"),
        ({"probe": {"attention_mask": mask}}, ValueError, "'input_ids' entry"),
        ({"probe": (text, labels), "saliency_methods": "gradient"}, ValueError, "token_saliency_methods"),
        ({"probe": text, "cam_layer": "bert.pooler"}, ValueError, "probe is text"),
        ({"probe": text, "token_saliency_target": "label"}, ValueError, "needs probe labels"),
        ({"probe": text, "token_saliency_methods": "occlusion"}, ValueError, "grad_x_input"),
        ({"tokenizer": Tokenizer()}, ValueError, "need a text probe"),
        ({"probe": {**text, "attention_mask": mask[:, :3]}}, ValueError, "attention_mask must be"),
        ({"probe": text, "token_saliency_layer": "nope"}, ValueError, "not a module"),
    ]
    for keywords, error, message in cases:
        with pytest.raises(error, match=__import__("re").escape(message)):
            writer.watch(model, **keywords)
    images = torch.randn(2, 3, 8, 8)
    convnet = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    with pytest.raises(ValueError, match="this probe is images"):
        writer.watch(convnet, probe=images, tokenizer=Tokenizer())
    with pytest.raises(ValueError, match="needs a text probe"):
        writer.watch(convnet, probe=images, token_saliency_every=5)
    gpt = tiny_gpt2()
    with pytest.raises(
        ValueError, match="target class 99 is out of range"
    ):  # next tokens beyond the vocabulary
        writer.watch(gpt, probe=(ids, torch.tensor([1, 2, 99])))
    with pytest.raises(ValueError, match="needs a pad token id"):
        writer.watch(
            gpt,
            probe=(ids, labels),
            token_saliency_baseline="pad",
            token_saliency_methods="integrated_gradients",
        )
    writer.close()


@pytest.fixture(scope="module")
def token_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A plugin client over two runs: a GPT-2 with a text probe, and one without any probe."""
    from test_plugin import make_client

    root = tmp_path_factory.mktemp("token_routes")
    ids, mask, _ = probe_batch()
    with torch.random.fork_rng(devices=[]):
        train(
            tiny_gpt2(),
            gpt2_step,
            InsightWriter(str(root / "gpt2")),
            probe=({"input_ids": ids, "attention_mask": mask}, torch.tensor([3, 4, 5])),
            tokenizer=Tokenizer(),
            token_saliency_every=2,
            token_saliency_methods=["grad_x_input", "integrated_gradients"],
            token_saliency_steps=4,
        )
        train(OwnClassifier(), own_step, InsightWriter(str(root / "plain")))
    return make_client(root)


def test_token_routes_answer_and_validate(token_client: Any) -> None:
    from test_plugin import get_json

    listed = get_json(token_client, "/token_probes?run=gpt2")
    (probe,) = listed["probes"]
    assert probe["probe"] == "probe" and probe["steps"] == [0, 2] and probe["task"] == "next_token"
    assert (probe["numSequences"], probe["length"]) == (N, L)
    ig = {m["method"]: m for m in probe["methods"]}["integrated_gradients"]
    assert ig == {
        "method": "integrated_gradients",
        "target": "label",
        "embeddingLayer": "transformer.wte",
        "steps": 4,
        "baseline": "zeros",
    }
    assert get_json(token_client, "/token_probes?run=plain")["probes"] == []
    body = get_json(token_client, "/tokens?run=gpt2&step=3")
    assert body["step"] == 2 and body["steps"] == [0, 2]  # the recorded step at or before 3
    assert body["tokens"][0][2] == "<script>" and body["labelNames"] == ["w3", "w4", "<script>"]
    assert sorted(body["saliency"]) == ["grad_x_input", "integrated_gradients"]
    assert [o["name"] for o in body["overlays"]] == ["grad_x_input", "integrated_gradients"]
    assert len(body["saliency"]["grad_x_input"]) == N and len(body["saliency"]["grad_x_input"][0]) == L
    errors = [
        ("/tokens?run=gpt2", 400, "missing query parameter 'step'"),
        ("/tokens?run=gpt2&step=-1", 400, "non-negative integer"),
        ("/tokens?run=gpt2&step=1&step=2", 400, "given 2 times"),
        ("/tokens?run=gpt2&step=1&probe=other", 404, "no text probe 'other'"),
        ("/tokens?run=plain&step=1", 404, "no text probe"),
        ("/token_probes", 400, "missing query parameter 'run'"),
    ]
    for url, status, message in errors:
        assert message in get_json(token_client, url, status)["error"]["message"]


def test_huggingface_trainer_callback_records_a_text_probe(tmp_path: Path) -> None:
    """The Trainer integration takes the same text probe (and tokenizer) as watch()."""
    pytest.importorskip("accelerate")
    from test_transformers import Tokens
    from test_transformers import train as trainer_train

    from tb_plugin_insight.integrations.transformers import InsightCallback

    data = Tokens()
    probe = (
        {"input_ids": data.ids[:2], "attention_mask": torch.ones(2, 8, dtype=torch.long)},
        data.labels[:2],
    )
    callback = InsightCallback(every=1, probe=probe, tokenizer=Tokenizer(), token_saliency_every=2)
    trainer_train(tmp_path, [callback], max_steps=4)
    reader = read(tmp_path / "runs")
    (run,) = reader.runs
    values = reader.token_saliency(run)
    assert values.steps.tolist() == [2, 4] and values.values.shape == (2, 2, 8)  # the Trainer's steps
    assert reader.text_probe(run)["tokens"] == [
        Tokenizer().convert_ids_to_tokens(r) for r in data.ids[:2].tolist()
    ]


def test_compute_token_saliency_without_a_writer() -> None:
    from tb_plugin_insight import compute_token_saliency

    ids, mask, labels = probe_batch()
    model = tiny_bert()
    model.train()  # the function explains in eval mode and puts every module's mode back
    found = compute_token_saliency(model, {"input_ids": ids, "attention_mask": mask}, labels)
    assert model.training and all(p.grad is None for p in model.parameters())
    expected, _ = direct(
        model, lambda e: model(inputs_embeds=e, attention_mask=mask).logits, mask, labels, False
    )
    assert torch.allclose(found, expected, atol=1e-6)
    gpt = tiny_gpt2()
    found = compute_token_saliency(gpt, ids, 3, attention_mask=mask, method="integrated_gradients", steps=8)
    assert found.shape == (N, L) and bool((found[1, 5:] == 0).all())
    with pytest.raises(ValueError, match="2 targets for 3 sequences"):
        compute_token_saliency(gpt, ids, [1, 2])


def test_a_new_text_probe_is_stored_again_and_read_at_its_steps(tmp_path: Path) -> None:
    ids, _, labels = probe_batch()
    model = OwnClassifier()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    writer = InsightWriter(str(tmp_path))
    writer.watch(model, every=1, probe=(ids, labels), token_saliency_every=1)
    other = ids.flip(0)
    for step in range(4):
        if step == 2:
            writer.set_probe(other, labels, token_names=[[f"n{i}" for i in row] for row in other.tolist()])
        own_step(model).backward()
        opt.step()
        opt.zero_grad()
    writer.close()
    reader = read(tmp_path)
    run = reader.runs[0]
    assert reader.text_probe(run, step=1)["ids"] == ids.tolist()
    later = reader.text_probe(run, step=3)
    assert later["ids"] == other.tolist() and later["tokens"][0][0] == f"n{int(other[0, 0])}"
    assert reader.token_saliency(run).steps.tolist() == [0, 1, 2, 3]


def test_language_model_logits_are_read_at_the_last_real_token_left_or_right_padded() -> None:
    from tb_plugin_insight.explain.token_saliency import explained_logits

    logits = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 0, 0]])  # left padded, right padded
    chosen, positions = explained_logits(logits, mask)
    assert positions.tolist() == [3, 1]
    assert torch.equal(chosen, torch.stack([logits[0, 3], logits[1, 1]]))
    with pytest.raises(ValueError, match="no real token"):
        explained_logits(logits, torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]]))
    with pytest.raises(ValueError, match=r"\(N, classes\) or \(N, L, vocab\)"):
        explained_logits(torch.zeros(2, 5, 3), mask)
