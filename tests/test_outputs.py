"""Structured outputs and repeated calls: series names, and merged statistics equal to those of the
concatenated outputs."""

from __future__ import annotations

import collections
import dataclasses

import pytest
import torch

from tb_plugin_insight.capture import outputs, reduce


def with_bad_values(x: torch.Tensor, nan: int, inf: int) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[:nan] = float("nan")
    x.view(-1)[nan : nan + inf] = float("inf")
    return x


@pytest.mark.parametrize(
    "parts",
    [
        [(100, 0, 0), (37, 0, 0)],
        [(50, 3, 2), (20, 0, 1), (8, 0, 0)],
        [(0, 0, 0), (12, 1, 0)],  # an empty call
        [(4, 4, 0), (9, 0, 0)],  # a call with nothing finite
        [(0, 0, 0), (0, 0, 0)],
    ],
)
def test_merged_stats_equal_those_of_the_concatenation(parts: list[tuple[int, int, int]]) -> None:
    gen = torch.Generator().manual_seed(len(parts))
    tensors = [
        with_bad_values(torch.randn(n, generator=gen) * (i + 1) + i, nan, inf)
        for i, (n, nan, inf) in enumerate(parts)
    ]
    for t in tensors:
        t[t.abs() < 0.3] = 0.0  # some exact zeros
    merged = reduce.activation_stats(tensors[0])
    for t in tensors[1:]:
        merged = outputs.merge_stats(merged, reduce.activation_stats(t))
    expected = reduce.activation_stats(torch.cat(tensors))
    torch.testing.assert_close(merged, expected, equal_nan=True, rtol=1e-6, atol=1e-9)  # float32 inputs


class Pair(collections.namedtuple("Pair", "real imag")):
    pass


@dataclasses.dataclass
class Out:
    logits: torch.Tensor
    extra: object


def test_series_names_follow_the_output_structure() -> None:
    t = torch.zeros(1)
    lstm_like = (t, (t, t))
    assert [s for s, _ in outputs.named_tensors(lstm_like)] == ["", ":1.0", ":1.1"]
    assert [s for s, _ in outputs.named_tensors({"a": t, "b": [1, t]})] == ["", ":b.1"]
    assert [s for s, _ in outputs.named_tensors(Pair(t, t))] == ["", ":imag"]
    assert [s for s, _ in outputs.named_tensors(Out(t, {"h": t}))] == ["", ":extra.h"]
    assert [s for s, _ in outputs.named_tensors([t] * 40)] == ["", *[f":{i}" for i in range(1, 16)]]
    assert outputs.named_tensors((None, "text", 3)) == []
    assert outputs.named_tensors(t.to_sparse()) == []
    assert torch.equal(outputs.describable(torch.tensor([3 + 4j])), torch.tensor([5.0]))
