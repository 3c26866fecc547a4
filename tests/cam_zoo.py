"""Small image classifiers of every family CAM layer choice must understand, rebuilt here (torchvision and
timm are not allowed in the test environment): the in-place activation patterns of squeezenet, mnasnet,
shufflenet, timm's BatchNormAct2d, ResNet and DenseNet; ViTs with class and register tokens; an
`nn.TransformerEncoder` image model; a channels-last model like timm's Swin; and HuggingFace's ViT, DeiT,
Swin and ConvNeXt from tiny configurations built in code."""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

CLASSES = 5
SIZE = 32  # probe images are (N, 3, 32, 32)


def conv_bn_act(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def own_cnn() -> nn.Module:
    """Conv, BatchNorm, ReLU(inplace=True) twice: the BatchNorm's output is the ReLU's, before it runs."""
    return nn.Sequential(
        *conv_bn_act(3, 8, 2),
        *conv_bn_act(8, 12, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(12, CLASSES),
    )


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


class SqueezeNetLike(nn.Module):
    """torchvision's squeezenet: the classifier's final conv, then ReLU(inplace=True), then pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2), nn.ReLU(inplace=True), nn.MaxPool2d(2), Fire(16, 4, 8), Fire(16, 4, 8)
        )
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Conv2d(16, CLASSES, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


class MNASNetLike(nn.Module):
    """torchvision's mnasnet: `layers` ends Conv, BatchNorm, ReLU(inplace=True); then x.mean([2, 3])."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *conv_bn_act(3, 8, 2),
            nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 16, 1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(x).mean([2, 3]))


class ShuffleNetLike(nn.Module):
    """torchvision's shufflenet: `conv5` is Conv, BatchNorm, ReLU(inplace=True); then x.mean([2, 3])."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(*conv_bn_act(3, 8, 2))
        self.stage2 = nn.Sequential(*conv_bn_act(8, 16, 2))
        self.conv5 = nn.Sequential(
            nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU(inplace=True)
        )
        self.fc = nn.Linear(24, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv5(self.stage2(self.conv1(x))).mean([2, 3]))


class BatchNormAct2d(nn.BatchNorm2d):
    """timm's BatchNormAct2d: batch norm, then `drop` (Identity) and `act` (in place) inside one module."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.drop = nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, self.training, 0.1, self.eps
        )
        return self.act(self.drop(x))


class TimmEfficientLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn1 = BatchNormAct2d(8)
        self.conv_head = nn.Conv2d(8, 16, 1, bias=False)
        self.bn2 = BatchNormAct2d(16)
        self.classifier = nn.Linear(16, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.bn2(self.conv_head(self.bn1(self.conv_stem(x)))).mean([2, 3]))


class BasicBlock(nn.Module):
    """torchvision's ResNet block: one ReLU module used twice, the residual added in place."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += x
        return self.relu(out)


class ResNetLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_act(3, 8, 2))
        self.layer1 = nn.Sequential(BasicBlock(8), BasicBlock(8))
        self.fc = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer1(self.stem(x)).mean([2, 3]))


class DenseNetLike(nn.Module):
    """torchvision's densenet: F.relu(features, inplace=True) outside any module after the last norm."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8))
        self.classifier = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.features(x), inplace=True)
        return self.classifier(out.mean([2, 3]))


class Attention(nn.Module):
    """timm's Attention: qkv, Identity q_norm/k_norm (outputs (N, heads, T, head_dim)), fused SDPA."""

    def __init__(self, dim: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm, self.k_norm = nn.Identity(), nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)
        return self.proj(out.transpose(1, 2).reshape(n, t, c))


class Mlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class OwnViT(nn.Module):
    """A timm-style ViT: patch embedding, `registers` register tokens after an optional class token,
    blocks, final norm; the head reads the class token, or the mean of the grid tokens."""

    def __init__(
        self, *, class_token: bool = True, registers: int = 0, dim: int = 16, patch: int = 8
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, patch)
        self.leading = int(class_token) + registers
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim)) if class_token else None
        self.reg_token = nn.Parameter(torch.randn(1, registers, dim)) if registers else None
        self.pos_embed = nn.Parameter(0.1 * torch.randn(1, (SIZE // patch) ** 2, dim))
        self.blocks = nn.Sequential(Block(dim), Block(dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2) + self.pos_embed
        extra = [p.expand(len(t), -1, -1) for p in (self.cls_token, self.reg_token) if p is not None]
        t = self.norm(self.blocks(torch.cat([*extra, t], dim=1)))
        return self.head(t[:, 0] if self.cls_token is not None else t[:, self.leading :].mean(1))


class LeViTLike(nn.Module):
    """timm's LeViT: a convolutional stem (the old choice), then attention blocks on tokens without a
    class token, a subsampling to a coarser grid, mean-pooled into the head."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dim, 3, 2, 1), nn.Hardswish(), nn.Conv2d(dim, dim, 3, 2, 1))
        self.stage1 = nn.Sequential(Block(dim))
        self.stage2 = nn.Sequential(Block(dim), Block(dim))
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.stage1(self.stem(x).flatten(2).transpose(1, 2))  # (N, 64, C)
        n, _, c = t.shape
        t = t.reshape(n, 8, 8, c)[:, ::2, ::2].reshape(n, 16, c)
        return self.head(self.stage2(t).mean(1))


class EncoderViT(nn.Module):
    """An image model on nn.TransformerEncoder with a class token (post-norm by default)."""

    def __init__(self, norm_first: bool = False, dim: int = 16, patch: int = 8) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        layer = nn.TransformerEncoderLayer(
            dim, 2, 2 * dim, dropout=0.0, batch_first=True, norm_first=norm_first
        )
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = self.encoder(torch.cat([self.cls.expand(len(t), -1, -1), t], dim=1))
        return self.head(t[:, 0])


class ChannelsLastNet(nn.Module):
    """timm's Swin layout: after the stem everything is (N, H, W, C): norms and MLPs on the last
    dimension, the final `norm` too, pooled over H and W."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 8, 8)
        self.mix_norm, self.mix = nn.LayerNorm(dim), Mlp(dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.stem(x).permute(0, 2, 3, 1)
        t = t + self.mix(self.mix_norm(t))
        return self.head(self.norm(t).mean((1, 2)))


def hf_models() -> dict[str, Callable[[], nn.Module]]:
    """HuggingFace classifiers from tiny configurations (no download)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers as tf

    vit = dict(image_size=SIZE, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2)
    return {
        "hf-vit": lambda: tf.ViTForImageClassification(
            tf.ViTConfig(**vit, intermediate_size=32, num_labels=CLASSES)
        ),
        "hf-deit": lambda: tf.DeiTForImageClassification(
            tf.DeiTConfig(**vit, intermediate_size=32, num_labels=CLASSES)
        ),
        "hf-swin": lambda: tf.SwinForImageClassification(
            tf.SwinConfig(
                image_size=SIZE,
                patch_size=2,
                embed_dim=8,
                depths=[1, 1],
                num_heads=[2, 2],
                window_size=4,
                num_labels=CLASSES,
            )
        ),  # fmt: skip
        "hf-convnext": lambda: tf.ConvNextForImageClassification(
            tf.ConvNextConfig(
                image_size=SIZE,
                patch_size=4,
                num_stages=2,
                hidden_sizes=[8, 16],
                depths=[1, 1],
                num_labels=CLASSES,
            )
        ),  # fmt: skip
    }


class Logits(nn.Module):
    """A HuggingFace classifier returning its logits tensor (for pytorch-grad-cam, which needs one)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x).logits


def logits(output: Any) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.logits
