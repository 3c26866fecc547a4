"""What a layer's output is made of, and how repeated calls of one layer in a forward add up.

Layers return more than plain tensors: tuples (`nn.LSTM` returns `(output, (h_n, c_n))`, a complex conv
`(real, imag)`), lists, dicts, dataclasses and NamedTuples. Each tensor inside gets its own series:

* the first tensor (depth first) is the layer's primary output and keeps the layer's own name, so
  activation statistics, gradient flow and CAMs of a layer share one name;
* every further tensor is named `<layer>:<path>`, the path being the indices and keys leading to it,
  joined by ".": `lstm:1.0` is h_n, `lstm:1.1` is c_n, `cconv:imag` a dict's or dataclass's "imag".

A module called several times in one forward (shared weights, a reused ReLU, an RNN cell per time step)
gets one record per series and step that describes all its calls together, exactly as if their outputs
had been concatenated (`merge_stats`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import torch

# A module returning a long list of tensors would otherwise create one series per element.
MAX_TENSORS_PER_OUTPUT = 16
SEPARATOR = ":"


def named_tensors(output: Any, limit: int = MAX_TENSORS_PER_OUTPUT) -> list[tuple[str, torch.Tensor]]:
    """[(suffix, tensor)] of a layer's output: ("", primary tensor) first, then (":path", tensor).

    Dense tensors only (sparse and nested tensors are skipped), at most `limit` of them.
    """
    found: list[tuple[str, torch.Tensor]] = []
    for path, tensor in _walk(output, ()):
        if tensor.layout != torch.strided or getattr(tensor, "is_nested", False):
            continue
        suffix = "" if not found else SEPARATOR + ".".join(path)
        found.append((suffix, tensor))
        if len(found) >= limit:
            break
    return found


def primary_tensor(output: Any) -> torch.Tensor | None:
    """The layer's primary output: the first dense tensor inside it (None if it holds none)."""
    found = named_tensors(output, limit=1)
    return found[0][1] if found else None


def _walk(
    value: Any, path: tuple[str, ...], depth: int = 0
) -> Iterator[tuple[tuple[str, ...], torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        yield path, value
        return
    if depth > 8:
        return
    items: Any = ()
    if isinstance(value, Mapping):
        items = ((str(k), v) for k, v in value.items())
    elif isinstance(value, tuple) and hasattr(value, "_fields"):  # NamedTuple: its field names
        items = zip(value._fields, value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f.name, getattr(value, f.name, None)) for f in dataclasses.fields(value))
    elif isinstance(value, (tuple, list)):
        items = ((str(i), v) for i, v in enumerate(value))
    for key, item in items:
        yield from _walk(item, (*path, key), depth + 1)


def describable(tensor: torch.Tensor) -> torch.Tensor:
    """The real tensor statistics describe: complex values by their magnitude, others as they are."""
    return tensor.abs() if tensor.is_complex() else tensor


@torch.no_grad()
def merge_stats(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Statistics vectors (metadata.STAT_FIELDS order) of two tensors combined into those of both.

    Exact for counts, min, max and the zero fraction; mean and population std by the pairwise formula
    (Chan et al.) over the finite elements. Stays on the device: no host round trip.
    """
    b = b.to(a.device, a.dtype)
    mean_a, std_a, lo_a, hi_a, zero_a, nan_a, inf_a, n_a = a.unbind()
    mean_b, std_b, lo_b, hi_b, zero_b, nan_b, inf_b, n_b = b.unbind()
    fin_a, fin_b = n_a - nan_a - inf_a, n_b - nan_b - inf_b
    fin = fin_a + fin_b
    zero = a.new_zeros(())
    # A side without finite elements has NaN mean/std: it must not contribute (0 * NaN is NaN).
    wa = torch.where(fin_a > 0, fin_a, zero)
    wb = torch.where(fin_b > 0, fin_b, zero)
    ma = torch.where(fin_a > 0, mean_a, zero)
    mb = torch.where(fin_b > 0, mean_b, zero)
    va = torch.where(fin_a > 0, std_a.square(), zero)
    vb = torch.where(fin_b > 0, std_b.square(), zero)
    mean = (ma * wa + mb * wb) / fin
    var = (wa * (va + (ma - mean).square()) + wb * (vb + (mb - mean).square())) / fin
    n = n_a + n_b
    zero_fraction = torch.where(
        n > 0, (zero_a.nan_to_num(0.0) * n_a + zero_b.nan_to_num(0.0) * n_b) / n, zero
    )
    zero_fraction = torch.where(n > 0, zero_fraction, a.new_full((), float("nan")))
    return torch.stack(
        [
            mean,
            var.sqrt(),
            torch.fmin(lo_a, lo_b),
            torch.fmax(hi_a, hi_b),
            zero_fraction,
            nan_a + nan_b,
            inf_a + inf_b,
            n,
        ]
    )
