"""activation_stats against a numpy reference, including NaN/Inf, integer and empty tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tb_plugin_insight import metadata
from tb_plugin_insight.capture.reduce import activation_stats


def numpy_stats(a: np.ndarray) -> np.ndarray:
    """The documented definition, written independently with numpy."""
    a = a.astype(np.float64).ravel()
    finite = a[np.isfinite(a)]
    if a.size == 0:
        return np.array([np.nan] * 5 + [0, 0, 0], dtype=np.float64)
    if finite.size:
        mean, std, lo, hi = finite.mean(), finite.std(), finite.min(), finite.max()
    else:
        mean = std = lo = hi = np.nan
    return np.array(
        [mean, std, lo, hi, np.mean(a == 0), np.isnan(a).sum(), np.isinf(a).sum(), a.size], dtype=np.float64
    )


CASES = {
    "randn": np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32),
    "relu_zeros": np.maximum(np.random.default_rng(1).standard_normal((64, 10)), 0).astype(np.float32),
    "nan_inf": np.array([1.0, np.nan, 2.0, np.inf, -np.inf, 0.0, 3.0], dtype=np.float32),
    "all_nan": np.full((3, 2), np.nan, dtype=np.float32),
    "all_zero": np.zeros((2, 2), dtype=np.float32),
    "constant": np.full((10,), 7.5, dtype=np.float32),
    "scalar": np.array(3.0, dtype=np.float32),
    "float64": np.random.default_rng(2).standard_normal(1000),
    "int64": np.arange(-5, 6, dtype=np.int64),
    "bool": np.array([True, False, False, True]),
    "empty": np.zeros((0, 4), dtype=np.float32),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_stats_match_numpy(name: str) -> None:
    array = CASES[name]
    got = activation_stats(torch.from_numpy(array)).numpy()
    assert got.shape == (len(metadata.STAT_FIELDS),)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, numpy_stats(array), rtol=1e-5, atol=1e-6, equal_nan=True)


def test_half_precision_accumulates_in_float32() -> None:
    array = np.random.default_rng(3).standard_normal((256, 256)).astype(np.float32) + 100.0
    got = activation_stats(torch.from_numpy(array).to(torch.bfloat16)).numpy()
    ref = numpy_stats(torch.from_numpy(array).to(torch.bfloat16).float().numpy())
    np.testing.assert_allclose(got, ref, rtol=1e-4)


def test_nan_does_not_poison_other_stats() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, float("nan")])
    mean, std, lo, hi, _, nans, infs, numel = activation_stats(x).tolist()
    assert (mean, lo, hi, nans, infs, numel) == (2.0, 1.0, 3.0, 1, 0, 4)
    assert std == pytest.approx(np.std([1.0, 2.0, 3.0]))


def test_does_not_track_gradients() -> None:
    x = torch.randn(5, requires_grad=True)
    assert not activation_stats(x * 2).requires_grad


@pytest.mark.parametrize(("offset", "scale"), [(0.3, 0.7), (0.0, 1e-3), (100.0, 0.01), (-5.0, 40.0)])
def test_large_tensors_one_pass_variance_matches_numpy(offset: float, scale: float) -> None:
    """Above the one-pass threshold (and where the mean dominates, its exact fallback)."""
    rng = np.random.default_rng(3)
    array = (offset + scale * rng.standard_normal((8, 16, 32, 32))).astype(np.float32)
    array[0, 0, 0, :7] = 0.0
    got = activation_stats(torch.from_numpy(array)).numpy()
    np.testing.assert_allclose(got, numpy_stats(array), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("negative_zeros", [5, 0])  # with -0.0 the sign bits are cleared; without, not
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_zero_fraction_counts_negative_zero_and_ignores_tiny_values(
    dtype: torch.dtype, negative_zeros: int
) -> None:
    x = torch.ones(300, 300, dtype=dtype)
    x[0, :10] = 0.0
    x[1, :negative_zeros] = -0.0
    x[2, :7] = torch.finfo(dtype).tiny  # smallest normal: not zero
    x[3, :3] = -torch.finfo(dtype).tiny  # the negative value closest to -0.0 in the bits' order
    x[4, :2] = torch.finfo(dtype).smallest_normal / 4 if dtype != torch.bfloat16 else 1e-40  # subnormal
    expected = (10 + negative_zeros) / x.numel()
    zero_fraction = activation_stats(x)[4].item()
    assert zero_fraction == pytest.approx(expected, rel=1e-12)
    strided = activation_stats(x.t())[4].item()  # not contiguous: the plain count
    assert strided == pytest.approx(expected, rel=1e-12)
    shifted = activation_stats(x + 2)[4].item()  # min > 0: no zeros, and the count is skipped
    assert shifted == 0.0
