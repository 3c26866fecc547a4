"""Small attention models for the attention tests: a ViT on F.scaled_dot_product_attention (optionally
causal, or with a key mask), an eager ViT (softmax of q k^T), one on nn.MultiheadAttention, and HuggingFace
tiny configurations built in code."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention: fused (SDPA) or eager (softmax of q k^T)."""

    def __init__(
        self, dim: int, heads: int, *, fused: bool, causal: bool = False, masked: bool = False
    ) -> None:
        super().__init__()
        self.heads, self.fused, self.causal, self.masked = heads, fused, causal, masked
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def key_mask(self, tokens: int, device: torch.device) -> torch.Tensor:
        """(T, T) boolean mask, True = may attend: every query sees all but the last key."""
        mask = torch.ones(tokens, tokens, dtype=torch.bool, device=device)
        mask[:, -1] = False
        return mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        mask = self.key_mask(t, x.device) if self.masked else None
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal)
        else:
            logits = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
            if mask is not None:
                logits = logits.masked_fill(~mask, float("-inf"))
            out = logits.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, **kind: bool) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, **kind)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patches of 4 x 4 on 12 x 12 images: a class token and a 3 x 3 grid (10 tokens)."""

    def __init__(self, depth: int = 2, dim: int = 16, heads: int = 2, classes: int = 3, **kind: bool) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, 10, dim) * 0.5)
        self.blocks = nn.Sequential(*[Block(dim, heads, **kind) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


class MhaNet(nn.Module):
    """Patch tokens (no class token) through nn.MultiheadAttention called without weights."""

    def __init__(self, dim: int = 16, heads: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.head = nn.Linear(dim, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch(images).flatten(2).transpose(1, 2)
        y, _ = self.attn(x, x, x, need_weights=False)
        return self.head((x + y).mean(dim=1))


def vit_reference(model: TinyViT, images: torch.Tensor) -> list[torch.Tensor]:
    """Each block's (N, heads, T, T) attention computed directly from its q and k (eval, no grad)."""
    found = []
    with torch.no_grad():
        x = model.patch(images).flatten(2).transpose(1, 2)
        x = torch.cat([model.cls.expand(len(x), -1, -1), x], dim=1) + model.pos
        for block in model.blocks:
            attn = block.attn
            n, t, c = x.shape
            h = attn.heads
            q, k, _ = attn.qkv(block.norm1(x)).reshape(n, t, 3, h, c // h).permute(2, 0, 3, 1, 4)
            logits = (q @ k.transpose(-2, -1)) / (c // h) ** 0.5
            if attn.causal:
                logits = logits.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
            if attn.masked:
                logits = logits.masked_fill(~attn.key_mask(t, x.device), float("-inf"))
            found.append(logits.softmax(dim=-1))
            x = block(x)
    return found


def hf_vit(implementation: str, seed: int = 0) -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=12, patch_size=4, num_channels=3, num_hidden_layers=2, hidden_size=16,
        num_attention_heads=2, intermediate_size=32, num_labels=3, attn_implementation=implementation,
    )  # fmt: skip
    return ViTForImageClassification(config)


def hf_gpt2(implementation: str, seed: int = 0) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=2, n_embd=16, n_head=2, vocab_size=40, n_positions=16, bos_token_id=0, eos_token_id=0,
        attn_implementation=implementation,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def hf_bert(implementation: str, seed: int = 0) -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=2, attn_implementation=implementation,
    )  # fmt: skip
    return BertForSequenceClassification(config)
