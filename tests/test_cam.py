"""Grad-CAM family: each method against its published formula, the API's contracts, and no side effects.

Expected maps are computed here in float64 numpy, from the papers' formulas, on a hand-weighted model
whose gradient is known in closed form (conv -> ReLU -> flatten -> linear: dS/dA is the linear weight).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import hook_count
from torch import nn

from tb_plugin_insight.cam import GRADIENT_METHODS, METHODS, CamResult, compute_cam, compute_cams
from tb_plugin_insight.explain import cam as cam_module
from tb_plugin_insight.explain import cam_methods

CAPTURE_METHODS = [m for m in METHODS if m not in ("scorecam", "ablationcam", "fullgrad")]


# ----------------------------------------------------------------------------------------------- models


class LinearHeadNet(nn.Module):
    """conv(2->3, stride 2) -> ReLU ("act", the target) -> flatten -> linear(48 -> 4), fixed weights.

    On 8x8 inputs the target layer is 3x4x4 and the score of class k is b_k + W_k . A, so the gradient
    of that score with respect to A is W_k reshaped to (3, 4, 4), known without autograd.
    """

    def __init__(self, batch_from_input: bool = False) -> None:
        super().__init__()
        self.batch_from_input = batch_from_input
        self.conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(48, 4)
        with torch.no_grad():
            conv = 0.1 * torch.sin(0.7 * torch.arange(54.0)).reshape(3, 2, 3, 3)
            conv[0, 0, 1, 1] += 1.0  # channel 0 follows input channel 0, channel 1 input channel 1,
            conv[1, 1, 1, 1] += 1.0  # channel 2 their blurred difference: spatially distinct maps
            conv[2, 0] += 0.3
            conv[2, 1] -= 0.3
            self.conv.weight.copy_(conv)
            self.conv.bias.copy_(torch.tensor([0.3, 0.1, 0.4]))
            head = 0.5 * torch.cos(0.37 * torch.arange(192.0)).reshape(4, 3, 16) + 0.1
            channel_scale = torch.tensor([1.0, 3.0, 0.3])[:, None]  # gradients of different sizes
            self.head.weight.copy_((head * channel_scale).reshape(4, 48))
            self.head.bias.copy_(torch.tensor([0.2, -0.1, 0.05, 0.3]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act(self.conv(x))
        # batch_from_input: the head relies on the input's batch size (defeats ablation's fast path)
        return self.head(a.reshape(x.shape[0] if self.batch_from_input else a.shape[0], -1))


def linear_head_inputs() -> torch.Tensor:
    """Two 2-channel 8x8 images: a bump per channel, at different places, on a wavy background."""
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    x = 0.3 * torch.sin(1.3 * torch.arange(256.0)).reshape(2, 2, 8, 8)
    for (n, c), (cy, cx) in {(0, 0): (2, 2), (0, 1): (5, 5), (1, 0): (5, 1), (1, 1): (1, 6)}.items():
        x[n, c] += 2 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4)
    return x


def activations_and_gradients(model: LinearHeadNet, x: torch.Tensor, classes: np.ndarray) -> tuple:
    """A (N, 3, 4, 4) computed directly, and dS/dA from the head weights (float64 numpy)."""
    conv = model.conv
    a = F.relu(F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), stride=2, padding=1))
    w = model.head.weight.detach().double().numpy().reshape(4, 3, 4, 4)
    return a.detach().numpy(), w[classes]


def bilinear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres (align_corners=False), edges clamped."""
    h, w = img.shape

    def taps(n_out: int, n_in: int) -> list[tuple[int, int, float]]:
        result = []
        for i in range(n_out):
            src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
            lo = min(int(math.floor(src)), n_in - 1)
            result.append((lo, min(lo + 1, n_in - 1), src - lo))
        return result

    out = np.zeros((out_h, out_w))
    for y, (y0, y1, fy) in enumerate(taps(out_h, h)):
        for x, (x0, x1, fx) in enumerate(taps(out_w, w)):
            top = (1 - fx) * img[y0, x0] + fx * img[y0, x1]
            bottom = (1 - fx) * img[y1, x0] + fx * img[y1, x1]
            out[y, x] = (1 - fy) * top + fy * bottom
    return out


def minmax(m: np.ndarray) -> np.ndarray:
    span = m.max() - m.min()
    return (m - m.min()) / span if span > 0 else np.zeros_like(m)


def finished(raw_maps: np.ndarray, size: int = 8) -> np.ndarray:
    """ReLU, bilinear resize, per-image min-max: what every method does after its formula."""
    return np.stack([minmax(bilinear(np.maximum(m, 0.0), size, size)) for m in raw_maps])


def weighted(weights: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.stack([sum(weights[n, c] * a[n, c] for c in range(a.shape[1])) for n in range(a.shape[0])])


def eigen_projection(m: np.ndarray) -> np.ndarray:
    """First principal direction of the (hw x C) matrix (uncentred), signed to agree with its mean map."""
    n, c, h, w = m.shape
    maps = []
    for i in range(n):
        rows = m[i].reshape(c, h * w).T
        _, _, vt = np.linalg.svd(rows, full_matrices=False)
        p = rows @ vt[0]
        if p @ rows.mean(axis=1) < 0:
            p = -p
        maps.append(p.reshape(h, w))
    return np.stack(maps)


def expected_map(method: str, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The layer-resolution map of `method` from its paper's formula, by explicit loops where it helps."""
    n, c, h, w = a.shape
    if method == "gradcam":
        return weighted(g.mean(axis=(2, 3)), a)
    if method == "hirescam":
        return (g * a).sum(axis=1)
    if method == "gradcam++":
        weights = np.zeros((n, c))
        for i in range(n):
            for k in range(c):
                total = a[i, k].sum()
                for y in range(h):
                    for x in range(w):
                        d = g[i, k, y, x]
                        denominator = 2 * d**2 + total * d**3
                        alpha = d**2 / denominator if denominator != 0 else 0.0
                        weights[i, k] += alpha * max(d, 0.0)
        return weighted(weights, a)
    if method == "xgradcam":
        return weighted((g * a).sum(axis=(2, 3)) / a.sum(axis=(2, 3)), a)
    if method == "layercam":
        return (np.maximum(g, 0.0) * a).sum(axis=1)
    if method == "eigencam":
        return eigen_projection(a)
    if method == "eigengradcam":
        return eigen_projection(g * a)
    raise AssertionError(method)


# ------------------------------------------------------------------------------------ formulas


@pytest.fixture(scope="module")
def golden() -> tuple:
    model = LinearHeadNet()
    x = linear_head_inputs()
    with torch.no_grad():
        logits = model(x).double()
    classes = logits.argmax(dim=1).numpy()
    a, g = activations_and_gradients(model, x, classes)
    return model, x, logits.numpy(), classes, a, g


def test_golden_model_is_not_degenerate(golden: tuple) -> None:
    """Preconditions that make the formula tests meaningful."""
    _, _, _, classes, a, g = golden
    assert len(set(classes.tolist())) == 2  # the two images explain different classes
    assert (g > 0).any() and (g < 0).any()  # LayerCAM's ReLU(G) matters
    assert (a > 0).mean() > 0.3  # many units active
    # Grad-CAM++: where G > 0 (the only places alpha matters) alpha = 1 / (2 + sum(A) G) is well
    # conditioned for A >= 0, and the third-order term makes it far from the constant 1/2
    alpha = 1 / (2 + a.sum(axis=(2, 3), keepdims=True) * g)
    assert np.ptp(alpha[g > 0]) > 0.1


@pytest.mark.parametrize("method", CAPTURE_METHODS)
def test_capture_methods_match_their_formula(golden: tuple, method: str) -> None:
    model, x, _, _, a, g = golden
    got = compute_cam(model, x, "act", method=method).double().numpy()
    want = finished(expected_map(method, a, g))
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_layer_resolution_maps_and_their_raw_range(golden: tuple) -> None:
    """upsample=False keeps the 4x4 layer grid; raw_range is each ReLU'd map's [min, max] before scaling."""
    model, x, _, _, a, g = golden
    result = compute_cams(model, x, "act", methods=CAPTURE_METHODS, upsample=False)
    for method in CAPTURE_METHODS:
        raw = np.maximum(expected_map(method, a, g), 0.0)
        np.testing.assert_allclose(result[method].double().numpy(), finished(raw, size=4), atol=2e-5)
        want_range = np.stack([raw.min(axis=(1, 2)), raw.max(axis=(1, 2))], axis=1)
        np.testing.assert_allclose(
            result.raw_range[method].double().numpy(), want_range, rtol=1e-5, atol=1e-6
        )


def test_gradcam_plus_plus_differs_from_its_first_order_approximation(golden: tuple) -> None:
    """With alpha = 1/2 (no third-order term) Grad-CAM++ would be plain ReLU-gradient weighting."""
    model, x, _, _, a, g = golden
    first_order = finished(weighted(np.maximum(g, 0).sum(axis=(2, 3)) / 2, a))
    got = compute_cam(model, x, "act", method="gradcam++").double().numpy()
    assert np.abs(got - first_order).max() > 0.05


def test_layercam_weights_are_element_wise(golden: tuple) -> None:
    """LayerCAM differs from HiResCAM exactly by clipping negative gradients element by element."""
    model, x, _, _, a, g = golden
    cams = compute_cams(model, x, "act", methods=["layercam", "hirescam"])
    assert not torch.allclose(cams["layercam"], cams["hirescam"], atol=1e-3)
    clipped = (np.maximum(g, 0) * a).sum(axis=1)
    np.testing.assert_allclose(cams["layercam"].double().numpy(), finished(clipped), atol=2e-5)


def masked_scores(model: nn.Module, x: torch.Tensor, classes: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Score-CAM's scores by definition: one forward per image and upsampled, min-max scaled channel."""
    n, c = a.shape[:2]
    scores = np.zeros((n, c))
    for i in range(n):
        for k in range(c):
            mask = torch.from_numpy(minmax(bilinear(a[i, k], 8, 8))).float()
            with torch.no_grad():
                scores[i, k] = model(x[i : i + 1] * mask)[0, classes[i]].item()
    return scores


def scorecam_expected(model: nn.Module, x: torch.Tensor, classes: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Score-CAM: weights are the softmax over channels of the masked scores."""
    scores = masked_scores(model, x, classes, a)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return finished(weighted(weights, a))


def test_scorecam_weights_are_softmax_of_masked_scores(golden: tuple) -> None:
    model, x, _, classes, a, _ = golden
    want = scorecam_expected(model, x, classes, a)
    for batch_size in (1, 4, 32):  # batching across images and channels changes nothing
        got = compute_cam(model, x, "act", method="scorecam", batch_size=batch_size).double().numpy()
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_perturbation_methods_save_forwards_on_dead_channels() -> None:
    model = LinearHeadNet()
    with torch.no_grad():
        model.conv.bias[1:] = -100.0  # channels 1 and 2 are all zero after the ReLU
    x = linear_head_inputs()
    with torch.no_grad():
        classes = model(x).argmax(dim=1).numpy()
    a, _ = activations_and_gradients(model, x, classes)
    assert (a[:, 1:] == 0).all() and (a[:, 0] > 0).any(axis=(1, 2)).all()
    images: list[int] = []
    model.conv.register_forward_pre_hook(lambda m, args: images.append(args[0].shape[0]))
    scorer = cam_module._scorer(None, torch.from_numpy(classes))
    got = cam_module._masked_scores(model, x, torch.from_numpy(a).float(), scorer, batch_size=32)
    assert sum(images) == 2 * 2  # per image: channel 0, and one all-zero mask for channels 1 and 2
    np.testing.assert_allclose(got.numpy(), masked_scores(model, x, classes, a), rtol=1e-5)
    images.clear()
    compute_cam(model, x, "act", method="ablationcam")
    assert images == [2, 1, 1]  # capture; then per image only channel 0 is ablated (the others are zero)


@pytest.mark.parametrize("batch_from_input", [False, True], ids=["fast-path", "repeated-input"])
def test_ablationcam_weights_are_relative_score_drops(golden: tuple, batch_from_input: bool) -> None:
    """S_c = S - W_c . A_c for a linear head, so w_c = (S - S_c) / S = W_c . A_c / S."""
    _, x, logits, classes, a, g = golden
    model = LinearHeadNet(batch_from_input=batch_from_input)
    s = logits[np.arange(len(classes)), classes]
    ablated = s[:, None] - (g * a).sum(axis=(2, 3))
    want = finished(weighted((s[:, None] - ablated) / s[:, None], a))
    for batch_size in (2, 32):
        got = compute_cam(model, x, "act", method="ablationcam", batch_size=batch_size)
        np.testing.assert_allclose(got.double().numpy(), want, atol=2e-5)


def test_ablation_fast_path_runs_the_early_layers_on_one_image() -> None:
    batches: dict[bool, list[int]] = {}
    for batch_from_input in (False, True):
        model = LinearHeadNet(batch_from_input=batch_from_input)
        seen: list[int] = []
        model.conv.register_forward_pre_hook(lambda m, args, seen=seen: seen.append(args[0].shape[0]))
        compute_cam(model, linear_head_inputs(), "act", method="ablationcam", batch_size=2)
        batches[batch_from_input] = seen
    assert batches[False][0] == 2 and set(batches[False][1:]) == {1}
    assert max(batches[True][1:]) == 2  # fell back to repeating the image


def test_eigencam_sign_follows_the_mean_activation() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(6, 5, 3, 4, generator=gen, dtype=torch.float64) + 0.3
    for sign in (1.0, -1.0):
        m = sign * a
        projection = cam_methods.eigencam(m)
        agreement = (projection * m.mean(dim=1)).sum(dim=(1, 2))
        assert (agreement > 0).all()
        np.testing.assert_allclose(projection.numpy(), eigen_projection(m.numpy()), atol=1e-9)
    # negating the activations negates the map: the sign follows the data, not the SVD routine
    torch.testing.assert_close(cam_methods.eigencam(-a), -cam_methods.eigencam(a))


@pytest.mark.parametrize(
    "shape",
    [(4, 5, 3, 4), (4, 40, 2, 3), (2, 70, 9, 9), (2, 100, 9, 10)],
    ids=["hw>C", "hw<=C", "hw>C-large", "hw<=C-large"],
)
@pytest.mark.parametrize("kind", ["relu", "signed"])
def test_first_component_matches_svd(shape: tuple[int, ...], kind: str) -> None:
    """Exact eigh (small), power iteration (large, fast when one component dominates) or its fallback."""
    m = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    if kind == "relu":
        m = m.clamp_min(0)
    np.testing.assert_allclose(
        cam_methods.first_component_projection(m).numpy(), eigen_projection(m.numpy()), atol=1e-7
    )
    np.testing.assert_allclose(cam_methods.first_component_projection(torch.zeros(shape)).numpy(), 0.0)


@pytest.mark.parametrize(
    "sizes", [((4, 4), (112, 112)), ((3, 5), (17, 23)), ((7, 7), (7, 9)), ((9, 6), (4, 3))]
)
def test_resize_is_bilinear_interpolation(sizes: tuple) -> None:
    (h, w), out = sizes
    maps = torch.randn(5, h, w, generator=torch.Generator().manual_seed(4))
    want = F.interpolate(maps[:, None], size=out, mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(cam_methods.resize(maps, out), want, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(
        cam_methods.resize(maps, out)[0].numpy(), bilinear(maps[0].double().numpy(), *out), atol=1e-5
    )


def test_bilinear_upsampling_and_per_image_scaling() -> None:
    """Positive homogeneity: a bias-free ReLU net gives the same normalised map for x and 10 x."""
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=4, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3, bias=False)
    )
    x = torch.randn(1, 3, 16, 16)
    cams = compute_cams(model, torch.cat([x, 10 * x]), "1", methods=CAPTURE_METHODS)
    for method, maps in cams.items():
        assert maps.shape == (2, 16, 16) and maps.dtype == torch.float32, method
        if method != "gradcam++":  # its alphas depend on the activations' scale, by design
            torch.testing.assert_close(maps[0], maps[1], atol=1e-5, rtol=0, msg=method)
        assert maps.min() == 0 and maps.max() == 1, method
    layer_map = cam_methods.gradcam(*_layer_tensors(model, x, "1"))
    want = minmax(bilinear(np.maximum(layer_map[0].double().numpy(), 0), 16, 16))
    np.testing.assert_allclose(cams["gradcam"][0].double().numpy(), want, atol=1e-5)


def _layer_tensors(model: nn.Module, x: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Activation and gradient of the predicted class by plain autograd, for comparison."""
    layers = dict(model.named_children())
    h = x
    for key, layer in layers.items():
        h = layer(h)
        if key == name:
            a = h.detach().requires_grad_(True)
            h = a
    (g,) = torch.autograd.grad(h.max(dim=1).values.sum(), a)
    return a.detach(), g


def test_zero_gradient_gives_an_all_zero_map(golden: tuple) -> None:
    model, x, *_ = golden
    cams = compute_cams(
        model, x, "act", methods=sorted(GRADIENT_METHODS), targets=lambda out: 0.0 * out[:, 0]
    )
    for method, maps in cams.items():
        assert maps.abs().max() == 0, method


# ------------------------------------------------------------------------------------ API contracts


def test_targets_none_int_sequence_tensor_callable(golden: tuple) -> None:
    model, x, logits, classes, *_ = golden
    explicit = compute_cam(model, x, "act", targets=classes.tolist())
    torch.testing.assert_close(compute_cam(model, x, "act"), explicit)
    torch.testing.assert_close(compute_cam(model, x, "act", targets=torch.from_numpy(classes)), explicit)
    torch.testing.assert_close(
        compute_cam(model, x, "act", targets=2), compute_cam(model, x, "act", targets=[2, 2])
    )
    torch.testing.assert_close(
        compute_cam(model, x, "act", targets=lambda out: out[:, 3]), compute_cam(model, x, "act", targets=3)
    )
    assert not torch.allclose(
        compute_cam(model, x, "act", targets=0), compute_cam(model, x, "act", targets=1)
    )
    result = compute_cams(model, x, "act", methods=["gradcam"], targets=[1, 0])
    assert result.target_class.tolist() == [1, 0]
    np.testing.assert_allclose(result.target_score.numpy(), logits[[0, 1], [1, 0]], rtol=1e-5)


def test_result_carries_prediction_and_probability(golden: tuple) -> None:
    model, x, logits, classes, *_ = golden
    result = compute_cams(model, x, "act", methods=["gradcam", "eigencam"], targets=1)
    assert isinstance(result, CamResult) and isinstance(result, dict)
    assert list(result) == ["gradcam", "eigencam"]
    probabilities = torch.softmax(torch.from_numpy(logits), dim=1)
    assert result.predicted.tolist() == classes.tolist()
    np.testing.assert_allclose(result.probability.numpy(), probabilities.max(dim=1).values.numpy(), rtol=1e-5)
    np.testing.assert_allclose(result.target_probability.numpy(), probabilities[:, 1].numpy(), rtol=1e-5)
    np.testing.assert_allclose(result.output.numpy(), logits, rtol=1e-5)


def test_bad_targets_raise(golden: tuple) -> None:
    model, x, *_ = golden
    with pytest.raises(ValueError, match="out of range"):
        compute_cam(model, x, "act", targets=4)
    with pytest.raises(ValueError, match="out of range"):
        compute_cam(model, x, "act", targets=[0, -1])
    with pytest.raises(ValueError, match="one per sample"):
        compute_cam(model, x, "act", targets=[0, 1, 2])
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        compute_cam(model, x, "act", targets=lambda out: out)


def test_input_and_method_errors(golden: tuple) -> None:
    model, x, *_ = golden
    with pytest.raises(ValueError, match="no batch dimension.*unsqueeze"):
        compute_cam(model, x[0], "act")
    with pytest.raises(ValueError, match=r"unknown CAM method 'gradcam\+'.*gradcam\+\+"):
        compute_cam(model, x, "act", method="gradcam+")
    with pytest.raises(ValueError, match="batch_size"):
        compute_cam(model, x, "act", method="scorecam", batch_size=0)
    torch.testing.assert_close(
        compute_cam(model, x, "act", method="Grad-CAM++"), compute_cam(model, x, "act", method="gradcam++")
    )


def test_layer_by_module_or_name_and_close_matches() -> None:
    model = nn.Sequential()
    model.add_module("features", nn.Sequential())
    model.features.add_module("conv1", nn.Conv2d(3, 4, 3))
    model.features.add_module("relu1", nn.ReLU())
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flatten", nn.Flatten())
    model.add_module("classifier", nn.Linear(4, 2))
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(
        compute_cam(model, x, "features.relu1"), compute_cam(model, x, model.features.relu1)
    )
    with pytest.raises(ValueError, match="no layer named 'features.relu'.*close matches: features.relu1"):
        compute_cam(model, x, "features.relu")
    with pytest.raises(ValueError, match="not a submodule"):
        compute_cam(model, x, nn.ReLU())
    with pytest.raises(ValueError, match=r"outputs shape \(2, 2\).*reshape_transform"):
        compute_cam(model, x, "classifier")
    with pytest.raises(ValueError, match=r"outputs shape \(2, 4, 1, 1\)|cannot"):
        compute_cam(model, x, "flatten")


class _TupleOut(nn.Module):
    def __init__(self, inner: nn.Module, kind: str) -> None:
        super().__init__()
        self.inner = inner
        self.kind = kind

    def forward(self, x: torch.Tensor) -> object:
        out = self.inner(x)
        if self.kind == "tuple":
            return out, out.sum()
        if self.kind == "dict":
            return {"aux": out.sum(), "logits": out}
        return {"scores": out, "aux": out.sum()}  # no "logits": the first value


@pytest.mark.parametrize("kind", ["tuple", "dict", "dict-first-value"])
def test_tuple_and_dict_outputs(golden: tuple, kind: str) -> None:
    model, x, *_ = golden
    wrapped = _TupleOut(model, kind)
    want = compute_cams(model, x, "act", methods=METHODS)
    got = compute_cams(wrapped, x, "inner.act", methods=METHODS)
    for method in METHODS:
        torch.testing.assert_close(got[method], want[method], msg=method)
    torch.testing.assert_close(got.probability, want.probability)


def test_under_no_grad_and_inference_mode(golden: tuple) -> None:
    model, x, *_ = golden
    want = compute_cams(model, x, "act", methods=METHODS)
    with torch.no_grad():
        got = compute_cams(model, x, "act", methods=METHODS)
        assert not torch.is_grad_enabled()
    for method in METHODS:
        torch.testing.assert_close(got[method], want[method], msg=method)
    with torch.inference_mode():
        with pytest.raises(ValueError, match="inference_mode.*no_grad"):
            compute_cam(model, x, "act", method="gradcam")
        eigen = compute_cam(model, x, "act", method="eigencam")
    torch.testing.assert_close(eigen, want["eigencam"])
    assert torch.is_grad_enabled()


class _Detaches(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach()


def test_layer_the_score_does_not_depend_on_or_that_is_not_called() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), _Detaches(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    unused = nn.Conv2d(3, 3, 1)
    model.add_module("unused", unused)
    model.forward = lambda x: model[4](model[3](model[2](model[1](model[0](x)))))  # skips "unused"
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="do not depend on layer '1'"):
        compute_cam(model, x, "1")
    with pytest.raises(ValueError, match="'unused' was not called"):
        compute_cam(model, x, "unused")
    assert compute_cam(model, x, "1", method="eigencam").shape == (2, 8, 8)  # needs no gradient


def test_inputs_made_in_inference_mode(golden: tuple) -> None:
    model, x, *_ = golden
    with torch.inference_mode():
        frozen = x.clone()
    torch.testing.assert_close(
        compute_cams(model, frozen, "act", METHODS), compute_cams(model, x, "act", METHODS)
    )


def test_layer_output_changed_in_place_downstream_is_captured_intact() -> None:
    torch.manual_seed(3)
    results = []
    for inplace in (False, True):
        torch.manual_seed(3)
        model = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(inplace=inplace), nn.Flatten()
        )
        model.add_module("head", nn.Linear(4 * 4 * 4, 3))
        results.append(compute_cams(model, torch.randn(2, 3, 8, 8), "2", methods=CAPTURE_METHODS))
    for method in CAPTURE_METHODS:
        torch.testing.assert_close(results[0][method], results[1][method], msg=method)


# ------------------------------------------------------------------------------------ token layers


class TinyViT(nn.Module):
    """Patch embedding -> tokens (N, T, 6), optional class token -> "block" (the target) -> attention pool."""

    def __init__(self, cls_token: bool, grid: tuple[int, int] = (4, 4)) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.patch = nn.Conv2d(3, 6, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, 6, generator=g)) if cls_token else None
        self.block = nn.Sequential(nn.Linear(6, 6), nn.GELU())
        self.score = nn.Linear(6, 1)
        self.head = nn.Linear(6, 3)
        with torch.no_grad():
            for p in (self.patch.weight, self.block[0].weight, self.score.weight, self.head.weight):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.grid = grid

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        if self.cls is not None:
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)
        return t

    def pool(self, t: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.score(t).squeeze(2), dim=1)
        return self.head((w[..., None] * t).sum(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.block(self.tokens(x)))


@pytest.mark.parametrize("cls_token", [False, True], ids=["no-class-token", "class-token"])
def test_token_layer_auto_grid_matches_formula_and_reshape_transform(cls_token: bool) -> None:
    model = TinyViT(cls_token)
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    skip = int(cls_token)

    def to_grid(t: torch.Tensor) -> torch.Tensor:
        return t[:, skip:].reshape(t.shape[0], 4, 4, t.shape[2]).permute(0, 3, 1, 2)

    auto = compute_cams(model, x, "block", methods=METHODS, batch_size=8)
    given = compute_cams(model, x, "block", methods=METHODS, reshape_transform=to_grid, batch_size=8)
    for method in METHODS:
        assert auto[method].shape == (3, 16, 16), method
        torch.testing.assert_close(auto[method], given[method], msg=method)
    # Grad-CAM from plain autograd on the block's tokens
    tokens = model.block(model.tokens(x)).detach().requires_grad_(True)
    logits = model.pool(tokens)
    (grad,) = torch.autograd.grad(logits.max(dim=1).values.sum(), tokens)
    a, g = to_grid(tokens.detach()).double().numpy(), to_grid(grad).double().numpy()
    np.testing.assert_allclose(
        auto["gradcam"].double().numpy(), finished(expected_map("gradcam", a, g), 16), atol=2e-5
    )


def test_non_square_token_grid_follows_the_images_aspect_else_needs_a_reshape_transform() -> None:
    model = TinyViT(cls_token=False)
    x = torch.randn(2, 3, 12, 20)  # 3 x 5 = 15 tokens: the grid of the images' aspect ratio
    by_hand = compute_cam(
        model, x, "block", reshape_transform=lambda t: t.reshape(2, 3, 5, 6).permute(0, 3, 1, 2)
    )
    torch.testing.assert_close(compute_cam(model, x, "block"), by_hand)
    torch.testing.assert_close(compute_cam(model, x, "block", layout="tokens"), by_hand)
    with pytest.raises(
        ValueError, match=r"\(2, 15, 6\), which cannot be laid out as layout='nchw'.*reshape_transform"
    ):
        compute_cam(model, x, "block", layout="nchw")
    with pytest.raises(ValueError, match="layout must be one of nchw, nhwc, tokens"):
        compute_cam(model, x, "block", layout="hwc")
    maps = compute_cams(
        model,
        x,
        "block",
        methods=["gradcam", "ablationcam"],
        reshape_transform=lambda t: t.reshape(t.shape[0], 3, 5, t.shape[2]).permute(0, 3, 1, 2),
    )
    assert maps["gradcam"].shape == (2, 12, 20) and maps["ablationcam"].shape == (2, 12, 20)
    with pytest.raises(ValueError, match="reshape_transform must turn"):
        compute_cam(model, x, "block", reshape_transform=lambda t: t)
    with pytest.raises(ValueError, match="only rearranges elements"):
        compute_cam(
            model,
            x,
            "block",
            method="ablationcam",
            reshape_transform=lambda t: 2 * t.reshape(t.shape[0], 3, 5, t.shape[2]).permute(0, 3, 1, 2),
        )


# ------------------------------------------------------------------------------------ safety


class Counter(nn.Module):
    """Identity that counts forwards and records whether it ran in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.modes.append(self.training)
        return x


class DrawsRandom(nn.Module):
    """Adds noise from the global RNG in every mode: the RNG state must still be restored."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1e-3 * torch.rand_like(x)


class CountBackward(torch.autograd.Function):
    calls = 0

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        CountBackward.calls += 1
        return grad


class BackwardProbe(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return CountBackward.apply(x)


class Raises(nn.Module):
    armed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.armed:
            raise RuntimeError("boom")
        return x


def safety_model() -> nn.Sequential:
    torch.manual_seed(7)
    return nn.Sequential(
        Counter(),
        BackwardProbe(),
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Dropout(0.5),
        DrawsRandom(),
        nn.Conv2d(6, 6, 3, stride=2, padding=1),  # "7": the target layer
        nn.BatchNorm2d(6),
        nn.ReLU(inplace=True),
        Raises(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 4),
    )


def state(model: nn.Module) -> dict:
    return {
        "flags": [m.training for m in model.modules()],
        "buffers": {k: v.clone() for k, v in model.named_buffers()},
        "params": {k: v.detach().clone() for k, v in model.named_parameters()},
        "grads": {
            k: (None if p.grad is None else (p.grad, p.grad.clone())) for k, p in model.named_parameters()
        },
        "hooks": hook_count(model),
        "rng": torch.get_rng_state(),
        "grad_mode": torch.is_grad_enabled(),
    }


def assert_unchanged(before: dict, model: nn.Module) -> None:
    after = state(model)
    assert after["flags"] == before["flags"]
    for key, value in before["buffers"].items():
        assert torch.equal(after["buffers"][key], value), key
    for key, value in before["params"].items():
        assert torch.equal(after["params"][key], value), key
    for key, p in model.named_parameters():
        if before["grads"][key] is None:
            assert p.grad is None, key
        else:
            tensor, values = before["grads"][key]
            assert p.grad is tensor and torch.equal(p.grad, values), key
    assert after["hooks"] == before["hooks"] == 0
    assert torch.equal(after["rng"], before["rng"])
    assert after["grad_mode"] == before["grad_mode"]


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_no_side_effects_on_the_model(mode: str) -> None:
    model = safety_model()
    model.train(mode != "eval")
    if mode == "mixed":
        model[3].eval()
        model[5].eval()
    for i, p in enumerate(model.parameters()):  # some grads exist, some are None
        if i % 2 == 0:
            p.grad = torch.randn_like(p)
    x = torch.randn(3, 3, 8, 8)
    before = state(model)
    cams = compute_cams(model, x, "7", methods=METHODS, batch_size=4)
    assert_unchanged(before, model)
    assert set(model[0].modes) == {False}  # everything ran in eval mode
    assert all(maps.shape == (3, 8, 8) for maps in cams.values())


def test_backward_stops_at_the_target_layer() -> None:
    model = safety_model()
    x = torch.randn(2, 3, 8, 8)
    CountBackward.calls = 0
    compute_cams(model, x, "7", methods=sorted(GRADIENT_METHODS))
    assert CountBackward.calls == 0
    model(x.requires_grad_(True)).sum().backward()  # the probe does count a full backward
    assert CountBackward.calls == 1


def test_one_forward_for_all_capture_methods() -> None:
    model = safety_model()
    x = torch.randn(2, 3, 8, 8)
    compute_cams(model, x, "7", methods=CAPTURE_METHODS)
    assert model[0].calls == 1
    compute_cam(model, x, "7", method="gradcam")
    assert model[0].calls == 2


@pytest.mark.parametrize("where", ["after-target", "before-target"])
def test_hooks_removed_and_state_restored_when_the_forward_raises(where: str) -> None:
    model = safety_model()
    model.train()
    raiser = Raises()
    if where == "before-target":
        model[6] = nn.Sequential(DrawsRandom(), raiser)
    else:
        raiser = model[10]
    raiser.armed = True
    x = torch.randn(2, 3, 8, 8)
    before = state(model)
    for method in ("gradcam", "eigencam"):
        with pytest.raises(RuntimeError, match="boom"):
            compute_cam(model, x, "7", method=method)
        assert_unchanged(before, model)
    with torch.no_grad():
        with pytest.raises(RuntimeError, match="boom"):
            compute_cam(model, x, "7")
        assert not torch.is_grad_enabled()


def test_hooks_removed_when_perturbed_forwards_raise() -> None:
    model = safety_model()
    calls = {"n": 0}

    def fail_after_first(module: nn.Module, args: tuple) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("boom")

    handle = model[2].register_forward_pre_hook(fail_after_first)
    try:
        for method in ("scorecam", "ablationcam"):
            calls["n"] = 0
            with pytest.raises(RuntimeError, match="boom"):
                compute_cam(model, torch.randn(2, 3, 8, 8), "7", method=method)
            assert len(model[7]._forward_hooks) == 0
    finally:
        handle.remove()
