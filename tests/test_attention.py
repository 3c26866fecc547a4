"""Attention on the probe: captured probabilities equal the ground truth for every implementation
(F.scaled_dot_product_attention plain, causal and masked; eager softmax; nn.MultiheadAttention without
weights; HuggingFace ViT, GPT-2 and BERT in eager and SDPA), health numbers equal a direct computation,
training stays bit-identical, rollout equals its definition, and the routes serve what was stored."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from attention_models import MhaNet, TinyViT, hf_bert, hf_gpt2, hf_vit, vit_reference
from helpers import assert_training_unchanged, hook_count, read_events, state_copy
from test_cam_recording import cam_model, probe_batch, train
from test_plugin import get_json, make_client
from werkzeug.test import Client

from tb_plugin_insight import InsightWriter
from tb_plugin_insight.capture.attention import attention_calls, attention_probs
from tb_plugin_insight.explain import rollout as rollout_mod
from tb_plugin_insight.plugin.attention_health import attention_alerts

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def images(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, 12, 12, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize(
    "kind",
    [{"fused": True}, {"fused": True, "causal": True}, {"fused": True, "masked": True}, {"fused": False},
     {"fused": False, "masked": True}],
    ids=["sdpa", "sdpa-causal", "sdpa-mask", "eager", "eager-mask"],
)  # fmt: skip
def test_own_vit_attention_equals_direct_computation(kind: dict) -> None:
    torch.manual_seed(0)
    model = TinyViT(**kind)
    x = images()
    found = attention_probs(model, x)
    expected = vit_reference(model.eval(), x)
    assert list(found) == ["blocks.0.attn", "blocks.1.attn"]
    for probs, ref in zip(found.values(), expected):
        assert probs.shape == (3, 2, 10, 10)
        torch.testing.assert_close(probs, ref, atol=1e-6, rtol=1e-5)
    calls = attention_calls(model, x)
    assert all(call.causal == kind.get("causal", False) for call in calls.values())


def test_multihead_attention_without_weights_equals_its_weights() -> None:
    torch.manual_seed(0)
    model = MhaNet().eval()
    torch.nn.init.normal_(model.attn.in_proj_bias)  # torch starts it at 0: the key bias must count
    x = images()
    (probs,) = attention_probs(model, x).values()
    tokens = model.patch(x).flatten(2).transpose(1, 2)
    _, weights = model.attn(tokens, tokens, tokens, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(probs, weights.detach(), atol=1e-6, rtol=1e-5)
    with torch.no_grad():  # the max logit needs the key bias too (softmax alone does not see it)
        w_q, w_k, _ = model.attn.in_proj_weight.chunk(3)
        b_q, b_k, _ = model.attn.in_proj_bias.chunk(3)
        q = (tokens @ w_q.T + b_q).reshape(3, 9, 4, 4).transpose(1, 2)
        k = (tokens @ w_k.T + b_k).reshape(3, 9, 4, 4).transpose(1, 2)
        logits = q @ k.transpose(-2, -1) / 2.0
    (call,) = attention_calls(model, x).values()
    torch.testing.assert_close(call.max_logit, logits.amax(dim=(0, 2, 3)), atol=1e-5, rtol=1e-5)


def test_transformer_encoder_with_padding_is_captured_despite_its_fast_path() -> None:
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
    encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = torch.randn(2, 6, 16)
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[1, 4:] = True
    found = attention_probs(encoder, (x, None, padding))
    assert list(found) == ["layers.0.self_attn", "layers.1.self_attn"]
    with torch.no_grad():
        first = encoder.layers[0]
        _, weights = first.self_attn(x, x, x, key_padding_mask=padding, average_attn_weights=False)
    torch.testing.assert_close(found["layers.0.self_attn"], weights, atol=1e-6, rtol=1e-5)
    assert float(found["layers.1.self_attn"][1, :, :, 4:].abs().max()) == 0.0  # padded keys get nothing


def test_health_numbers_equal_direct_computation() -> None:
    torch.manual_seed(0)
    model = TinyViT(fused=True, causal=True)
    x = images()
    call = attention_calls(model, x)["blocks.0.attn"]
    probs = vit_reference(model.eval(), x)[0]
    n, h, t, _ = probs.shape
    entropy = torch.zeros(h)
    for head in range(h):
        values = []
        for i in range(n):
            for q in range(1, t):  # query q sees q + 1 keys; the first has no choice
                p = probs[i, head, q, : q + 1]
                values.append(float(-(p * p.log()).sum() / math.log(q + 1)))
        entropy[head] = sum(values) / len(values)
    torch.testing.assert_close(call.entropy, entropy, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        tokens = model.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([model.cls.expand(n, -1, -1), tokens], dim=1) + model.pos
        block = model.blocks[0]
        q, k, _ = block.attn.qkv(block.norm1(tokens)).reshape(n, t, 3, h, -1).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        logits = logits.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), -math.inf)
    torch.testing.assert_close(call.max_logit, logits.amax(dim=(0, 2, 3)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_huggingface_vit_equals_output_attentions(implementation: str) -> None:
    model, reference = hf_vit(implementation).eval(), hf_vit("eager").eval()
    x = images()
    found = attention_probs(model, x)
    with torch.no_grad():
        truth = reference(x, output_attentions=True).attentions
    assert len(found) == 2 and all(name.endswith("attention") for name in found)
    for probs, ref in zip(found.values(), truth):
        torch.testing.assert_close(probs, ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_huggingface_gpt2_and_bert_equal_output_attentions(implementation: str) -> None:
    ids = torch.randint(0, 40, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0  # padding of the second sequence
    for build, causal in ((hf_gpt2, True), (hf_bert, False)):
        model, reference = build(implementation).eval(), build("eager").eval()
        calls = attention_calls(model, {"input_ids": ids, "attention_mask": mask})
        with torch.no_grad():
            truth = reference(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
        assert len(calls) == 2
        for call, ref in zip(calls.values(), truth):
            torch.testing.assert_close(call.probs, ref, atol=1e-6, rtol=1e-5)
            assert call.causal == causal


def test_training_is_bit_identical_with_attention_recorded(tmp_path: Path) -> None:
    x, labels = probe_batch()

    def final_state(record: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = TinyViT(fused=True)
        with InsightWriter(str(tmp_path / f"run{record}")) as writer:
            train(model, writer if record else None, 4, probe=(x, labels), cam_every=0, attention_every=1)
        return state_copy(model)

    assert_training_unchanged(final_state)
    tags = {v.tag for e in read_events(tmp_path / "runTrue") for v in e.summary.value}
    assert any(tag.startswith("insight/attention_stats/probe/") for tag in tags)


def test_training_steps_get_no_hook_from_attention_and_the_probe_pass_leaves_none(tmp_path: Path) -> None:
    x, labels = probe_batch()
    counts = {}
    for every in (0, 1):
        torch.manual_seed(0)
        model = TinyViT(fused=True)
        with InsightWriter(str(tmp_path / f"run{every}")) as writer:
            writer.watch(model, probe=(x, labels), cam_every=0, attention_every=every)
            before = hook_count(model)
            model(x)  # a counted forward: its probe pass runs first when attention is on
            counts[every] = (before, hook_count(model), torch.overrides._get_current_function_mode())
    assert counts[0] == counts[1]  # the same hooks with and without attention, and no mode left
    assert counts[1][0] == counts[1][1] and counts[1][2] is None


def test_rollout_equals_its_definition() -> None:
    gen = torch.Generator().manual_seed(0)
    layers = [torch.rand(2, 3, 5, 5, generator=gen).softmax(dim=-1) for _ in range(3)]
    expected = []
    for i in range(2):
        flow = np.eye(5)
        for a in layers:
            mixed = a[i].double().numpy().mean(axis=0) + np.eye(5)
            mixed /= mixed.sum(axis=1, keepdims=True)
            flow = mixed @ flow
        expected.append(flow)
    found = rollout_mod.rollout(layers)
    np.testing.assert_allclose(found.double().numpy(), np.stack(expected), rtol=1e-5, atol=1e-6)
    maps = rollout_mod.rollout_maps(layers, 1, 2)
    np.testing.assert_allclose(
        maps.double().numpy(), np.stack(expected)[:, 0, 1:].reshape(2, 2, 2), rtol=1e-5
    )


def test_models_without_attention_record_none_and_asking_for_it_fails(tmp_path: Path) -> None:
    x, labels = probe_batch()
    with InsightWriter(str(tmp_path / "cnn")) as writer:
        train(cam_model(), writer, 2, probe=(x, labels), cam_every=1)
    tags = {v.tag for e in read_events(tmp_path / "cnn") for v in e.summary.value}
    assert not any("attention" in tag or "rollout" in tag for tag in tags)
    with InsightWriter(str(tmp_path / "asked")) as writer, pytest.raises(ValueError, match="no attention"):
        writer.watch(cam_model(), probe=(x, labels), attention_every=5)
    with InsightWriter(str(tmp_path / "bad")) as writer, pytest.raises(ValueError, match="attention_query"):
        writer.watch(TinyViT(fused=True), probe=(x, labels), attention_query="middle")
    with (
        InsightWriter(str(tmp_path / "far")) as writer,
        pytest.raises(ValueError, match="outside the 10 queries"),
    ):
        writer.watch(TinyViT(fused=True), probe=(x, labels), attention_query=10)


@pytest.mark.parametrize("query", [4, "mean", "last"])
def test_stored_maps_are_the_chosen_querys_attention(tmp_path: Path, query: object) -> None:
    from tb_plugin_insight import read

    x, labels = probe_batch()
    torch.manual_seed(0)
    model = TinyViT(fused=True)
    start = copy.deepcopy(model)  # the probe pass of step 0 runs before the first training step
    with InsightWriter(str(tmp_path / "run")) as writer:
        train(model, writer, 1, probe=(x, labels), cam_every=0, attention_every=1, attention_query=query,
              attention_row_samples=0)  # fmt: skip
    found = read(tmp_path).attention("run", "blocks.1.attn")
    probs = vit_reference(start.eval(), x)[1]
    expected = {4: probs[:, :, 4], "mean": probs.mean(dim=2), "last": probs[:, :, -1]}[query]
    assert found["rows"] is None and found["queryRule"] == ("index" if query == 4 else query)
    np.testing.assert_allclose(found["maps"][0], expected.numpy(), atol=0.005)  # 8-bit codes of sqrt(p)


def test_class_token_with_registers_or_distillation_token_is_the_default_query(tmp_path: Path) -> None:
    """A class token followed by 4 registers (or DeiT's distillation token) before the patch grid: the
    stored query is still the class token, and the keys lay out as 5 (2) leading tokens and the grid."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import cam_zoo

    from tb_plugin_insight import read
    from tb_plugin_insight.explain import attention as attn_math

    assert attn_math.grid_of(21) == (5, 4) and attn_math.grid_of(18) == (2, 4)
    assert attn_math.grid_of(17) == (1, 4) and attn_math.grid_of(16) == (0, 4)
    assert attn_math.grid_of(7) == (0, 0)
    for name, model in (("reg", cam_zoo.OwnViT(registers=4)), ("deit", cam_zoo.hf_models()["hf-deit"]())):
        x = torch.randn(4, 3, cam_zoo.SIZE, cam_zoo.SIZE)
        with InsightWriter(str(tmp_path / name)) as writer:
            writer.watch(model, probe=(x, torch.zeros(4, dtype=torch.long)), cam_every=0, attention_every=1)
            model(x)  # one counted forward: the probe pass of step 0
        first = get_json(make_client(tmp_path), f"/attention_layers?run={name}")["layers"][0]
        assert first["queryRule"] == "first", (name, first)
        assert first["classTokens"] == {"reg": 5, "deit": 2}[name] and first["gridSide"] == 4, (name, first)
        maps = read(tmp_path).attention(name, first["layer"])["maps"]
        assert maps.shape[-1] == {"reg": 21, "deit": 18}[name]


def test_query_blocks_pool_grids_in_blocks_and_sequences_in_runs() -> None:
    from tb_plugin_insight.explain import attention as attn_math

    assert attn_math.query_blocks(7, 3) == [0, 0, 0, 1, 1, 1, 2]
    assert attn_math.query_blocks(17, 64) == list(range(17))  # 1 + 4 x 4 fits: no pooling
    assert attn_math.query_blocks(16, 4) == [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]
    probs = torch.rand(1, 1, 7, 5)
    rows = attn_math.pooled_rows(probs, attn_math.query_blocks(7, 3))
    torch.testing.assert_close(rows[0, 0, 1], probs[0, 0, 3:6].mean(dim=0))
    codes = attn_math.to_codes(torch.tensor([0.0, 0.25, 1.0]))
    assert codes.tolist() == [0, 128, 255]  # sqrt: 0, 0.5, 1


def test_attention_that_cannot_be_captured_warns_by_default_and_fails_when_asked_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x, labels = probe_batch()
    model = MhaNet()
    model.attn = torch.nn.MultiheadAttention(16, 4, batch_first=True, add_bias_kv=True)
    with InsightWriter(str(tmp_path / "default")) as writer:
        train(model, writer, 1, probe=(x, labels), cam_every=1)  # CAMs go on
    assert "attention is not recorded (NotImplementedError" in caplog.text
    tags = {v.tag for e in read_events(tmp_path / "default") for v in e.summary.value}
    assert any(tag.startswith("insight/cam/") for tag in tags) and not any("attention" in tag for tag in tags)
    with InsightWriter(str(tmp_path / "asked")) as writer, pytest.raises(ValueError, match="add_bias_kv"):
        writer.watch(model, probe=(x, labels), attention_every=5)


def test_alerts_name_the_first_step_and_threshold() -> None:
    steps = [0, 10, 20]
    entropy = [[[0.9, 0.5, 0.05], [0.8, 0.8, 0.8]]]
    logits = [[[2.0, 5.0, 30.0], [0.1, 0.5, 12.0]]]
    alerts = attention_alerts(steps, ["blocks.0.attn"], entropy, logits, entropy_min=0.1, logit_growth=10)
    assert alerts == [  # by step, layer, head
        {"kind": "entropy_collapse", "layer": "blocks.0.attn", "head": 0, "first_step": 20, "value": 0.05,
         "threshold": 0.1},
        {"kind": "logit_growth", "layer": "blocks.0.attn", "head": 0, "first_step": 20, "value": 30.0,
         "threshold": 20.0},
        {"kind": "logit_growth", "layer": "blocks.0.attn", "head": 1, "first_step": 20, "value": 12.0,
         "threshold": 10.0},
    ]  # fmt: skip
    assert attention_alerts(steps, ["a"], entropy, logits, entropy_min=0.01, logit_growth=100) == []
    with pytest.raises(ValueError, match="entropy_min"):
        attention_alerts(steps, ["a"], entropy, logits, entropy_min=-1, logit_growth=10)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("attention_routes")
    x, labels = probe_batch()
    torch.manual_seed(0)
    with InsightWriter(str(root / "run")) as writer:
        train(TinyViT(fused=True), writer, 5, probe=(x, labels), cam_every=2, attention_max_queries=5,
              attention_row_samples=2)  # fmt: skip
    with InsightWriter(str(root / "cnn")) as writer:
        train(cam_model(), writer, 1, probe=(x, labels), cam_every=1)
    return root


@pytest.fixture(scope="module")
def client(logdir: Path) -> Client:
    return make_client(logdir)


def test_layers_route_lists_modules_steps_and_query_layout(client: Client) -> None:
    body = get_json(client, "/attention_layers?run=run")
    assert body["text"] is False  # an image probe
    first, second = body["layers"]
    assert (first["layer"], second["layer"]) == ("blocks.0.attn", "blocks.1.attn")
    assert first["moduleType"] == "Attention" and first["order"] < second["order"]
    assert first["steps"] == [0, 2, 4] and first["heads"] == 2 and first["numKeys"] == 10
    assert (first["queryRule"], first["classTokens"], first["gridSide"], first["causal"]) == (
        "first",
        1,
        3,
        False,
    )
    # a class token and a 3 x 3 grid pooled into 2 x 2 blocks: 5 rows
    assert first["rows"] == {"numSamples": 2, "queryBlocks": [0, 1, 1, 2, 1, 1, 2, 3, 3, 4]}
    assert get_json(client, "/attention_layers?run=cnn")["layers"] == []


def test_maps_route_serves_the_class_token_attention(logdir: Path, client: Client) -> None:
    body = get_json(client, "/attention?run=run&layer=blocks.1.attn&step=4")
    maps, rows = np.array(body["maps"]), np.array(body["rows"])
    assert maps.shape == (4, 2, 10) and rows.shape == (2, 2, 5, 10)
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0, atol=0.06)  # 8-bit codes of sqrt(p)
    np.testing.assert_allclose(rows[:, :, 0], maps[:2], atol=1e-9)  # the class token's own row


def test_maps_route_sends_the_stored_codes_with_encoding_u8(client: Client) -> None:
    import base64

    plain = get_json(client, "/attention?run=run&layer=blocks.0.attn&step=2")
    coded = get_json(client, "/attention?run=run&layer=blocks.0.attn&step=2&encoding=u8")
    for part in ("maps", "rows"):
        codes = np.frombuffer(base64.b64decode(coded[part]["u8"]), dtype=np.uint8)
        probs = (codes.reshape(coded[part]["shape"]) / 255.0) ** 2
        np.testing.assert_allclose(probs, np.array(plain[part]), atol=1e-5)


def test_rollout_is_a_cam_method_of_the_whole_model(client: Client) -> None:
    series = get_json(client, "/maps?run=run")["series"]
    (rollout,) = [s for s in series if s["method"] == "rollout"]
    assert (rollout["kind"], rollout["layer"], rollout["steps"]) == ("cam", "", [0, 2, 4])
    assert (rollout["height"], rollout["width"], rollout["numImages"]) == (3, 3, 4)  # the 3 x 3 patch grid


def test_stats_route_has_every_head_over_steps_and_alerts(client: Client) -> None:
    body = get_json(client, "/attention_stats?run=run&entropy_min=0.999&logit_growth=1000")
    assert body["steps"] == [0, 2, 4] and [layer["heads"] for layer in body["layers"]] == [2, 2]
    entropy = np.array(body["entropy"], dtype=float)
    assert entropy.shape == (2, 2, 3) and np.all((entropy > 0) & (entropy <= 1))
    assert np.array(body["maxLogit"], dtype=float).shape == (2, 2, 3)
    assert {a["kind"] for a in body["alerts"]} == {"entropy_collapse"}  # below 0.999: every head
    assert all(a["first_step"] == 0 and a["threshold"] == 0.999 for a in body["alerts"])


def test_health_alerts_list_the_attention_alerts_with_head_and_first_step(client: Client) -> None:
    """/health_alerts (the transformer-health card) lists what /attention_stats finds, thresholds
    entropy_min / logit_growth included and validated."""
    query = "run=run&entropy_min=0.999&logit_growth=1000"
    expected = get_json(client, f"/attention_stats?{query}")["alerts"]
    body = get_json(client, f"/health_alerts?{query}")
    assert body["thresholds"]["entropy_min"] == 0.999 and body["thresholds"]["logit_growth"] == 1000
    listed = [a for a in body["alerts"] if a["kind"] in ("entropy_collapse", "logit_growth")]
    assert listed == [{**a, "probe": "probe"} for a in expected] and len(listed) == 4  # 2 layers x 2 heads
    assert {(a["layer"], a["head"]) for a in listed} == {
        (f"blocks.{i}.attn", h) for i in (0, 1) for h in (0, 1)
    }
    default = get_json(client, "/health_alerts?run=run")
    assert default["thresholds"]["entropy_min"] == 0.1 and default["thresholds"]["logit_growth"] == 10
    assert not [a for a in default["alerts"] if a["kind"] == "entropy_collapse"]  # a young model
    for bad in ("entropy_min=0", "entropy_min=1.5", "logit_growth=1", "logit_growth=nan", "entropy_min=x"):
        assert "error" in get_json(client, f"/health_alerts?run=run&{bad}", status=400)
    cnn = get_json(client, "/health_alerts?run=cnn&entropy_min=0.999")["alerts"]
    assert not [a for a in cnn if a["kind"] in ("entropy_collapse", "logit_growth")]  # no attention


def test_reader_gives_the_routes_numbers(logdir: Path, client: Client) -> None:
    from tb_plugin_insight import read

    reader = read(logdir)
    found = reader.attention("run", "blocks.1.attn")
    assert list(found["steps"]) == [0, 2, 4] and found["maps"].shape == (3, 4, 2, 10)
    assert found["rows"].shape == (3, 2, 2, 5, 10) and found["queryRule"] == "first"
    served = get_json(client, "/attention?run=run&layer=blocks.1.attn&step=2")
    np.testing.assert_allclose(found["maps"][1], np.array(served["maps"]), atol=1e-6)
    table = reader.attention_stats("run")
    rows = table if isinstance(table, dict) else {c: table[c].to_numpy() for c in table.columns}
    assert len(rows["step"]) == 2 * 2 * 3  # modules x heads x steps
    stats = get_json(client, "/attention_stats?run=run")
    first = [i for i in range(12) if rows["layer"][i] == "blocks.0.attn" and rows["head"][i] == 1]
    assert [rows["entropy"][i] for i in first] == pytest.approx(stats["entropy"][0][1])
    with pytest.raises(ValueError, match="modules: 'blocks.0.attn'"):
        reader.attention("run", "nope")


def test_stats_of_two_watches_with_other_modules_stay_apart(tmp_path: Path) -> None:
    x, labels = probe_batch()
    torch.manual_seed(0)
    with InsightWriter(str(tmp_path / "run")) as writer:
        train(TinyViT(fused=True), writer, 2, probe=(x, labels), cam_every=0, attention_every=1)
        train(MhaNet(), writer, 1, probe=(x, labels), cam_every=0, attention_every=1)
    body = get_json(make_client(tmp_path), "/attention_stats?run=run")
    heads = {layer["layer"]: layer["heads"] for layer in body["layers"]}
    assert heads == {"blocks.0.attn": 2, "blocks.1.attn": 2, "attn": 4}  # each module its own rows
    index = [layer["layer"] for layer in body["layers"]].index("blocks.0.attn")
    assert body["steps"] == [0, 1] and all(v is not None for v in body["entropy"][index][0])


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/attention_layers", 400),
        ("/attention_layers?run=nope", 404),
        ("/attention?run=run&layer=blocks.0.attn", 400),
        ("/attention?run=run&layer=blocks.0.attn&step=-1", 400),
        ("/attention?run=run&layer=blocks.0.attn&step=3", 404),
        ("/attention?run=run&layer=nope&step=0", 404),
        ("/attention?run=run&layer=blocks.0.attn&step=0&encoding=f32", 400),
        ("/attention?run=run&layer=blocks.0.attn&step=0&probe=other", 404),
        ("/attention_stats?run=run&entropy_min=0", 400),
        ("/attention_stats?run=run&entropy_min=2", 400),
        ("/attention_stats?run=run&logit_growth=nan", 400),
        ("/attention_stats?run=run&logit_growth=abc", 400),
        ("/attention_stats?run=cnn", 404),
    ],
)
def test_routes_validate_parameters(client: Client, url: str, status: int) -> None:
    body = get_json(client, url, status=status)
    assert body["error"]
