"""Device-to-host copies that the training thread starts and the writer thread finishes.

On the CPU a tensor already is on the host: its numpy view is returned (nothing pinned, no copy). On
CUDA the copy goes into pinned memory with `non_blocking=True` and a CUDA event is recorded after it;
the writer thread waits on that event before reading, so the training thread never waits for the copy.
Other devices (MPS, XPU, ...) copy synchronously.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import torch


class PendingHostCopy:
    """A device-to-host copy in flight; `numpy()` waits for it (call it on the writer thread)."""

    def __init__(self, host: torch.Tensor, event: Any, rows: Optional[Sequence[int]] = None) -> None:
        self._host = host
        self._event = event
        self._rows = rows

    def numpy(self) -> np.ndarray:
        if self._event is not None:
            self._event.synchronize()
            self._event = None
        array = self._host.numpy()
        return array if self._rows is None else array[list(self._rows)]


HostArray = Union[np.ndarray, PendingHostCopy]


def start_host_copy(tensor: torch.Tensor, rows: Optional[Sequence[int]] = None) -> HostArray:
    """Start moving `tensor` (detached) to the host, keeping only `rows` (first axis) if given; resolve
    the result with `host_numpy`. Selecting rows on the host avoids copying an index to the device."""
    tensor = tensor.detach()
    if tensor.device.type == "cpu":
        array = tensor.numpy()
        return array if rows is None else array[list(rows)]
    if tensor.device.type == "cuda":
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(tensor.device))
        return PendingHostCopy(host, event, rows)
    return PendingHostCopy(tensor.cpu(), None, rows)


def host_numpy(value: HostArray) -> np.ndarray:
    """The host array, waiting for its copy if one is still in flight."""
    return value.numpy() if isinstance(value, PendingHostCopy) else np.asarray(value)
