"""Response encoding: JSON bytes without TensorBoard's per-element Cleanse pass, and matrices as float32.

`http_util.Respond` walks every element of a dict body (json_util.Cleanse) before `json.dumps`: for a
gradient overview (150k numbers) that walk costs more than everything else in the request. The queries
already turn non-finite numbers into None, so the body is dumped here directly; a body that still holds a
NaN falls back to the Cleanse path (NaN -> "NaN", as before).

Large numeric matrices can be sent as `{"f32": <base64 of little-endian float32>, "shape": [...]}`
(`encoding=f32` on the routes that offer it): ~8x less server time than JSON numbers and ~4x fewer
bytes than float64 text; NaN marks a missing value. float32 keeps 7 significant digits, more than the tab
shows.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

ENCODINGS = ("json", "f32")


def json_bytes(body: Any) -> bytes | None:
    """Compact JSON of `body`, or None when it holds a non-finite float (the caller cleanses it)."""
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode("ascii")
    except ValueError:
        return None


def f32_matrix(array: np.ndarray) -> dict[str, Any]:
    """A numeric array as base64 float32 (row-major) and its shape; non-finite values become NaN."""
    values = np.asarray(array, dtype="<f4")
    if values.size and not np.isfinite(values).all():
        values = np.where(np.isfinite(values), values, np.float32(np.nan)).astype("<f4")
    return {
        "f32": base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii"),
        "shape": list(values.shape),
    }


def json_values(array: np.ndarray) -> list[Any]:
    """Nested lists of floats, None where not finite (JSON has no NaN)."""
    out = np.asarray(array, dtype=np.float64).astype(object)
    out[~np.isfinite(np.asarray(array, dtype=np.float64))] = None
    return out.tolist()


def matrix(array: np.ndarray, encoding: str) -> Any:
    """`array` in the requested encoding: nested JSON lists (None = missing) or an f32 matrix."""
    return f32_matrix(array) if encoding == "f32" else json_values(array)
