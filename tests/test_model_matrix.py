"""Models that must just work: each is watched through the public API, trained a few steps, read back
through the plugin's routes, and trained again without Insight to check the weights are bit-identical.

Behaviours pinned here (README, "Reliability"): structured outputs give one series per tensor (`layer`,
`layer:path`); a module called several times per forward is one series describing all calls; wrappers
(DataParallel, DDP, torch.compile) are watched through, with unprefixed names.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import logging
import math
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from test_plugin import PREFIX, make_client
from torch import nn

from conftest import free_port, tiny_cnn
from tb_plugin_insight import InsightWriter

pytestmark = pytest.mark.usefixtures("torch_one_thread")

STEPS = 3


# --- models with unusual outputs -------------------------------------------------------------------------


class ComplexConv(nn.Module):
    """A complex-valued convolution on (real, imag) pairs: takes and returns a tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.re = nn.Conv2d(3, 4, 3, padding=1)
        self.im = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        real, imag = pair
        return self.re(real) - self.im(imag), self.re(imag) + self.im(real)


class ComplexNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cconv = ComplexConv()
        self.head = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real, imag = self.cconv((x, x.flip(-1)))
        return self.head(torch.sqrt(real.square() + imag.square() + 1e-6).flatten(1))


class DictHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.fc(x), "features": x * 2}


@dataclasses.dataclass
class Pair:
    logits: torch.Tensor
    features: torch.Tensor


class DataclassHead(DictHead):
    def forward(self, x: torch.Tensor) -> Pair:  # type: ignore[override]
        return Pair(self.fc(x), x * 2)


class Named(NamedTuple):
    logits: torch.Tensor
    features: torch.Tensor


class NamedTupleHead(DictHead):
    def forward(self, x: torch.Tensor) -> Named:  # type: ignore[override]
        return Named(self.fc(x), x * 2)


class StructuredNet(nn.Module):
    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.body = nn.Linear(6, 12)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(x))
        return out["logits"] if isinstance(out, dict) else out.logits


class RecurrentNet(nn.Module):
    def __init__(self, cell: type[nn.Module]) -> None:
        super().__init__()
        self.rnn = cell(5, 7, batch_first=True)
        self.head = nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class AddInPlace(nn.Module):
    """`x += ...` inside forward: the output returned is the input tensor, modified."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x += 100.0
        return x


class InPlaceNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(4 * 8 * 8, 6)
        self.shift = AddInPlace()
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.shift(self.fc(self.relu(self.conv(x)).flatten(1))))


class SharedNet(nn.Module):
    """One linear layer applied three times per forward (shared weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.shared = nn.Linear(8, 8)
        self.act = nn.Tanh()
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for _ in range(3):
            h = self.act(self.shared(h))
        return self.out(h)


class NanInjector(nn.Module):
    """Forward: puts NaN and +Inf into two elements. Backward: NaN into one gradient element."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _PoisonGrad.apply(x)


class _PoisonGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        y.view(-1)[0] = float("nan")
        y.view(-1)[1] = float("inf")
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        g = grad.clone()
        g.view(-1)[0] = float("nan")
        return g


class NanNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.poison = NanInjector()
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the loss only sees finite values; fc1's weight gradient gets the NaN from the backward
        return self.fc2(torch.nan_to_num(self.poison(self.fc1(x)), nan=0.0, posinf=0.0))


def conv_net(dim: int) -> nn.Module:
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dim]
    pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[dim]
    return nn.Sequential(conv(3, 4, 3, padding=1), nn.ReLU(), pool(1), nn.Flatten(), nn.Linear(4, 3))


class TokenNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=8, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).mean(1))


def frozen_cnn() -> nn.Module:
    model = tiny_cnn()
    for p in model[0].parameters():
        p.requires_grad_(False)
    return model


# --- the matrix ------------------------------------------------------------------------------------------


def images(n: int) -> Callable[[torch.Generator], torch.Tensor]:
    return lambda gen: torch.randn(n, 3, 8, 8, generator=gen)


def shaped(*shape: int) -> Callable[[torch.Generator], torch.Tensor]:
    return lambda gen: torch.randn(*shape, generator=gen)


@dataclasses.dataclass
class Case:
    name: str
    build: Callable[[], nn.Module]
    batch: Callable[[torch.Generator], torch.Tensor]
    expect: tuple[str, ...]  # series the tab must list (others may exist)
    probe: bool = False  # image model: record CAMs and saliency of a probe too
    watch: dict[str, Any] = dataclasses.field(default_factory=dict)
    context: Callable[[], Any] = contextlib.nullcontext
    wrap: Callable[[nn.Module], nn.Module] = lambda m: m
    grads: bool = True  # gradient records expected
    guard_nonfinite: bool = False  # the training loop zeroes NaN gradients before the step (as users do)
    check: Callable[[dict[str, Any]], None] | None = None


def stats(read: dict[str, Any], layer: str) -> dict[str, list[Any]]:
    return read["stats"][layer]["stats"]


def check_complex(read: dict[str, Any]) -> None:
    assert read["layers"]["cconv"]["moduleType"] == "ComplexConv"
    assert read["layers"]["cconv:1"]["shape"] == [4, 4, 8, 8]
    real, imag = stats(read, "cconv"), stats(read, "cconv:1")
    assert real["mean"] != imag["mean"] and real["numel"] == imag["numel"] == [4 * 4 * 8 * 8] * STEPS


def check_structured(read: dict[str, Any]) -> None:
    features, logits = stats(read, "head:features"), stats(read, "head")
    assert features["numel"][0] == 4 * 12 and logits["numel"][0] == 4 * 3
    body = stats(read, "body")
    assert features["mean"][0] == pytest.approx(2 * body["mean"][0])  # features = 2 * body output


def check_lstm(read: dict[str, Any]) -> None:
    assert stats(read, "rnn")["numel"][0] == 4 * 6 * 7  # output (N, L, H)
    assert stats(read, "rnn:1.0")["numel"][0] == 4 * 7  # h_n
    assert stats(read, "rnn:1.1")["numel"][0] == 4 * 7  # c_n


def check_gru(read: dict[str, Any]) -> None:
    assert stats(read, "rnn")["numel"][0] == 4 * 6 * 7 and stats(read, "rnn:1")["numel"][0] == 4 * 7


def check_inplace(read: dict[str, Any]) -> None:
    assert min(stats(read, "conv")["min"]) < 0  # recorded before the in-place ReLU changed it
    assert min(stats(read, "relu")["min"]) == 0
    fc, shift = stats(read, "fc"), stats(read, "shift")  # shift adds 100 in place to fc's output
    assert shift["mean"] == pytest.approx([m + 100 for m in fc["mean"]])  # each: the output as returned


def check_shared(read: dict[str, Any]) -> None:
    assert stats(read, "shared")["numel"] == [3 * 4 * 8] * STEPS  # three calls, one series
    assert stats(read, "act")["numel"] == [3 * 4 * 8] * STEPS
    grads = read["gradients"]
    row = grads["layers"].index("shared")
    assert all(v is not None and v > 0 for v in grads["values"]["actGradNorm"][row])


def check_nan(read: dict[str, Any]) -> None:
    poison = stats(read, "poison")
    assert poison["nanCount"] == [1.0] * STEPS and poison["infCount"] == [1.0] * STEPS
    assert all(v is not None and math.isfinite(v) for v in poison["mean"] + poison["std"] + poison["max"])
    assert stats(read, "fc2")["nanCount"] == [0.0] * STEPS
    grads = read["gradients"]
    fc1, fc2 = grads["layers"].index("fc1"), grads["layers"].index("fc2")
    assert all(n > 0 for n in grads["values"]["gradNanCount"][fc1])
    assert all(v is not None for v in grads["values"]["gradNorm"][fc1])  # finite part still described
    assert grads["values"]["gradNanCount"][fc2] == [0.0] * STEPS


def check_empty_then_full(read: dict[str, Any]) -> None:
    first = stats(read, "0")
    assert first["numel"][0] == 0 and first["mean"][0] is None  # the empty batch: no numbers, no crash
    assert first["numel"][1] > 0 and first["mean"][1] is not None


def check_frozen(read: dict[str, Any]) -> None:
    grads = read["gradients"]
    if "0" in grads["layers"]:  # nothing before the frozen conv requires grad: it may have no series
        assert grads["values"]["gradNorm"][grads["layers"].index("0")] == [None] * STEPS
    assert all(v is not None for v in grads["values"]["gradNorm"][grads["layers"].index("3")])


def no_prefix(read: dict[str, Any]) -> None:
    assert not any(name.startswith(("module.", "_orig_mod.")) for name in read["layers"])


class EmptyFirst:
    """Batch factory whose first batch is empty."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, gen: torch.Generator) -> torch.Tensor:
        self.calls += 1
        return torch.randn(0 if self.calls == 1 else 4, 3, 8, 8, generator=gen)


@contextlib.contextmanager
def single_process_group() -> Iterator[None]:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


CASES = [
    Case(
        "complex_tuple",
        ComplexNet,
        images(4),
        ("cconv", "cconv:1", "head"),
        watch={"layers": ["cconv", "head"]},
        check=check_complex,
    ),
    Case(
        "dict_output",
        lambda: StructuredNet(DictHead()),
        shaped(4, 6),
        ("head", "head:features"),
        watch={"layers": ["body", "head"]},
        check=check_structured,
    ),
    Case(
        "dataclass_output",
        lambda: StructuredNet(DataclassHead()),
        shaped(4, 6),
        ("head", "head:features"),
        watch={"layers": ["body", "head"]},
        check=check_structured,
    ),
    Case(
        "namedtuple_output",
        lambda: StructuredNet(NamedTupleHead()),
        shaped(4, 6),
        ("head", "head:features"),
        watch={"layers": ["body", "head"]},
        check=check_structured,
    ),
    Case(
        "lstm",
        lambda: RecurrentNet(nn.LSTM),
        shaped(4, 6, 5),
        ("rnn", "rnn:1.0", "rnn:1.1"),
        check=check_lstm,
    ),
    Case("gru", lambda: RecurrentNet(nn.GRU), shaped(4, 6, 5), ("rnn", "rnn:1"), check=check_gru),
    Case(
        "inplace",
        InPlaceNet,
        images(4),
        ("conv", "relu", "fc", "shift"),
        watch={"layers": ["conv", "relu", "fc", "shift"]},
        check=check_inplace,
    ),
    Case("shared_weights", SharedNet, shaped(4, 6), ("inp", "shared", "act", "out"), check=check_shared),
    Case(
        "parameter_free",
        lambda: nn.Sequential(nn.Flatten(), nn.Identity(), nn.Linear(3 * 8 * 8, 3)),
        images(4),
        ("0", "1"),
        watch={"layers": ["0", "1"]},
        grads=False,
    ),
    Case("conv1d", lambda: conv_net(1), shaped(4, 3, 16), ("0", "1", "4")),
    Case("conv2d_cams", tiny_cnn, images(4), ("0", "1", "3", "6"), probe=True),
    Case("conv3d", lambda: conv_net(3), shaped(2, 3, 4, 4, 4), ("0", "1", "4")),
    Case(
        "transformer_encoder",
        TokenNet,
        shaped(4, 5, 8),
        ("encoder.layers.0.linear1", "encoder.layers.1.self_attn", "head"),
    ),
    Case("empty_batch", tiny_cnn, EmptyFirst(), ("0", "6"), check=check_empty_then_full),
    Case("batch_size_1", tiny_cnn, images(1), ("0", "6"), probe=True),
    Case(
        "autocast_bf16",
        tiny_cnn,
        images(4),
        ("0", "6"),
        probe=True,
        context=lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    ),
    Case(
        "channels_last",
        lambda: tiny_cnn().to(memory_format=torch.channels_last),
        lambda gen: images(4)(gen).to(memory_format=torch.channels_last),
        ("0", "6"),
        probe=True,
    ),
    Case(
        "torch_compile",  # backend "eager": dynamo traces the hooks, no C++ compiler needed (fast)
        tiny_cnn,
        images(4),
        ("0", "6"),
        probe=True,
        watch={"layers": ["0", "6"]},  # each watched layer is a graph break: two keep tracing short
        wrap=lambda m: torch.compile(m, backend="eager"),
        check=no_prefix,
    ),
    Case("data_parallel", tiny_cnn, images(4), ("0", "6"), probe=True, wrap=nn.DataParallel, check=no_prefix),
    Case(
        "ddp",
        tiny_cnn,
        images(4),
        ("0", "6"),
        probe=True,
        wrap=nn.parallel.DistributedDataParallel,
        context=single_process_group,
        check=no_prefix,
    ),
    Case("frozen_part", frozen_cnn, images(4), ("0", "3"), probe=True, check=check_frozen),
    Case(
        "nan_inf",
        NanNet,
        shaped(4, 6),
        ("fc1", "poison", "fc2"),
        watch={"layers": ["fc1", "poison", "fc2"]},
        guard_nonfinite=True,
        check=check_nan,
    ),
]


def train(model: nn.Module, case: Case, writer: InsightWriter | None, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    batches = [case.batch(gen) for _ in range(STEPS)]
    labels = [torch.randint(0, 3, (b.shape[0],), generator=gen) for b in batches]
    with case.context():
        model = case.wrap(model)
        if writer is not None:
            probe = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
            options: dict[str, Any] = {"every": 1, **case.watch}
            if case.probe:
                options.update(probe=probe, cam_every=2, saliency_methods=["gradient"], saliency_every=2)
            writer.watch(model, **options)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
        for x, y in zip(batches, labels):
            out = model(x)
            loss = nn.functional.cross_entropy(out.float(), y, reduction="sum")
            opt.zero_grad()
            loss.backward()
            if case.guard_nonfinite:
                for p in model.parameters():
                    p.grad.nan_to_num_(0.0)
            opt.step()
    return model


def read_back(logdir: Path, run: str) -> dict[str, Any]:
    client = make_client(logdir)

    def get(url: str) -> Any:
        response = client.get(PREFIX + url)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = json.loads(response.get_data(as_text=True))
        # A first answer on a long run nothing read yet is a sample of its steps: ask again for all.
        return get(url) if isinstance(body, dict) and body.get("sampled") else body

    layers = {layer["name"]: layer for layer in get(f"/layers?run={run}")["layers"]}
    return {
        "layers": layers,
        "stats": {name: get(f"/layer_stats?run={run}&layer={name}") for name in layers},
        "gradients": {
            **get(f"/gradients?run={run}"),
            "layers": [layer["name"] for layer in get(f"/gradients?run={run}")["layers"]],
        },
        "maps": get(f"/maps?run={run}"),
    }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_model_is_recorded_and_training_unchanged(
    case: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if isinstance(case.batch, EmptyFirst):
        case.batch.calls = 0
    with caplog.at_level(logging.WARNING, logger="tb_plugin_insight"):
        torch.manual_seed(0)
        watched = case.build()
        with InsightWriter(str(tmp_path / case.name)) as writer:
            trained = train(watched, case, writer)
        if isinstance(case.batch, EmptyFirst):
            case.batch.calls = 0
        torch.manual_seed(0)
        plain = train(case.build(), case, None)
    failures = [r.getMessage() for r in caplog.records if "stopped recording" in r.getMessage()]
    assert not failures, failures

    for (name, a), (_, b) in zip(trained.state_dict().items(), plain.state_dict().items()):
        same = torch.equal(a, b) or torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)
        assert same, f"{case.name}: {name} differs with Insight watching"

    read = read_back(tmp_path, case.name)
    missing = [name for name in case.expect if name not in read["layers"]]
    assert not missing, f"{case.name}: no series {missing}; got {sorted(read['layers'])}"
    for name in case.expect:
        assert read["stats"][name]["steps"] == list(range(STEPS)), name
    if case.grads:
        assert read["gradients"]["steps"] == list(range(STEPS))
    if case.probe:
        kinds = {(s["kind"], tuple(s["steps"])) for s in read["maps"]["series"]}
        assert kinds == {("cam", (0, 2)), ("saliency", (0, 2))}, kinds
    if case.check is not None:
        case.check(read)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in watched.modules())


# --- life-cycle cases --------------------------------------------------------------------------------------


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def step(
    model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, dtype: torch.dtype = torch.float32
) -> None:
    x = torch.randn(4, 3, 8, 8, generator=gen).to(dtype)
    loss = nn.functional.cross_entropy(model(x), torch.randint(0, 3, (4,), generator=gen))
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_model_moved_to_another_dtype_after_watch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = tiny_cnn()
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(2, 3, 8, 8, generator=gen)
    with caplog.at_level(logging.WARNING), InsightWriter(str(tmp_path / "run")) as writer:
        writer.watch(model, every=1, probe=probe, cam_every=1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        step(model, opt, gen)
        model.to(torch.float64).to("cpu")
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        step(model, opt, gen, torch.float64)
        step(model, opt, gen, torch.float64)
    assert not [r for r in caplog.records if "stopped recording" in r.getMessage()]
    read = read_back(tmp_path, "run")
    assert read["stats"]["0"]["steps"] == [0, 1, 2]
    assert read["gradients"]["steps"] == [0, 1, 2]
    assert {tuple(s["steps"]) for s in read["maps"]["series"]} == {(0, 1, 2)}


@pytest.mark.parametrize("guard", ["no_grad", "inference_mode"])
def test_inference_only_loop_records_activations_and_skips_gradients_quietly(
    guard: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = tiny_cnn().eval()
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(2, 3, 8, 8, generator=gen)
    context = torch.no_grad if guard == "no_grad" else torch.inference_mode
    with caplog.at_level(logging.WARNING), InsightWriter(str(tmp_path / "run")) as writer:
        writer.watch(model, every=1, mode="eval", probe=probe, cam_every=2)
        with context():
            for _ in range(3):
                model(torch.randn(4, 3, 8, 8, generator=gen))
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    read = read_back(tmp_path, "run")
    assert read["stats"]["0"]["steps"] == [0, 1, 2]
    assert read["gradients"]["steps"] == []
    assert {tuple(s["steps"]) for s in read["maps"]["series"]} == {(0, 2)}  # CAMs still work


def test_watching_twice_replaces_and_unwatch_then_watch_works(tmp_path: Path) -> None:
    model = tiny_cnn()
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with InsightWriter(str(tmp_path / "run")) as writer:
        writer.watch(model, every=1)
        single = hook_count(model)
        writer.watch(model, every=1)
        assert hook_count(model) == single
        step(model, opt, gen)
        writer.unwatch(model)
        assert hook_count(model) == 0
        step(model, opt, gen)  # not recorded
        handle = writer.watch(model, every=1)
        handle.step = 2
        assert hook_count(model) == single
        step(model, opt, gen)
    assert hook_count(model) == 0
    read = read_back(tmp_path, "run")
    assert read["stats"]["0"]["steps"] == [0, 2]
    assert read["gradients"]["steps"] == [0, 2]


def test_two_writers_on_one_model_both_record(tmp_path: Path) -> None:
    model = tiny_cnn()
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(2, 3, 8, 8, generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with InsightWriter(str(tmp_path / "a")) as first, InsightWriter(str(tmp_path / "b")) as second:
        first.watch(model, every=1, probe=probe, cam_every=1)
        second.watch(model, every=2, probe=probe, cam_every=2)
        for _ in range(3):
            step(model, opt, gen)
        first.unwatch(model)
        step(model, opt, gen)  # step 3 of the second writer; the first one no longer records
        step(model, opt, gen)
    a, b = read_back(tmp_path, "a"), read_back(tmp_path, "b")
    assert a["stats"]["0"]["steps"] == [0, 1, 2] and b["stats"]["0"]["steps"] == [0, 2, 4]
    assert a["gradients"]["steps"] == [0, 1, 2] and b["gradients"]["steps"] == [0, 2, 4]
    assert {tuple(s["steps"]) for s in a["maps"]["series"]} == {(0, 1, 2)}
    assert {tuple(s["steps"]) for s in b["maps"]["series"]} == {(0, 2, 4)}
    assert a["stats"]["0"]["stats"]["mean"][0] == b["stats"]["0"]["stats"]["mean"][0]


@pytest.mark.parametrize("how", ["torch.save", "deepcopy", "pickle", "state_dict"])
def test_watched_model_can_be_saved_and_copied(how: str, tmp_path: Path) -> None:
    model = tiny_cnn()
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with InsightWriter(str(tmp_path / "run")) as writer:
        writer.watch(model, every=1, probe=torch.randn(2, 3, 8, 8, generator=gen), cam_every=1)
        x = torch.randn(4, 3, 8, 8, generator=gen)
        loss = model(x).sum()
        loss.backward()  # parameter hooks are armed until the next forward: the worst moment to copy
        weights = model[0].weight.detach().clone()
        if how == "torch.save":
            buffer = io.BytesIO()
            torch.save(model, buffer)
            buffer.seek(0)
            copied = torch.load(buffer, weights_only=False)
        elif how == "deepcopy":
            copied = copy.deepcopy(model)
        elif how == "pickle":
            copied = pickle.loads(pickle.dumps(model))
        else:
            copied = tiny_cnn(seed=1)
            copied.load_state_dict(model.state_dict())
        opt.step()
        step(model, opt, gen)
        out = copied(x)  # the copy runs, and is not watched: it records nothing
        assert out.shape == (4, 3)
        copied(x).sum().backward()
        assert torch.equal(copied[0].weight, weights) and copied[0].weight.grad is not None
    read = read_back(tmp_path, "run")
    assert read["stats"]["0"]["steps"] == [0, 1]
    assert read["gradients"]["steps"] == [0, 1]


def test_fullgraph_compiled_model_trains_and_says_why_nothing_is_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = tiny_cnn()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with caplog.at_level(logging.WARNING), InsightWriter(str(tmp_path / "run")) as writer:
        handle = writer.watch(compiled, every=1)
        step(compiled, opt, gen)
        step(compiled, opt, gen)
    assert not handle.active and hook_count(model) == 0
    assert any(
        "fullgraph=True" in r.getMessage() and "Nothing is recorded" in r.getMessage() for r in caplog.records
    )
