"""model_summary and the recorded model table's torchinfo columns and totals, checked against torchinfo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import hook_count, random_batch, read_events, sgd_step, state_copy
from tensorboard.util import tensor_util
from test_plugin import get_json, make_client
from torch import nn

import tb_plugin_insight
from tb_plugin_insight import InsightWriter, metadata, model_summary

torchinfo = pytest.importorskip("torchinfo", reason="torchinfo is a test dependency (requirements-dev.txt)")


class Block(nn.Module):
    """A residual block with a BatchNorm, a frozen projection and a ReLU used twice."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.project = nn.Conv2d(cin, cout, 1, stride=2)
        self.project.requires_grad_(False)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.relu(self.bn(self.conv(x))) + self.project(x))


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 5, padding=2),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        Block(8, 16),
        nn.Sequential(Block(16, 32), nn.Dropout(0.2)),
        nn.ConvTranspose2d(32, 8, 2, stride=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


class Recurrent(nn.Module):
    """Embedding, an LSTM (tuple output, weight_ih_l0-style parameters), a shared Linear called twice."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.embed = nn.Embedding(50, 16)
        self.lstm = nn.LSTM(16, 24, num_layers=2, batch_first=True)
        self.head = nn.Linear(24, 24)
        self.out = nn.Linear(24, 7)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(tokens))
        return self.out(self.head(torch.relu(self.head(h[:, -1]))))


class Attention(nn.Module):
    """Keyword input, a LayerNorm, multi-head attention (in_proj_weight) and a dict output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.norm = nn.LayerNorm(32)
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> dict[str, torch.Tensor]:
        h = self.norm(x)
        a, _ = self.attn(h, h, h)
        return {"hidden": self.mlp(a + x) * scale}


CASES: list[tuple[str, Any, Any]] = [
    ("cnn", cnn, torch.randn(4, 3, 32, 32)),
    ("recurrent", Recurrent, torch.randint(0, 50, (16, 48))),  # inputs over ~1 kB: see input_bytes
    ("attention", Attention, {"x": torch.randn(3, 10, 32), "scale": 0.5}),
]


@pytest.mark.parametrize("make, example", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_totals_agree_with_torchinfo(make: Any, example: Any) -> None:
    ours = model_summary(make(), example)
    reference = torchinfo.summary(make(), input_data=example, verbose=0, mode="eval")
    assert ours.total_params == reference.total_params
    assert ours.trainable_params == reference.trainable_params
    assert ours.non_trainable_params == reference.total_params - reference.trainable_params
    assert ours.total_mult_adds == pytest.approx(reference.total_mult_adds, rel=0.01)
    assert ours.total_mult_adds > 0
    assert ours.input_size_bytes == pytest.approx(reference.total_input, rel=0.05)
    assert ours.forward_backward_size_bytes == pytest.approx(reference.total_output_bytes, rel=0.05)
    # torchinfo's parameter size leaves out the parameters held directly by a module with children
    # (MultiheadAttention's in_proj_weight here) and those of modules that never ran (its out_proj, whose
    # weights the attention function reads itself): Insight counts every parameter's bytes
    held = sum(
        4 * row["ownParams"]  # float32 models
        for row, (_, module) in zip(ours.rows, make().named_modules())
        if any(module.children()) or row["calls"] == 0
    )
    assert ours.params_size_bytes == pytest.approx(reference.total_param_bytes + held, rel=0.05)
    reference_total = (
        reference.total_input + reference.total_output_bytes + reference.total_param_bytes + held
    )
    assert ours.estimated_total_size_bytes == pytest.approx(reference_total, rel=0.05)


def test_rows_agree_with_torchinfo_per_module() -> None:
    model = cnn()
    ours = model_summary(model, torch.randn(4, 3, 32, 32))
    twin = cnn()
    reference = torchinfo.summary(twin, input_data=torch.randn(4, 3, 32, 32), verbose=0, mode="eval")
    modules = dict(model.named_modules())
    by_module: dict[int, list[Any]] = {}
    for info in reference.summary_list:
        by_module.setdefault(id(info.module), []).append(info)
    twins = dict(twin.named_modules())
    for row in ours.rows:
        infos = by_module[id(twins[row["name"]])]
        if not any(modules[row["name"]].children()):
            assert row["ownMultAdds"] == sum(info.macs for info in infos), row["name"]
        assert row["output"] == infos[0].output_size and row["calls"] == len(infos), row["name"]
        expected_kernel = infos[0].kernel_size
        if isinstance(expected_kernel, int):
            expected_kernel = [expected_kernel]
        assert row["kernelSize"] == expected_kernel, row["name"]
    rows = {row["name"]: row for row in ours.rows}
    assert rows["0"]["kernelSize"] == [5, 5] and rows["2"]["kernelSize"] is None
    assert rows["3.relu"]["calls"] == 2
    # a container's mult-adds are its children's: the blocks add up to the model's total
    assert rows["3"]["multAdds"] == sum(r["ownMultAdds"] for n, r in rows.items() if n.startswith("3."))
    assert rows[""]["multAdds"] == ours.total_mult_adds


def test_text_table() -> None:
    summary = model_summary(cnn(), torch.randn(2, 3, 16, 16))
    text = str(summary)
    lines = text.splitlines()
    assert lines[1].split() == [
        "Layer",
        "(type)",
        "Output",
        "Shape",
        "Kernel",
        "Shape",
        "Param",
        "#",
        "Mult-Adds",
    ]
    assert any(line.startswith("  0 (Conv2d)") and "[5, 5]" in line and "608" in line for line in lines)
    assert any(line.startswith("    3.conv (Conv2d)") for line in lines)  # indented by depth
    assert f"Total params: {summary.total_params:,}" in lines
    assert f"Total mult-adds (M): {summary.total_mult_adds / 1e6:,.2f}" in lines
    assert f"Estimated Total Size (MB): {summary.estimated_total_size_bytes / 1e6:.2f}" in lines


def test_leaves_the_model_untouched() -> None:
    model = cnn()
    model.train()
    model[1].eval()  # one module in its own mode
    before, hooks = state_copy(model), hook_count(model)
    modes = [m.training for m in model.modules()]
    x = torch.randn(4, 3, 32, 32)
    rng = torch.get_rng_state()
    model_summary(model, x)
    assert torch.equal(torch.get_rng_state(), rng)
    assert [m.training for m in model.modules()] == modes
    for key, value in state_copy(model).items():
        assert torch.equal(value, before[key]), key  # BatchNorm statistics too
    assert all(p.grad is None for p in model.parameters()) and hook_count(model) == hooks


def test_errors_leave_no_hooks() -> None:
    model = cnn()
    hooks = hook_count(model)
    with pytest.raises(RuntimeError):
        model_summary(model, torch.randn(2, 5, 8, 8))  # wrong channel count
    assert hook_count(model) == hooks and model.training
    with pytest.raises(TypeError, match="nn.Module"):
        model_summary(lambda x: x, torch.zeros(1))  # type: ignore[arg-type]


def test_exported_lazily_at_the_package_root() -> None:
    assert "model_summary" in tb_plugin_insight.__all__
    assert tb_plugin_insight.model_summary is model_summary and callable(model_summary)


def test_recorded_table_has_the_columns_and_totals_of_the_training_forward(tmp_path: Path) -> None:
    model = cnn()
    forwards = [0]
    model.register_forward_pre_hook(lambda module, args: forwards.__setitem__(0, forwards[0] + 1))
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [random_batch(gen, batch=6, size=32, classes=10) for _ in range(3)]
    expected = model_summary(cnn(), batches[0][0])  # the same weights and batch as the recorded forward
    with InsightWriter(str(tmp_path / "run")) as writer:
        writer.watch(model, every=1)
        for x, y in batches:
            sgd_step(model, opt, x, y)
    assert forwards[0] == len(batches)  # the table comes from the training forward: no extra forward
    blobs = [
        tensor_util.make_ndarray(v.tensor)[0]
        for e in read_events(tmp_path / "run")
        for v in e.summary.value
        if v.tag == metadata.tag_for(metadata.RecordKind.MODEL_TABLE)
    ]
    document = json.loads(blobs[0])
    totals = document["totals"]
    assert totals == {
        "totalParams": expected.total_params,
        "trainableParams": expected.trainable_params,
        "nonTrainableParams": expected.non_trainable_params,
        "totalMultAdds": expected.total_mult_adds,
        "inputSizeBytes": expected.input_size_bytes,
        "forwardBackwardSizeBytes": expected.forward_backward_size_bytes,
        "paramsSizeBytes": expected.params_size_bytes,
        "estimatedTotalSizeBytes": expected.estimated_total_size_bytes,
    }
    for row, want in zip(document["rows"], expected.rows):
        for key in ("name", "type", "output", "kernelSize", "multAdds", "ownMultAdds", "params", "calls"):
            assert row[key] == want[key], (row["name"], key)
    body = get_json(make_client(tmp_path), "/model?run=run")  # the route passes the document through
    assert body["totals"] == totals and body["rows"][1]["kernelSize"] == [5, 5]
    assert body["rows"][1]["multAdds"] == document["rows"][1]["multAdds"] > 0
