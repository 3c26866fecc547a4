"""Saliency maths against hand derivations, and the guarantee that the live model is left as it was."""

from __future__ import annotations

import copy
import threading
import warnings
from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tb_plugin_insight.saliency import (
    METHODS,
    compute_attribution,
    compute_saliency,
    gauss_legendre,
    saliency_map,
    trapezoid,
)

# --- a tiny hand-weighted ReLU network ------------------------------------------------------------------

W1 = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 1.0, 1.0], [0.5, 0.5, -1.0], [2.0, 0.0, -1.0]])
B1 = torch.tensor([0.1, -0.2, 0.0, 0.3])
W2 = torch.tensor([[1.0, -1.0, 2.0, 0.5], [-2.0, 1.0, 0.5, 1.0], [0.5, 0.5, -1.0, -1.0]])
B2 = torch.tensor([0.0, 0.1, -0.1])
W3 = torch.tensor([[1.0, -1.0, 0.5], [-0.5, 2.0, 1.0]])
X = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0], [0.3, -0.7, 1.1], [2.0, -1.0, -0.5]])


class Functional(nn.Module):
    """The same network with ReLUs written as functional calls (`variant` picks which ones)."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(3, 4), nn.Linear(4, 3), nn.Linear(3, 2, bias=False)
        self.variant = variant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.variant == "F.relu":
            h = F.relu(self.l2(F.relu(self.l1(x))), inplace=True)
        elif self.variant == "torch.relu":
            h = self.l2(torch.relu(self.l1(x))).relu_()
        else:  # Tensor.relu, torch.relu_ (= F.relu_)
            h = F.relu_(self.l2(self.l1(x).relu()))
        return self.l3(h)


def hand_net(kind: str = "modules") -> nn.Module:
    if kind in ("modules", "inplace"):
        inplace = kind == "inplace"
        net: nn.Module = nn.Sequential(
            nn.Linear(3, 4), nn.ReLU(inplace), nn.Linear(4, 3), nn.ReLU(inplace), nn.Linear(3, 2, bias=False)
        )
        layers = [net[0], net[2], net[4]]
    else:
        net = Functional(kind)
        layers = [net.l1, net.l2, net.l3]
    with torch.no_grad():
        for layer, w, b in zip(layers, (W1, W2, W3), (B1, B2, None)):
            layer.weight.copy_(w)
            if b is not None:
                layer.bias.copy_(b)
    return net


def hand_gradient(x: torch.Tensor, out_weights: torch.Tensor, guided: bool = False) -> torch.Tensor:
    """d(out_weights . output)/dx per row, by the chain rule: W3 -> 1[z2 > 0] -> W2 -> 1[z1 > 0] -> W1.

    Guided backprop additionally keeps only the positive part of the gradient arriving at each ReLU.
    """
    z1 = x @ W1.T + B1
    z2 = z1.clamp(min=0) @ W2.T + B2
    g = out_weights @ W3
    g = (g.clamp(min=0) if guided else g) * (z2 > 0)
    g = g @ W2
    g = (g.clamp(min=0) if guided else g) * (z1 > 0)
    return g @ W1


def one_hot(classes: torch.Tensor | list[int]) -> torch.Tensor:
    return F.one_hot(torch.as_tensor(classes), 2).float()


# --- gradient, gradient x input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("targets", "out_weights"),
    [
        (None, None),  # predicted class
        (1, one_hot([1, 1, 1, 1])),
        ([0, 1, 1, 0], one_hot([0, 1, 1, 0])),
        (lambda out: out[:, 0] - out[:, 1], torch.tensor([[1.0, -1.0]]).expand(4, 2)),
    ],
    ids=["predicted", "int", "sequence", "callable"],
)
def test_gradient_and_gradient_x_input_match_the_chain_rule(targets: Any, out_weights: Any) -> None:
    net = hand_net()
    if out_weights is None:
        out_weights = one_hot(net(X).argmax(1))
    expected = hand_gradient(X, out_weights)
    grad = compute_attribution(net, X, "gradient", targets)
    torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(compute_attribution(net, X, "gradient_x_input", targets), expected * X)
    torch.testing.assert_close(compute_saliency(net, X, "gradient", targets, signed=True), expected)


# --- guided backprop ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["modules", "inplace", "F.relu", "torch.relu", "Tensor.relu"])
def test_guided_backprop_matches_hand_computation_for_modules_and_functional_relus(kind: str) -> None:
    net = hand_net(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every variant has ReLUs: no "no ReLU" warning
        guided = compute_attribution(net, X, "guided_backprop", [0, 1, 0, 1])
    torch.testing.assert_close(guided, hand_gradient(X, one_hot([0, 1, 0, 1]), guided=True))
    plain = compute_attribution(net, X, "gradient", [0, 1, 0, 1])
    assert not torch.allclose(guided, plain)  # the rule changed something on this network


def test_guided_backprop_passes_only_positive_gradients_through_relus() -> None:
    # Input -> ReLU directly: the attribution is the gradient arriving at the ReLU, which guided clamps.
    net = nn.Sequential(nn.ReLU(), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(W3)
    x = torch.tensor([[1.0, 2.0, 3.0], [1.0, -2.0, 0.5]])
    plain = compute_attribution(net, x, "gradient", 0)
    guided = compute_attribution(net, x, "guided_backprop", 0)
    assert (plain < 0).any()
    torch.testing.assert_close(guided, plain.clamp(min=0))
    torch.testing.assert_close(guided, torch.tensor([[1.0, 0.0, 0.5], [1.0, 0.0, 0.5]]))


def _snapshot(model: nn.Module) -> dict[str, Any]:
    hook_attrs = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return {
        "state": {k: v.clone() for k, v in model.state_dict(keep_vars=True).items()},
        "attrs": [
            (name, sorted(vars(m)), getattr(m, "inplace", None), m.training, type(m).forward)
            for name, m in model.named_modules()
        ],
        "hooks": [(name, [dict(getattr(m, a)) for a in hook_attrs]) for name, m in model.named_modules()],
        "params": [(p.requires_grad, p.grad) for p in model.parameters()],
    }


def _assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before["attrs"] == after["attrs"]
    assert before["hooks"] == after["hooks"]
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
    assert [r for r, _ in before["params"]] == [r for r, _ in after["params"]]
    assert all(a is b for (_, a), (_, b) in zip(before["params"], after["params"]))


def _no_torch_function_mode() -> bool:
    return torch._C._len_torch_function_stack() == 0


@pytest.mark.parametrize("kind", ["modules", "inplace", "F.relu", "resnet"])
def test_guided_backprop_leaves_model_exactly_as_before(kind: str) -> None:
    if kind == "resnet":
        from bench.models import resnet18

        torch.manual_seed(0)
        net, x = resnet18(num_classes=5).eval(), torch.randn(1, 3, 32, 32)
    else:
        net, x = hand_net(kind), X
    net.register_forward_hook(lambda m, i, o: None)
    list(net.children())[-1].register_full_backward_hook(lambda m, gi, go: None)
    with torch.no_grad():
        out_before = net(x)
    before = _snapshot(net)
    compute_saliency(net, x, "guided_backprop")
    _assert_same(before, _snapshot(net))
    with torch.no_grad():
        assert torch.equal(net(x), out_before)
    assert _no_torch_function_mode()


def test_guided_backprop_on_inplace_resnet_equals_the_out_of_place_copy() -> None:
    from bench.models import resnet18

    torch.manual_seed(0)
    net = resnet18(num_classes=5).eval()
    out_of_place = copy.deepcopy(net)
    for m in out_of_place.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(
        compute_attribution(net, x, "guided_backprop"),
        compute_attribution(out_of_place, x, "guided_backprop"),
    )


def test_guided_backprop_without_relu_warns_once_per_model() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.warns(UserWarning, match="no ReLU call"):
        guided = compute_attribution(net, X, "guided_backprop", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_attribution(net, X, "guided_backprop", 0)
    torch.testing.assert_close(guided, compute_attribution(net, X, "gradient", 0))


def test_guided_rule_does_not_reach_other_threads() -> None:
    net = hand_net("F.relu")
    seen: list[torch.Tensor] = []
    thread_started, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        thread_started.set()
        release.wait(5)
        seen.append(compute_attribution(net, X, "gradient", 0))

    class Signal(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            release.set()  # the other thread runs its forward while this thread's guided forward is live
            worker.join(5)
            return net(x)

    worker = threading.Thread(target=other_thread)
    worker.start()
    thread_started.wait(5)
    compute_attribution(Signal(), X, "guided_backprop", 0)
    torch.testing.assert_close(seen[0], hand_gradient(X, one_hot([0, 0, 0, 0])))


# --- SmoothGrad -----------------------------------------------------------------------------------------


def small_cnn(seed: int = 0) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Conv2d(4, 4, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        net[1].running_mean.copy_(torch.randn(4, generator=g) * 0.1)
        net[1].running_var.copy_(torch.rand(4, generator=g) + 0.5)
    return net


def images(n: int = 3, size: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_smoothgrad_is_seeded_privately() -> None:
    net, x = small_cnn(), images()
    rng = torch.get_rng_state()
    a = compute_attribution(net, x, "smoothgrad", samples=4, seed=7)
    assert torch.equal(torch.get_rng_state(), rng)
    b = compute_attribution(net, x, "smoothgrad", samples=4, seed=7)
    c = compute_attribution(net, x, "smoothgrad", samples=4, seed=8)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    for batch_size in (1, 5):  # the noise does not depend on how rows are batched
        torch.testing.assert_close(
            compute_attribution(net, x, "smoothgrad", samples=4, seed=7, batch_size=batch_size), a
        )


class SumOfSquares(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * x).flatten(1).sum(1, keepdim=True)


@pytest.mark.parametrize("noise_level", [0.1, 0.3])
def test_smoothgrad_noise_is_the_documented_fraction_of_the_value_range(noise_level: float) -> None:
    # d(sum x^2)/dx = 2 (x + eps): the attribution is 2x + 2 mean_k(eps_k), std(mean) = sigma / sqrt(samples)
    x = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 4 - 1  # range ~[-1, 3]
    samples = 4
    attribution = compute_attribution(
        SumOfSquares(), x, "smoothgrad", 0, noise_level=noise_level, samples=samples
    )
    mean_noise = (attribution - 2 * x) / 2
    sigma = noise_level * (x.max() - x.min())
    assert float(mean_noise.std() * samples**0.5 / sigma) == pytest.approx(1.0, abs=0.05)
    zero = compute_attribution(SumOfSquares(), x, "smoothgrad", 0, noise_level=0.0, samples=2)
    torch.testing.assert_close(zero, 2 * x)


# --- integrated gradients -------------------------------------------------------------------------------


def seeded(net: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / (p[0].numel() ** 0.5 if p.dim() > 1 else 4))
    return net.eval()


def relu_softplus_cnn(conv_bias: bool, seed: int = 0) -> nn.Module:
    return seeded(
        nn.Sequential(
            nn.Conv2d(2, 4, 3, bias=conv_bias),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, stride=2),
            nn.Softplus(),
            nn.Flatten(),
            nn.Linear(16, 8),
            nn.Tanh(),
            nn.Linear(8, 3),
        ),
        seed,
    )


def completeness_error(
    net: nn.Module, x: torch.Tensor, baseline: Any = None, **options: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample |sum(attribution) - (S(x) - S(baseline))| / |S(x) - S(baseline)|, and the attribution."""
    options.setdefault("batch_size", 1024)  # few, large forwards: these models are tiny
    attribution = compute_attribution(net, x, "integrated_gradients", baseline=baseline, **options)
    base = torch.zeros_like(x) if baseline is None else torch.as_tensor(baseline).expand_as(x)
    with torch.no_grad():
        out = net(x)
        classes = out.argmax(1, keepdim=True)
        delta = (out.gather(1, classes) - net(base).gather(1, classes))[:, 0]
    return (attribution.flatten(1).sum(1) - delta).abs() / delta.abs(), attribution


def test_integrated_gradients_completeness_at_default_steps() -> None:
    # ReLU (bias-free conv, so the zero-baseline path crosses no kink: the masks are fixed for a > 0) followed
    # by a smooth part: Gauss-Legendre at the default 32 steps is complete to well within 1%.
    x = torch.randn(8, 2, 8, 8, generator=torch.Generator().manual_seed(100))
    error, attribution = completeness_error(relu_softplus_cnn(conv_bias=False), x)
    assert attribution.shape == x.shape
    assert float(error.max()) < 0.01
    # The trapezoid rule evaluates a = 0, where every ReLU sits at its kink (relu'(0) = 0): O(1/steps) error.
    trap_error, _ = completeness_error(relu_softplus_cnn(conv_bias=False), x, rule="trapezoid")
    assert float(trap_error.max()) > float(error.max())


def test_integrated_gradients_converges_with_kinked_relus() -> None:
    # With biases the path crosses ReLU kinks, the integrand jumps, and the error falls like 1/steps.
    x = torch.randn(8, 2, 8, 8, generator=torch.Generator().manual_seed(100))
    net = relu_softplus_cnn(conv_bias=True)
    errors = [float(completeness_error(net, x, steps=steps)[0].mean()) for steps in (8, 32, 128)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[1] < 0.05 and errors[2] < 0.01


@pytest.mark.parametrize(
    "baseline", [None, 0.5, torch.tensor([0.2, -0.3])[:, None, None], torch.full((1, 2, 8, 8), -0.1)]
)
@pytest.mark.parametrize("rule", ["gausslegendre", "trapezoid"])
def test_integrated_gradients_baselines_on_a_smooth_model(baseline: Any, rule: str) -> None:
    net = seeded(
        nn.Sequential(nn.Conv2d(2, 3, 3), nn.Softplus(), nn.Flatten(), nn.Linear(108, 3), nn.Tanh()), 3
    )
    x = torch.randn(4, 2, 8, 8, generator=torch.Generator().manual_seed(5))
    error, _ = completeness_error(net, x, baseline, rule=rule)
    assert float(error.max()) < (1e-4 if rule == "gausslegendre" else 0.01)


def test_integrated_gradients_of_a_linear_model_is_exact() -> None:
    net = nn.Linear(3, 2, bias=True)
    with torch.no_grad():
        net.weight.copy_(W3)
    baseline = torch.tensor([0.5, -1.0, 2.0])
    ig = compute_attribution(net, X, "integrated_gradients", 1, baseline=baseline, steps=1)
    torch.testing.assert_close(ig, (X - baseline) * W3[1])


def test_integrated_gradients_never_exceeds_the_batch_bound_and_is_batch_independent() -> None:
    net, x = relu_softplus_cnn(conv_bias=True), torch.randn(5, 2, 8, 8)
    rows: list[int] = []
    handle = net.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    try:
        small = compute_attribution(net, x, "integrated_gradients", steps=6, batch_size=7)
        assert max(rows) <= 7 and sum(rows) == 5 + 5 * 6  # one forward for the predicted class, then the path
        rows.clear()
        default = compute_attribution(net, x, "integrated_gradients", steps=6)
        assert max(rows) == 5
    finally:
        handle.remove()
    torch.testing.assert_close(small, default)
    with_callable = compute_attribution(net, x, "integrated_gradients", lambda out: out[:, 2], steps=6)
    torch.testing.assert_close(with_callable, compute_attribution(net, x, "integrated_gradients", 2, steps=6))


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_quadrature_rules(n: int) -> None:
    nodes, weights = gauss_legendre(n)
    assert float(weights.sum()) == pytest.approx(1.0)
    assert bool(((nodes > 0) & (nodes < 1)).all())
    for degree in range(2 * n):  # exact up to degree 2n - 1
        assert float((weights * nodes**degree).sum()) == pytest.approx(1 / (degree + 1), rel=1e-10)
    if n >= 2:
        nodes, weights = trapezoid(n)
        assert float(weights.sum()) == pytest.approx(1.0)
        assert float((weights * nodes).sum()) == pytest.approx(0.5)


# --- safety ---------------------------------------------------------------------------------------------


def _cam_available() -> bool:
    try:
        from tb_plugin_insight.cam import compute_cam  # noqa: F401
    except ImportError:
        return False
    return True


ALL_METHODS = [
    pytest.param(m, marks=pytest.mark.skipif(not _cam_available(), reason="tb_plugin_insight.cam missing"))
    if m == "guided_gradcam"
    else m
    for m in METHODS
]
FAST = {"smoothgrad": {"samples": 3}, "integrated_gradients": {"steps": 4}}


def options_for(method: str, net: nn.Module) -> dict[str, Any]:
    if method == "guided_gradcam":
        return {"target_layer": net[4]}
    return FAST.get(method, {})


def _global_hooks_empty() -> bool:
    from torch.nn.modules import module as module_mod

    return not any(
        getattr(module_mod, name)
        for name in (
            "_global_forward_hooks",
            "_global_forward_pre_hooks",
            "_global_backward_hooks",
            "_global_backward_pre_hooks",
        )
    )


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("context", ["plain", "no_grad", "inference_mode"])
def test_live_model_is_left_untouched(method: str, context: str) -> None:
    net, x = small_cnn(), images()
    net.train()
    net[3].eval()  # mixed flags must come back exactly
    params = list(net.parameters())
    sentinel = [torch.full_like(p, 7.0) for p in params[:-1]]
    for p, s in zip(params, sentinel):
        p.grad = s
    frozen = params[-1]
    frozen.requires_grad_(False)
    before = _snapshot(net)
    flags = [m.training for m in net.modules()]
    x_before, rng = x.clone(), torch.get_rng_state()

    ctx = {"plain": torch.enable_grad, "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}[
        context
    ]
    with ctx():
        result = compute_saliency(net, x, method, **options_for(method, net))
    assert result.shape == (3, 8, 8)
    assert [m.training for m in net.modules()] == flags
    _assert_same(before, _snapshot(net))  # buffers, hooks, attributes, .grad objects
    assert all(torch.equal(p.grad, s) for p, s in zip(params, sentinel)) and frozen.grad is None
    assert torch.equal(x, x_before) and not x.requires_grad
    assert torch.equal(torch.get_rng_state(), rng)
    assert _global_hooks_empty() and _no_torch_function_mode()


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("method", ALL_METHODS)
def test_no_trace_left_when_forward_raises(method: str) -> None:
    net = small_cnn()
    net.train()

    def explode(module: nn.Module, args: Any) -> None:
        if not module.training:  # only during the saliency forward (eval)
            raise Boom("forward failed")

    handle = net[5].register_forward_pre_hook(explode)
    before = _snapshot(net)
    with pytest.raises(Boom):
        compute_saliency(net, images(), method, **options_for(method, net))
    assert all(m.training for m in net.modules())
    _assert_same(before, _snapshot(net))
    handle.remove()
    assert all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in net.modules()
    )
    assert _global_hooks_empty() and _no_torch_function_mode()


class InplaceOnInput(nn.Module):
    """Normalises its input in place, as some training code does; fine when the input needs no grad."""

    def __init__(self) -> None:
        super().__init__()
        self.net = hand_net("inplace")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.sub_(0.5).relu_())


@pytest.mark.parametrize("method", ["gradient", "guided_backprop", "integrated_gradients", "smoothgrad"])
def test_forward_that_modifies_its_input_in_place(method: str) -> None:
    x = X.clone()
    attribution = compute_attribution(InplaceOnInput(), x, method, 0)
    assert torch.equal(x, X) and attribution.shape == X.shape
    net, predicted = InplaceOnInput(), hand_net("inplace")((X - 0.5).relu()).argmax(1)
    torch.testing.assert_close(  # None: the predicted class comes from an unmodified copy as well
        compute_attribution(net, x, method, None, batch_size=2),
        compute_attribution(net, x, method, predicted),
    )
    if method == "gradient":
        torch.testing.assert_close(attribution, hand_gradient((X - 0.5).relu(), one_hot([0] * 4)) * (X > 0.5))


def test_wrappers_are_unwrapped() -> None:
    net, x = small_cnn(), images()
    torch.testing.assert_close(
        compute_attribution(nn.DataParallel(net), x, "gradient"), compute_attribution(net, x, "gradient")
    )


# --- shapes, range, signed ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ALL_METHODS)
def test_shapes_and_range(method: str) -> None:
    net, x = small_cnn(), images(n=2, size=10).double()
    net.double()
    options = options_for(method, net)
    maps = compute_saliency(net, x, method, **options)
    assert maps.shape == (2, 10, 10) and maps.dtype == torch.float64
    assert float(maps.min()) >= 0 and float(maps.max()) == 1.0
    signed = compute_saliency(net, x, method, signed=True, **options)
    assert signed.shape == x.shape and signed.dtype == x.dtype and (signed < 0).any()
    torch.testing.assert_close(saliency_map(signed), maps)


def test_saliency_map_reduction_and_normalisation() -> None:
    a = torch.zeros(3, 2, 10, 10)
    a[0, 0] = torch.arange(100.0).view(10, 10)
    a[0, 1] = -2 * torch.arange(100.0).view(10, 10).T  # max |a| over channels, signs ignored
    a[1, 1, 3, 4] = -5.0  # one non-zero pixel: the 99th percentile is 0, the max is used
    maps = saliency_map(a)
    reduced = torch.maximum(a[0, 0].abs(), a[0, 1].abs())
    p99 = reduced.flatten().sort().values[98]  # nearest rank: ceil(0.99 * 100) = 99th value
    torch.testing.assert_close(maps[0], (reduced / p99).clamp(max=1))
    assert float(maps[1, 3, 4]) == 1.0 and float(maps[1].sum()) == 1.0
    assert not maps[2].any()  # all zero stays zero
    flat = saliency_map(torch.tensor([[1.0, -4.0, 2.0]]), percentile=100)
    torch.testing.assert_close(flat, torch.tensor([[0.25, 1.0, 0.5]]))


# --- errors ---------------------------------------------------------------------------------------------


def _bad_calls() -> list[Any]:
    net, x = small_cnn(), images()
    return [
        pytest.param(lambda: compute_saliency(net, x[0, 0, 0]), ValueError, "batch dimension", id="no-batch"),
        pytest.param(lambda: compute_saliency(lambda t: t, x), TypeError, "nn.Module", id="not-a-module"),
        pytest.param(lambda: compute_saliency(net, x.long()), TypeError, "float", id="int-inputs"),
        pytest.param(lambda: compute_saliency(net, x.tolist()), TypeError, "torch.Tensor", id="list-inputs"),
        pytest.param(
            lambda: compute_saliency(net, x, "lrp"), ValueError, "integrated_gradients", id="method"
        ),
        pytest.param(
            lambda: compute_saliency(net, x, steps=3), TypeError, "does not take", id="wrong-option"
        ),
        pytest.param(
            lambda: compute_saliency(net, x, "smoothgrad", nosie=0.1), TypeError, "nosie", id="typo"
        ),
        pytest.param(
            lambda: compute_saliency(net, x, targets=3), ValueError, "out of range", id="target-range"
        ),
        pytest.param(
            lambda: compute_saliency(net, x, targets=[0, 1]), ValueError, "one per sample", id="count"
        ),
        pytest.param(
            lambda: compute_saliency(net, x, targets=[0.0, 1, 2]), TypeError, "integers", id="float"
        ),
        pytest.param(lambda: compute_saliency(net, x, targets=True), TypeError, "bool", id="bool-target"),
        pytest.param(lambda: compute_saliency(net, x, targets="cat"), TypeError, "targets", id="str-target"),
        pytest.param(
            lambda: compute_saliency(net, x, targets=lambda out: out),
            ValueError,
            "shape",
            id="callable-shape",
        ),
        pytest.param(
            lambda: compute_saliency(net, x, "integrated_gradients", baseline=torch.zeros(2, 3, 8, 8)),
            ValueError,
            "broadcast",
            id="baseline-shape",
        ),
        pytest.param(
            lambda: compute_saliency(net, x, "integrated_gradients", steps=0), ValueError, "steps", id="steps"
        ),
        pytest.param(
            lambda: compute_saliency(net, x, "integrated_gradients", rule="simpson"),
            ValueError,
            "rule",
            id="rule",
        ),
        pytest.param(
            lambda: compute_saliency(net, x, "smoothgrad", noise_level=-1),
            ValueError,
            "noise_level",
            id="noise",
        ),
        pytest.param(lambda: compute_saliency(net, x, "smoothgrad", seed=1.5), TypeError, "seed", id="seed"),
        pytest.param(
            lambda: compute_saliency(net, x, batch_size=0), ValueError, "batch_size", id="batch_size"
        ),
        pytest.param(lambda: compute_saliency(net, x, signed="yes"), TypeError, "signed", id="signed"),
        pytest.param(
            lambda: compute_saliency(net, x, "guided_gradcam"),
            TypeError,
            "target_layer",
            id="no-target-layer",
        ),
        pytest.param(
            lambda: compute_saliency(nn.Linear(3, 2), torch.ones(4, 3), "guided_gradcam", target_layer="x"),
            ValueError,
            "(N, C, H, W)",
            id="gradcam-not-images",
        ),
        pytest.param(
            lambda: compute_saliency(Reduce(), x), ValueError, "batch dimension", id="output-batch-mismatch"
        ),
        pytest.param(
            lambda: compute_saliency(Detached(), x), RuntimeError, "no_grad", id="not-differentiable"
        ),
    ]


class Reduce(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(0, keepdim=True)


class Detached(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach().flatten(1)[:, :3]


@pytest.mark.parametrize(("call", "error", "match"), _bad_calls())
def test_bad_input_raises_a_clear_error(call: Callable[[], Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match.replace("(", r"\(").replace(")", r"\)")):
        call()
