"""FullGrad: agreement with pytorch-grad-cam's `FullGrad`, no side effects, and recording under watch()."""

from __future__ import annotations

import copy
import importlib.util
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import assert_training_unchanged, hook_count, insight_steps, random_batch, sgd_step, state_copy
from test_cam_recording import cam_model, probe_batch
from test_plugin import PREFIX, get_json, make_client
from torch import nn

from tb_plugin_insight import InsightWriter, compute_cam, compute_cams
from tb_plugin_insight.explain import fullgrad as fullgrad_mod
from tb_plugin_insight.render import png


def conv_net(*, batch_norm: bool, inplace: bool = False, seed: int = 0) -> nn.Sequential:
    """Three convolutions (the first two with BatchNorm when asked, then without conv bias, as in
    ResNets), pooling between them, a linear head; BatchNorm statistics away from their initial values."""
    torch.manual_seed(seed)

    def block(cin: int, cout: int) -> list[nn.Module]:
        conv = nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)
        return [conv, nn.BatchNorm2d(cout)] if batch_norm else [conv]

    model = nn.Sequential(
        *block(3, 8),
        nn.ReLU(inplace=inplace),
        nn.MaxPool2d(2),
        *block(8, 16),
        nn.ReLU(inplace=inplace),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    )
    if batch_norm:
        with torch.no_grad():
            for _ in range(3):
                model(torch.randn(16, 3, 32, 32) * 2 + 0.5)
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.5, 0.5)
    return model


# --- the reference: pytorch-grad-cam's FullGrad --------------------------------------------------------


class _Unused:
    """Stands for a class of a package that FullGrad's code path never calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


def _stub(name: str, path: str | None = None, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    if path is not None:
        module.__path__ = [path]
    return module


@pytest.fixture
def reference_fullgrad(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """pytorch-grad-cam 1.5.7's `FullGrad` class, its modules imported without the package's other
    dependencies (torchvision is not allowed here).

    The package's __init__ (and that of pytorch_grad_cam.utils) import every method and their
    dependencies, so both are replaced by bare packages over the same folders and only the modules
    FullGrad needs are imported. Stubbed, because they are imported at module level but never called on
    FullGrad's path: ttach (test-time augmentation, aug_smooth only), matplotlib and torchvision's
    transforms (drawing helpers), scipy's zoom (3-D volumes only), scikit-learn's KernelPCA (eigen_smooth
    only), torchvision itself (other targets). OpenCV, whose `cv2.resize` FullGrad does call, and numpy
    are the real packages. sys.modules is put back afterwards."""
    spec = importlib.util.find_spec("pytorch_grad_cam")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pytorch-grad-cam is not installed (pip install --no-deps grad-cam==1.5.7)")
    pytest.importorskip("cv2", reason="FullGrad resizes with OpenCV (pip install opencv-python-headless)")
    root = list(spec.submodule_search_locations)[0]
    stubs = {
        "pytorch_grad_cam": _stub("pytorch_grad_cam", root),
        "pytorch_grad_cam.utils": _stub("pytorch_grad_cam.utils", root + "/utils"),
        "ttach": _stub("ttach", Compose=_Unused, HorizontalFlip=_Unused, Multiply=_Unused),
        "matplotlib": _stub("matplotlib"),
        "matplotlib.pyplot": _stub("matplotlib.pyplot"),
        "matplotlib.lines": _stub("matplotlib.lines", Line2D=_Unused),
        "scipy": _stub("scipy"),
        "scipy.ndimage": _stub("scipy.ndimage", zoom=None),
        "torchvision": _stub("torchvision"),
        "torchvision.transforms": _stub(
            "torchvision.transforms", Compose=_Unused, Normalize=_Unused, ToTensor=_Unused
        ),
        "sklearn": _stub("sklearn"),
        "sklearn.decomposition": _stub("sklearn.decomposition", KernelPCA=_Unused),
    }
    before = set(sys.modules)
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    try:
        from pytorch_grad_cam.fullgrad_cam import FullGrad  # type: ignore[import-not-found]

        yield FullGrad
    finally:
        for name in set(sys.modules) - before:
            if name.startswith("pytorch_grad_cam"):
                del sys.modules[name]


def reference_maps(
    full_grad_class: Any, model: nn.Module, x: torch.Tensor, targets: Any = None
) -> np.ndarray:
    """pytorch-grad-cam's maps, on a copy of the model (it calls .backward() and leaves eval mode on)."""
    twin = copy.deepcopy(model)
    if targets is not None:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # type: ignore

        targets = [ClassifierOutputTarget(int(t)) for t in targets]
    method = full_grad_class(twin, [])
    try:
        return method(x, targets=targets)
    finally:
        method.activations_and_grads.release()


@pytest.mark.parametrize(
    "batch_norm, inplace", [(False, False), (True, False), (True, True)], ids=["plain", "bn", "bn-inplace"]
)
def test_agrees_with_pytorch_grad_cam(reference_fullgrad: Any, batch_norm: bool, inplace: bool) -> None:
    model = conv_net(batch_norm=batch_norm, inplace=inplace)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ours = compute_cam(model, x, None, method="fullgrad")
    reference = reference_maps(reference_fullgrad, model, x)
    assert reference.shape == tuple(ours.shape) == (4, 32, 32)
    assert float(np.abs(reference - ours.numpy()).max()) < 1e-3
    classes = torch.tensor([4, 0, 2, 1])
    ours = compute_cam(model, x, None, method="fullgrad", targets=classes)
    reference = reference_maps(reference_fullgrad, model, x, classes)
    assert float(np.abs(reference - ours.numpy()).max()) < 1e-3


def test_bias_layers_are_convolutions_and_batch_norms_with_a_bias() -> None:
    model = conv_net(batch_norm=True)
    names = [name for name, _ in fullgrad_mod.bias_layers(model)]
    assert names == ["1", "5", "8"]  # the two BatchNorms (their convs have no bias) and the last conv
    assert [name for name, _ in fullgrad_mod.bias_layers(conv_net(batch_norm=False))] == ["0", "3", "6"]


def test_the_input_term_alone_for_a_network_without_biases() -> None:
    # No bias layer: the map is |x * dS/dx| scaled per input channel, summed and scaled (computed here
    # with an ordinary .backward() on a copy).
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3)
    )
    x = torch.randn(2, 3, 8, 8)
    twin = copy.deepcopy(model)
    leaf = x.clone().requires_grad_(True)
    out = twin(leaf)
    out.gather(1, out.argmax(1, keepdim=True)).sum().backward()
    assert leaf.grad is not None
    term = (leaf.grad * x).abs().flatten(2)
    term = term - term.amin(2, keepdim=True)
    expected = (term / (term.amax(2, keepdim=True) + 1e-7)).sum(1).view(2, 8, 8)
    low = expected.flatten(1).amin(1)[:, None, None]
    high = expected.flatten(1).amax(1)[:, None, None]
    expected = (expected - low) / (high - low)
    torch.testing.assert_close(compute_cam(model, x, None, method="fullgrad"), expected, atol=1e-5, rtol=0)


def test_leaves_the_model_untouched() -> None:
    model = conv_net(batch_norm=True, inplace=True)
    model.insert(9, nn.Dropout(0.5))
    model.train()
    model[1].eval()  # a module in its own mode: it must keep it
    before, hooks = state_copy(model), hook_count(model)
    x = torch.randn(3, 3, 32, 32)
    rng = torch.get_rng_state()
    with torch.no_grad():  # gradients are enabled locally
        heat = compute_cam(model, x, None, method="fullgrad")
    assert heat.shape == (3, 32, 32) and float(heat.min()) == 0.0 and float(heat.max()) == 1.0
    assert all(p.grad is None for p in model.parameters())
    assert [m.training for m in model.modules()] == [i != 2 for i in range(len(list(model.modules())))]
    for key, value in state_copy(model).items():
        assert torch.equal(value, before[key]), key  # BatchNorm statistics and num_batches_tracked too
    assert hook_count(model) == hooks
    assert torch.equal(torch.get_rng_state(), rng)


def test_mixes_with_layer_methods_at_the_input_resolution() -> None:
    model = cam_model()
    images, _ = probe_batch()
    both = compute_cams(model, images, "3", ["gradcam", "fullgrad"], upsample=False)
    assert list(both) == ["gradcam", "fullgrad"]
    assert both["gradcam"].shape == both["fullgrad"].shape == (4, 12, 12)  # no longer the layer's 6x6
    torch.testing.assert_close(both["fullgrad"], compute_cam(model, images, None, method="fullgrad"))
    torch.testing.assert_close(both["gradcam"], compute_cam(model, images, "3", method="gradcam"))
    alone = compute_cams(model, images, "ignored-layer-name", ["fullgrad"])
    torch.testing.assert_close(alone["fullgrad"], both["fullgrad"])
    assert torch.equal(alone.predicted, both.predicted) and alone.raw_range["fullgrad"].shape == (4, 2)


def test_errors() -> None:
    model = cam_model()
    images, _ = probe_batch()
    with pytest.raises(ValueError, match="gradcam need a target_layer"):
        compute_cams(model, images, None, ["gradcam", "fullgrad"])
    with torch.inference_mode(), pytest.raises(ValueError, match="inference_mode"):
        compute_cam(model, images, None, method="fullgrad")
    detached = nn.Sequential(model, _Detach())
    with pytest.raises(ValueError, match="depend on neither"):
        compute_cam(detached, images, None, method="fullgrad", targets=0)


class _Detach(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach()


# --- under watch() ---------------------------------------------------------------------------------------


def _train(model: nn.Module, writer: InsightWriter | None, **watch: Any) -> None:
    if writer is not None:
        writer.watch(model, every=5, probe=probe_batch(), cam_every=2, **watch)
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(5):
        sgd_step(model, opt, *random_batch(gen, size=12))


def test_watch_records_fullgrad_without_a_layer(tmp_path: Path) -> None:
    with InsightWriter(str(tmp_path / "alone")) as writer:
        _train(cam_model(), writer, cam_methods=["fullgrad"])
    with InsightWriter(str(tmp_path / "mixed")) as writer:
        _train(cam_model(), writer, cam_methods=["gradcam", "fullgrad"])
    with InsightWriter(str(tmp_path / "once")) as writer:
        writer.add_cam("extra", cam_model(), probe_batch()[0], method="fullgrad", global_step=3)
    assert insight_steps(tmp_path / "once")["insight/cam/extra/fullgrad/"] == [3]
    assert insight_steps(tmp_path / "alone")["insight/cam/probe/fullgrad/"] == [0, 2, 4]
    assert insight_steps(tmp_path / "mixed")["insight/cam/probe/fullgrad/4"] == [0, 2, 4]
    client = make_client(tmp_path)
    images, _ = probe_batch()
    # step 0's maps come from the freshly initialised weights, before the first update
    expected = compute_cam(cam_model(), images, None, method="fullgrad").numpy()
    for run, probe, layer, step in (
        ("alone", "probe", "", 0),
        ("mixed", "probe", "4", 0),
        ("once", "extra", "", 3),
    ):
        query = f"run={run}&kind=cam&probe={probe}&layer={layer}&method=fullgrad&step={step}"
        response = client.get(PREFIX + "/map_image?" + query)
        assert response.status_code == 200, response.get_data()
        stored = png.decode(response.get_data()).reshape(4, 12, 12).astype(np.float64) / 255
        np.testing.assert_allclose(stored, expected, atol=1 / 510 + 1e-6)
    series = get_json(client, "/maps?run=alone")["series"]
    assert [(s["layer"], s["method"], s["auto"]) for s in series] == [("", "fullgrad", False)]


def test_recording_fullgrad_never_changes_training(tmp_path: Path) -> None:
    def final_state(watched: bool) -> dict[str, torch.Tensor]:
        model = cam_model()
        if not watched:
            _train(model, None)
            return state_copy(model)
        with InsightWriter(str(tmp_path / "run")) as writer:
            _train(model, writer, cam_methods=["fullgrad", "layercam"], saliency_every=2)
        return state_copy(model)

    assert_training_unchanged(final_state)
