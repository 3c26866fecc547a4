"""Benchmark models defined here (no torchvision, no download): ResNet-18 (the reference model of every
benchmark), ResNet-50 and a GPT-style causal LM (overhead on a GPU and on transformers), and a stack of
big Linear layers (memory)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al., 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision's resnet18 layout: stem, four stages of two BasicBlocks, pooled linear head."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes: int = 10) -> ResNet18:
    """ResNet-18 with `num_classes` outputs (11.2M parameters at 10 classes)."""
    return ResNet18(num_classes)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride here, as torchvision's v1.5), 1x1 expand by 4, with a residual connection."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """torchvision's resnet50 layout: stem, stages of 3, 4, 6, 3 Bottlenecks, pooled linear head
    (25.6M parameters at 1000 classes). `base` scales every width (64: the real one; smaller for tests)."""

    def __init__(
        self, num_classes: int = 1000, base: int = 64, blocks: tuple[int, ...] = (3, 4, 6, 3)
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, channels = [], base
        for i, count in enumerate(blocks):
            width = base * 2**i
            stage = [Bottleneck(channels, width, 1 if i == 0 else 2)]
            channels = width * Bottleneck.expansion
            stage += [Bottleneck(channels, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through scaled_dot_product_attention (no attention matrix kept)."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} is not a multiple of n_head {n_head}")
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)

    def forward(self, x: Tensor) -> Tensor:
        batch, seq, n_embd = x.shape
        heads = (batch, seq, self.n_head, n_embd // self.n_head)
        q, k, v = (t.view(heads).transpose(1, 2) for t in self.qkv(x).split(n_embd, dim=2))
        y = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, seq, n_embd))


class MLP(nn.Module):
    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.act = nn.GELU()
        self.proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """A GPT-2-style causal language model: token embedding + learned positions, `n_layer` pre-LN blocks,
    final LayerNorm and a linear head (untied, so every watched layer owns its parameters). Input
    (batch, seq) token ids; output (batch, seq, vocab) logits. `dropout` > 0 drops embedding elements
    in training (functional: no extra module), drawing from the global RNG."""

    def __init__(
        self,
        vocab: int = 8192,
        seq: int = 128,
        n_embd: int = 256,
        n_head: int = 4,
        n_layer: int = 12,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.dropout = dropout
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(seq, n_embd)
        self.blocks = nn.Sequential(*(Block(n_embd, n_head) for _ in range(n_layer)))
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab, bias=False)
        for module in self.modules():  # GPT-2's initialisation
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens: Tensor) -> Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.wte(tokens) + self.wpe(positions)
        if self.dropout:
            x = functional.dropout(x, self.dropout, self.training)
        return self.head(self.ln_f(self.blocks(x)))


GPT_SIZES = {"gpt256": 256, "gpt128": 128}


class FixedBatchGPT:
    """The GPT with AdamW and one random batch of token ids (targets: random ids), like
    side_by_side.FixedBatchResNet: the same weights and batch for every instance, warmed up (two
    forward/backward passes) before any writer sees it. `gen` draws further inputs."""

    def __init__(
        self,
        batch: int = 8,
        seq: int = 128,
        n_embd: int = 256,
        n_head: int = 4,
        n_layer: int = 12,
        vocab: int = 8192,
        device: str | torch.device = "cpu",
    ) -> None:
        torch.manual_seed(0)
        self.model = GPT(vocab, seq, n_embd, n_head, n_layer).to(device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=3e-4)
        self.gen = torch.Generator().manual_seed(1)
        self.x = torch.randint(0, vocab, (batch, seq), generator=self.gen).to(device)
        self.y = torch.randint(0, vocab, (batch, seq), generator=self.gen).to(device)
        for _ in range(2):  # warm-up before any writer: not timed, not counted as steps
            self.loss_fn(self.model(self.x), self.y).backward()
        self.opt.zero_grad()

    @staticmethod
    def loss_fn(logits: Tensor, targets: Tensor) -> Tensor:
        return functional.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def train_step(self) -> Tensor:
        """One forward, backward and optimizer step on the fixed batch; returns the loss."""
        loss = self.loss_fn(self.model(self.x), self.y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss


def linear_stack(width: int = 4096, depth: int = 3) -> nn.Sequential:
    """`depth` Linear(width, width) layers with ReLUs between: big parameters, little compute per byte
    (3 x 4096^2: 201 MB of float32 parameters), for the memory benchmark."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(width, width)] + ([nn.ReLU()] if i < depth - 1 else [])
    return nn.Sequential(*layers)
