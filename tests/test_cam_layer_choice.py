"""The layer CAMs explain by default, on every family we can build without downloads (tests/cam_zoo.py),
through InsightWriter.watch: the layer, its layout and the reason the tab shows; Grad-CAM on it against
pytorch-grad-cam with the matching reshape_transform; the recorded maps; cam_layout and
cam_reshape_transform; feature maps with the same layout rules; activation modules of other libraries."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable, Optional

import cam_zoo as zoo
import numpy as np
import pytest
import torch
from test_fullgrad import reference_fullgrad  # noqa: F401 - the stubbed pytorch-grad-cam import
from torch import nn

from tb_plugin_insight import CAM, InsightWriter, read
from tb_plugin_insight.cam import compute_cam, compute_cams

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _hf(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        pytest.importorskip("transformers")
        return zoo.hf_models()[name]()

    return build


# family -> (model, chosen layer, its layout, words the reason must hold)
FAMILIES: dict[str, tuple[Callable[[], nn.Module], str, str, str]] = {
    "own-cnn-inplace-relu": (zoo.own_cnn, "5", "nchw", "'4' returns the same tensor before ReLU"),
    "squeezenet-like": (zoo.SqueezeNetLike, "classifier.2", "nchw", "'classifier.1' returns the same tensor"),
    "mnasnet-like": (zoo.MNASNetLike, "layers.8", "nchw", "'layers.7' returns the same tensor"),
    "shufflenet-like": (zoo.ShuffleNetLike, "conv5.2", "nchw", "'conv5.1' returns the same tensor"),
    "timm-batchnormact": (zoo.TimmEfficientLike, "bn2.act", "nchw", "'bn2.drop' returns the same tensor"),
    "resnet-like": (zoo.ResNetLike, "layer1.1", "nchw", "'layer1.1.bn2' returns the same tensor before it"),
    "densenet-like": (zoo.DenseNetLike, "features.1", "nchw", "changed in place afterwards"),
    "own-vit-class-token": (zoo.OwnViT, "blocks.1.norm1", "tokens", "1 leading token"),
    "own-vit-registers": (
        lambda: zoo.OwnViT(registers=4),
        "blocks.1.norm1",
        "tokens",
        "input of the last attention 'blocks.1.attn' (tokens (N, T, C), 5 leading tokens",
    ),
    "own-vit-mean-pooled": (
        lambda: zoo.OwnViT(class_token=False),
        "norm",
        "tokens",
        "every token reaches the head",
    ),
    "levit-like": (zoo.LeViTLike, "stage2.1", "tokens", "every token reaches the head"),
    "transformer-encoder-post-norm": (
        zoo.EncoderViT,
        "encoder.layers.0.norm2",
        "tokens",
        "input of the last attention 'encoder.layers.1.self_attn'",
    ),
    "transformer-encoder-pre-norm": (
        lambda: zoo.EncoderViT(norm_first=True),
        "encoder.layers.1.norm1",
        "tokens",
        "input of the last attention 'encoder.layers.1.self_attn'",
    ),
    "channels-last-swin-like": (zoo.ChannelsLastNet, "norm", "nhwc", "channels last (N, H, W, C)"),
    "hf-vit": (_hf("hf-vit"), "vit.layers.1.layernorm_before", "tokens", "1 leading token"),
    "hf-deit": (_hf("hf-deit"), "deit.layers.1.layernorm_before", "tokens", "2 leading tokens"),
    "hf-swin": (_hf("hf-swin"), "swin.layernorm", "tokens", "8x8 grid; every token reaches the head"),
    "hf-convnext": (_hf("hf-convnext"), "convnext.encoder.stages.1.layers.0", "nchw", "spatial output"),
}


def probe(n: int = 4, seed: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(seed))


def build(family: str) -> nn.Module:
    torch.manual_seed(0)
    return FAMILIES[family][0]().eval()


def chosen(model: nn.Module, tmp_path: Path, **options: Any) -> tuple[str, str]:
    """(layer, reason) watch() chooses for CAMs of a probe."""
    with InsightWriter(str(tmp_path / "choice")) as writer:
        handle = writer.watch(model, probe=probe(), cam_every=1, maps_every=0, **options)
        layer, reason = handle.cam_layer, handle.cam_layer_reason
        handle.remove()
    assert layer is not None
    return layer, reason


@pytest.mark.parametrize("family", list(FAMILIES))
def test_chosen_layer_layout_and_reason(family: str, tmp_path: Path) -> None:
    _, layer, layout, words = FAMILIES[family]
    model = build(family)
    name, reason = chosen(model, tmp_path)
    assert name == layer
    assert words in reason
    assert compute_cams(model, probe(), name, ["gradcam"]).layout == layout


def test_values_after_the_in_place_activation_are_explained() -> None:
    """The chosen ReLUs hold non-negative values; the modules before them held signed ones, and ScoreCAM
    on the squeezenet/mnasnet-like classifiers is no longer all zero."""
    for family in ("squeezenet-like", "mnasnet-like", "shufflenet-like", "timm-batchnormact"):
        model = build(family)
        layer = dict(model.named_modules())[FAMILIES[family][1]]
        seen: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda m, a, out, kept=seen: kept.append(out.detach().clone()))
        with torch.no_grad():
            model(probe())
        handle.remove()
        assert float(seen[0].min()) >= 0.0, family
        maps = compute_cam(model, probe(), FAMILIES[family][1], method="scorecam")
        assert bool((maps.flatten(1).amax(dim=1) > 0).any()), family


def test_patch_embeddings_and_attention_internals_are_never_chosen(tmp_path: Path) -> None:
    for family in ("own-vit-class-token", "own-vit-mean-pooled", "levit-like", "hf-vit", "hf-swin"):
        name, _ = chosen(build(family), tmp_path)
        assert not any(part in name for part in ("attn", "attention", "embed", "stem")), family


def _to_grid(leading: int, side: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """pytorch-grad-cam's ViT reshape_transform (from its tutorial), for `leading` tokens and a side x side
    grid."""

    def transform(t: torch.Tensor) -> torch.Tensor:
        result = t[:, leading:, :].reshape(t.size(0), side, side, t.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    return transform


# family -> pytorch-grad-cam's reshape_transform for the chosen layer (None: (N, C, H, W) as is)
REFERENCE_TRANSFORMS: dict[str, Optional[Callable[[torch.Tensor], torch.Tensor]]] = {
    "squeezenet-like": None,
    "timm-batchnormact": None,
    "own-vit-class-token": _to_grid(1, 4),
    "own-vit-registers": _to_grid(5, 4),
    "transformer-encoder-post-norm": _to_grid(1, 4),
    "channels-last-swin-like": lambda t: t.permute(0, 3, 1, 2),
    "hf-vit": _to_grid(1, 4),
    "hf-deit": _to_grid(2, 4),
    "hf-swin": _to_grid(0, 8),
    "hf-convnext": None,
}


@pytest.fixture
def reference_gradcam(reference_fullgrad: Any) -> Any:  # noqa: F811 - the fixture imported above
    """pytorch-grad-cam 1.5.7's GradCAM, imported under the same stubs as its FullGrad."""
    from pytorch_grad_cam.grad_cam import GradCAM  # type: ignore[import-not-found]

    return GradCAM


@pytest.mark.parametrize("family", list(REFERENCE_TRANSFORMS))
def test_gradcam_on_the_chosen_layer_agrees_with_pytorch_grad_cam(
    family: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    model = build(family)
    name, _ = chosen(model, tmp_path)  # before the stubs of the reference's import are in place
    reference_gradcam = request.getfixturevalue("reference_gradcam")
    x = probe()
    ours = compute_cam(model, x, name, method="gradcam")
    twin = zoo.Logits(copy.deepcopy(model)) if family.startswith("hf-") else copy.deepcopy(model)
    prefix = "model." if family.startswith("hf-") else ""
    layer = dict(twin.named_modules())[prefix + name]
    method = reference_gradcam(twin, [layer], reshape_transform=REFERENCE_TRANSFORMS[family])
    try:
        reference = method(x, targets=None)
    finally:
        method.activations_and_grads.release()
    assert reference.shape == tuple(ours.shape)
    assert float(np.abs(reference - ours.numpy()).max()) < 2e-3, float(np.abs(reference - ours.numpy()).max())
    assert float(ours.std()) > 0.05  # real maps, not constant ones


def _train(model: nn.Module, root: Path, steps: int = 2, **watch: Any) -> Any:
    model.train()  # Insight counts training forwards as steps
    with InsightWriter(str(root)) as writer:
        handle = writer.watch(model, every=1, probe=probe(), **{"cam_every": 1, "maps_every": 0, **watch})
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        gen = torch.Generator().manual_seed(1)
        for _ in range(steps):
            x = torch.randn(8, 3, zoo.SIZE, zoo.SIZE, generator=gen)
            y = torch.randint(0, zoo.CLASSES, (8,), generator=gen)
            loss = nn.functional.cross_entropy(zoo.logits(model(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return handle


@pytest.mark.parametrize("family", ["own-vit-registers", "channels-last-swin-like", "hf-swin"])
def test_recorded_cams_use_the_layout_and_carry_the_reason(family: str, tmp_path: Path) -> None:
    model = build(family)
    start = copy.deepcopy(model)
    _train(model, tmp_path / "run", steps=1)
    cams = read(tmp_path).cams("run", method="gradcam")
    assert cams.layer == FAMILIES[family][1]
    assert cams.layer_layout == FAMILIES[family][2]
    assert FAMILIES[family][3] in cams.layer_reason
    expected = compute_cams(start, probe(), cams.layer, ["gradcam"], upsample=False)["gradcam"]
    scale = cams.values[0].max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(cams.values[0] / scale, expected.numpy(), atol=1 / 255)


def test_cam_layout_and_reshape_transform_options(tmp_path: Path) -> None:
    def to_nchw(t: torch.Tensor) -> torch.Tensor:
        return t.permute(0, 3, 1, 2)

    for run, options in (
        ("transform", dict(cam_layer="norm", cam_reshape_transform=to_nchw)),
        ("layout", dict(cam=CAM(layer="norm", layout="nhwc"))),
        ("read-as-nchw", dict(cam_layer="norm", cam_layout="nchw")),
    ):
        torch.manual_seed(0)
        _train(zoo.ChannelsLastNet(), tmp_path / run, steps=1, **options)
    reader = read(tmp_path)
    transform, layout = reader.cams("transform"), reader.cams("layout")
    assert transform.layer_layout == "custom" and "given as cam_layer=" in transform.layer_reason
    assert layout.layer_layout == "nhwc" and "channels last" in layout.layer_reason
    np.testing.assert_allclose(transform.values, layout.values)
    wrong = reader.cams("read-as-nchw")  # declared nchw: (N, 4, 4, 16) read as 4 channels of 4 x 16
    assert wrong.layer_layout == "nchw" and wrong.values.shape[-2:] == (4, 16)
    with pytest.raises(ValueError, match="cam_layout must be one of nchw, nhwc, tokens"):
        InsightWriter(str(tmp_path / "bad")).watch(zoo.ChannelsLastNet(), probe=probe(), cam_layout="hwc")
    with pytest.raises(TypeError, match="cam_reshape_transform must be a callable"):
        InsightWriter(str(tmp_path / "bad")).watch(
            zoo.ChannelsLastNet(), probe=probe(), cam_reshape_transform=3
        )
    with pytest.raises(ValueError, match="disagree"):
        InsightWriter(str(tmp_path / "bad")).watch(
            zoo.ChannelsLastNet(), probe=probe(), cam_layout="nhwc", cam=CAM(layout="tokens")
        )


def test_a_declared_layout_limits_the_automatic_choice(tmp_path: Path) -> None:
    torch.manual_seed(0)
    name, reason = chosen(zoo.OwnViT(), tmp_path, cam_layout="nchw")
    assert name == "patch_embed.proj" and "(N, C, H, W)" in reason  # the only channels-first layer
    with pytest.raises(ValueError, match="found no layer with a spatial output"):
        chosen(zoo.own_cnn(), tmp_path, cam_layout="tokens")


def test_add_cam_takes_layout_and_reshape_transform(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = zoo.ChannelsLastNet()
    with InsightWriter(str(tmp_path / "run")) as writer:
        writer.add_cam("declared", model, probe(), "norm", layout="nhwc", global_step=1)
        writer.add_cam("auto", model, probe(), global_step=1)
    reader = read(tmp_path)
    declared, auto = reader.cams("run", probe="declared"), reader.cams("run", probe="auto")
    np.testing.assert_allclose(declared.values, auto.values)
    assert "given as target_layer=" in declared.layer_reason and "channels last" in auto.layer_reason


def test_feature_maps_follow_the_layouts_and_skip_window_tensors(tmp_path: Path) -> None:
    """Swin's window tensors (N * windows, tokens, C) are not stored as images of the probe; channels-
    last outputs are read with their C channels on the H x W grid."""
    torch.manual_seed(0)
    model = zoo.hf_models()["hf-swin"]() if _has_transformers() else None
    layered = zoo.ChannelsLastNet()
    with InsightWriter(str(tmp_path / "nhwc")) as writer:
        writer.watch(layered, probe=probe(), cam_every=0, maps_every=1, maps_layers=["norm", "mix.fc2"])
        layered(probe())
        layered.train()(probe())
    maps = read(tmp_path).feature_maps("nhwc", "norm")
    assert maps.values.shape[1:] == (4, 16, 4, 4)  # images, the k=16 channels, 4 x 4 grid
    if model is None:
        return
    with InsightWriter(str(tmp_path / "swin")) as writer:
        handle = writer.watch(model, probe=probe(), cam_every=0, maps_every=1, maps_layers=lambda n, m: True)
        model.train()(probe())
        handle.remove()
    reader = read(tmp_path)
    mapped = [s for s in reader.layers("swin")]
    stored = []
    for layer in mapped:
        try:
            values = reader.feature_maps("swin", layer).values
        except ValueError:
            continue
        stored.append(layer)
        assert values.shape[1] == 4, layer  # one map per probe image, never per window
    assert stored and not any(".attention." in name for name in stored)


def _has_transformers() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def test_activation_modules_of_other_libraries_are_watched_with_dead_units(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from transformers.activations import GELUActivation, NewGELUActivation, QuickGELUActivation

    class GELU(nn.Module):  # timm's own
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.gelu(x)

    class Sigmoid(nn.Module):  # timm's own
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sigmoid()

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(3 * zoo.SIZE * zoo.SIZE, 8),
        GELUActivation(),
        nn.Linear(8, 8),
        NewGELUActivation(),
        nn.Linear(8, 8),
        QuickGELUActivation(),
        nn.Linear(8, 8),
        GELU(),
        nn.Linear(8, 8),
        Sigmoid(),
        nn.Linear(8, zoo.CLASSES),
    )
    handle = _train(model, tmp_path / "run", cam_every=0)
    assert {"2", "4", "6", "8", "10"} <= set(handle.layers)
    units = read(tmp_path).units("run")
    first = units[units["step"] == 0].set_index("layer")
    for layer in ("2", "4", "6", "8"):
        assert np.isfinite(first.loc[layer, "deadFraction"]), layer
        assert np.isnan(first.loc[layer, "saturatedFraction"]), layer
    assert np.isfinite(first.loc["10", "saturatedFraction"]) and np.isnan(first.loc["10", "deadFraction"])


@pytest.mark.filterwarnings("ignore:guided backprop")  # the model has GELUs only: the plain gradient
def test_guided_gradcam_on_the_cam_layer_uses_its_reshape_transform(tmp_path: Path) -> None:
    from tb_plugin_insight.saliency import compute_saliency

    def flipped(t: torch.Tensor) -> torch.Tensor:  # a rearrangement no rule would guess
        return t.permute(0, 3, 1, 2).flip(-1)

    torch.manual_seed(0)
    model = zoo.ChannelsLastNet()
    start = copy.deepcopy(model)
    options = dict(cam_layer="norm", cam_reshape_transform=flipped, saliency_methods="guided_gradcam")
    _train(model, tmp_path / "run", steps=1, **options)
    stored = read(tmp_path).saliency("run").values[0]
    x = probe()
    expected = compute_saliency(start, x, "guided_gradcam", target_layer="norm", reshape_transform=flipped)
    inferred = compute_saliency(start, x, "guided_gradcam", target_layer="norm")
    scaled = stored / stored.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(
        scaled, expected.numpy() / expected.numpy().max(axis=(1, 2), keepdims=True), atol=0.01
    )
    assert float(np.abs(expected.numpy() - inferred.numpy()).max()) > 0.1
