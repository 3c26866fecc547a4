"""Gradient flow from the user's own backward: per-layer gradient statistics and update ratios.

Nothing is recomputed and `.grad` is only read:

* At a recorded forward (the steps that also get activation statistics, when gradients are enabled), a
  tensor hook goes on each watched layer's output. In the user's backward it reduces the gradient flowing
  into that output on its device and returns None, so the gradient passes on unchanged.
* At the forward that completes the optimizer step (that same forward; with `accumulation=k`, the last of
  the k micro-batches of its group) a post-accumulate-grad hook goes on each parameter of the watched
  layers. It fires in that forward's backward right after the parameter's `.grad` has been accumulated,
  i.e. with the value the optimizer will use (summed over the micro-batches, before any clipping or
  unscaling done between backward and step), reduces it, and keeps a copy of a fixed sample of the
  parameter's elements (capture/weight_sample.py).
* At the model's next forward (in the usual loop: after `optimizer.step()`), or at unwatch/close, each
  sample is compared with the same elements of the updated parameter, giving the update ratio
  ||w_after - w_before|| / ||w_before|| of exactly the recorded step. Every layer's numbers are stacked
  on the device and moved to the host in one transfer, and the parameter hooks are removed.

With `ParamHistogramOptions` (watch's `Histograms(params=True)`), the same parameter hooks also bin, at
the steps divisible by its `every`, the parameter (before the update) and its `.grad` on the device
(capture/histogram.py, symmetric_histogram: per-step edges); all parameters' histograms of the step are
stacked and moved to the host in one more transfer, written next to the gradient record.

The update ratio is estimated, in bounded memory: a copy of every parameter would double the watched
parameters' memory. A parameter of at most K = 4096 elements is copied whole and its ratio is exact;
a larger one keeps about K elements at positions drawn once from a private generator (never the global
RNG), and ||Δw||^2 is estimated as n/m times the sample's sum of squares, divided by the exact ||w||.
Its relative error is about 1/sqrt(2K) (1.1 %) for dense updates, and larger for sparse ones (a fraction
f of the entries moving: about 1/(2 sqrt(f K))); weight_sample.py derives both. All samples and positions
together stay within 1 % of the parameters' memory plus 16 MiB.

Cost: nothing at steps that are not recorded. At a recorded step, a few reductions per gradient, and
the sample of each watched parameter, taken at the end of the backward and compared at the next forward
(none with `update_ratio=False`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from tb_plugin_insight import metadata
from tb_plugin_insight.capture import dist_grads, reduce, transfer
from tb_plugin_insight.capture import histogram as histogram_mod
from tb_plugin_insight.capture.portable import portable
from tb_plugin_insight.capture.weight_sample import WeightSample

logger = logging.getLogger(__name__)

GradRecordCallback = Callable[[int, Sequence[int], transfer.HostArray], None]
# step, layer indices (-1: the whole model), their metadata.NOISE_FIELDS rows (distributed jobs only)
NoiseCallback = Callable[[int, Sequence[int], np.ndarray], None]
# (qualified parameter name, owning layer's module type, parameter shape, owning layer's order)
ParamEntry = tuple[str, str, tuple[int, ...], int]
# step, the histogrammed parameters, their (parameters, 2, 4 + bins) rows: [0] values, [1] gradients
ParamHistogramCallback = Callable[[int, Sequence[ParamEntry], transfer.HostArray], None]
Scale = Union[None, float, torch.Tensor]

NUM_FIELDS = len(metadata.GRAD_FIELDS)


@dataclasses.dataclass(frozen=True)
class ParamHistogramOptions:
    """Weight and gradient histograms of each watched parameter, read in the parameter hooks at the
    recorded steps divisible by `every` (capture/histogram.py's symmetric_histogram has the edge rule)."""

    bins: int
    every: int
    on_record: ParamHistogramCallback


@dataclasses.dataclass(frozen=True)
class GradientOptions:
    """What watch(grads=True, ...) asked for (validated by `check_options`)."""

    accumulation: int = 1
    scaler: Any = None
    update_ratio: bool = True
    param_histograms: Optional[ParamHistogramOptions] = None
    across_ranks: bool = True  # distributed jobs: reduce across the ranks (capture/dist_grads.py)


def check_options(accumulation: Any, scaler: Any, update_ratio: Any) -> GradientOptions:
    """Validate watch()'s gradient keywords.

    Raises:
        ValueError: `grad_accumulation` is not a positive int.
        TypeError: `grad_scaler` has no `get_scale()`, or `update_ratio` is not a bool.
    """
    if isinstance(accumulation, bool) or not isinstance(accumulation, int) or accumulation < 1:
        raise ValueError(
            "grad_accumulation must be a positive int (micro-batches per optimizer step),"
            f" got {accumulation!r}"
        )
    if scaler is not None and not callable(getattr(scaler, "get_scale", None)):
        raise TypeError(
            f"grad_scaler must be a torch.amp.GradScaler (or have get_scale()), got {type(scaler).__name__}"
        )
    if not isinstance(update_ratio, bool):
        raise TypeError(f"update_ratio must be True or False, got {update_ratio!r}")
    return GradientOptions(accumulation, scaler, update_ratio)


def attribute_parameters(
    model: nn.Module, layers: Sequence[tuple[int, str, nn.Module]]
) -> list[tuple[int, nn.Parameter]]:
    """(index into `layers`, parameter) for every parameter of a watched layer.

    A parameter belongs to the innermost watched module that contains it (a watched block and a watched
    conv inside it: the conv's weight is the conv's); a parameter shared by several modules is counted
    once, for the first. Parameters outside every watched module are not described.
    """
    index_of = {name: i for i, (_, name, _) in enumerate(layers)}
    owned: list[tuple[int, nn.Parameter]] = []
    for qualified, param in model.named_parameters():
        parts = qualified.split(".")[:-1]
        for cut in range(len(parts), -1, -1):
            owner = ".".join(parts[:cut])
            if owner in index_of:
                owned.append((index_of[owner], param))
                break
    return owned


@dataclasses.dataclass
class _ParamRecord:
    parts: torch.Tensor  # reduce.grad_parts of .grad
    weight_sq: torch.Tensor  # ||w||^2 before the update
    before: Optional[torch.Tensor]  # copy of w's sampled elements, for the update ratio
    hist: Optional[torch.Tensor] = None  # (2, 4 + bins): histograms of w and of .grad (unscaled edges)


@dataclasses.dataclass
class _Pending:
    """One gradient record in the making: labelled `step`, completed by the backward of group `group`."""

    step: int
    group: int
    act_scale: Scale
    act: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)
    hooked: set[tuple[int, int]] = dataclasses.field(default_factory=set)  # (layer index, id(output))
    armed: bool = False
    param_scale: Scale = None
    params: dict[int, _ParamRecord] = dataclasses.field(default_factory=dict)
    handles: list[RemovableHandle] = dataclasses.field(default_factory=list)
    read: bool = False  # .grad read where the optimizer sees it (distributed jobs; manual steps)
    samples: int = 0  # this rank's samples in the optimizer step (distributed jobs)
    rank_sq: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)  # ||own gradient||^2


class GradientRecorder:
    """Gradient statistics of the watched layers at the recorded steps, driven by ActivationRecorder.

    ActivationRecorder calls `before_forward()` at every forward of the model, `begin(step)` at recorded
    forwards, `watch_output(index, tensor)` from its layer hooks, and `after_forward(step)` after every
    counted forward. `on_record(step, layer_indices, array)` receives a (layers, len(GRAD_FIELDS)) array.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[tuple[int, str, nn.Module]],
        options: GradientOptions,
        on_record: GradRecordCallback,
        on_noise: Optional[NoiseCallback] = None,
    ) -> None:
        self.options = options
        self._params = attribute_parameters(model, layers)
        self._num_layers = len(layers)
        self._row_cache: dict[tuple[tuple[int, ...], torch.device], torch.Tensor] = {}
        self._on_record = on_record
        self._pending: Optional[_Pending] = None
        self._failed = False
        self._sample = WeightSample([p for _, p in self._params]) if options.update_ratio else None
        self._entries = _param_entries(model, layers, self._params)
        self._dist: Optional[_Distributed] = None
        if options.across_ranks and dist_grads.world() is not None:
            self._dist = _Distributed(self, model, on_noise)

    @property
    def _halted(self) -> bool:
        """Recording stopped: after a local failure, or in a distributed job once every rank agreed."""
        return self._failed if self._dist is None else self._dist.stopped

    # --- called by ActivationRecorder -------------------------------------------------------------

    def before_forward(self) -> None:
        """A new forward: write the previous record if its backward has happened."""
        pending = self._pending
        if self._dist is not None:
            if pending is not None and pending.armed and pending.read:
                self._finish(pending)  # on every rank: the same forward after the same optimizer step
        elif (
            pending is not None
            and pending.armed
            and (pending.params or (pending.act and not pending.handles))
        ):
            self._finish(pending)

    def begin(self, step: int) -> bool:
        """A recorded forward starts; True if its layer outputs should get gradient hooks."""
        if self._halted or not torch.is_grad_enabled():
            return False  # under no_grad / inference_mode there is no backward to watch
        group = step // self.options.accumulation
        pending = self._pending
        if pending is not None:
            if pending.group == group:
                return False  # an earlier micro-batch of this optimizer step opened the record
            self._finish(pending)  # its optimizer step never completed: write what was seen
        self._pending = _Pending(step, group, self._guarded(self._scale))
        return True

    def watch_output(self, index: int, tensor: torch.Tensor) -> None:
        pending = self._pending
        key = (index, id(tensor))  # each call of a layer called several times, each output once
        if pending is None or key in pending.hooked or not tensor.requires_grad:
            return
        pending.hooked.add(key)
        tensor.register_hook(portable(self._output_hook(pending, index)))

    def after_forward(self, step: int, completed: bool) -> None:
        """Arm the parameter hooks at the forward whose backward completes the optimizer step."""
        k = self.options.accumulation
        pending = self._pending
        if pending is None or pending.armed or step // k != pending.group or step % k != k - 1:
            return
        if not completed or not torch.is_grad_enabled():
            return
        pending.armed = True
        pending.param_scale = self._guarded(self._scale)
        if self._dist is not None:
            self._dist.arm(pending)  # .grad is read before the optimizer step, reduced across ranks
            return
        for j, (_, param) in enumerate(self._params):
            if param.requires_grad:
                pending.handles.append(
                    param.register_post_accumulate_grad_hook(portable(self._param_hook(pending, j)))
                )

    def read_now(self) -> None:
        """Read the parameters' `.grad` now instead of arming the hooks of `after_forward` (manual steps:
        a trainer's hook just before its optimizer step, where the gradients are accumulated and, under
        AMP, already unscaled, hence no scale). The record is written at the next step or at remove()."""
        pending = self._pending
        if pending is None or pending.read or self._failed:
            return
        if pending.armed and self._dist is None:
            return  # the parameter hooks read them
        pending.armed = True
        self.read_all(pending)

    def read_all(self, pending: _Pending) -> None:
        """Read every watched parameter's `.grad` now (final: before the optimizer step)."""
        pending.read = True
        if self._dist is not None:
            pending.samples = self._dist.samples
        for j, (_, param) in enumerate(self._params):
            if param.grad is not None:
                record = self._guarded(self._read_param, param, j, self._hist_due(pending))
                if record is None:
                    return
                pending.params[j] = record

    def count_samples(self, args: Any) -> None:
        """A counted forward with positional inputs `args`: its batch counts towards the noise scale."""
        if self._dist is not None:
            self._dist.samples += dist_grads.first_batch_size(args)

    def remove(self) -> None:
        """Write a record whose backward has happened, then drop every hook (idempotent)."""
        pending, self._pending = self._pending, None
        if self._dist is not None:
            if pending is not None:
                self._finish(pending)  # every rank has this record open: each joins its reduction
            self._dist.remove()
        elif pending is not None:
            if pending.params or pending.act:
                self._finish(pending)
            else:
                _remove_handles(pending)
        if self._sample is not None:
            self._sample.clear()

    # --- hooks ----------------------------------------------------------------------------------------

    def _output_hook(self, pending: _Pending, index: int) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            if not self._failed:
                parts = self._guarded(_output_parts, grad)
                earlier = pending.act.get(index)
                if parts is not None:  # several calls of one layer: their parts add up
                    pending.act[index] = parts if earlier is None else reduce.add_grad_parts(earlier, parts)
            return None  # the gradient passes on unchanged

        return hook

    def _param_hook(self, pending: _Pending, j: int) -> Callable[[torch.Tensor], None]:
        def hook(param: torch.Tensor) -> None:
            if not self._failed and param.grad is not None:
                record = self._guarded(self._read_param, param, j, self._hist_due(pending))
                if record is not None:
                    pending.params[j] = record  # a second backward before the step: the later value

        return hook

    def _read_param(self, param: torch.Tensor, j: int, hist: bool = False) -> _ParamRecord:
        w = dist_grads.local(param.detach())  # a shard's own elements (summed across ranks later)
        weight_sq = _norm_sq(w)
        before = None if self._sample is None else self._sample.take(j, w)
        assert param.grad is not None  # the hooks read parameters whose gradient was just accumulated
        grad = dist_grads.local(param.grad)
        parts = _grad_parts(grad)
        record = _ParamRecord(parts, weight_sq, before)
        spec = self.options.param_histograms
        if hist and spec is not None and not grad.is_sparse:
            dtype = parts.dtype
            record.hist = torch.stack(
                [
                    histogram_mod.symmetric_histogram(w, spec.bins, histogram_mod.finite_absmax(w), dtype),
                    histogram_mod.symmetric_histogram(grad, spec.bins, parts[2], dtype),
                ]
            )
        return record

    def _hist_due(self, pending: _Pending) -> bool:
        spec = self.options.param_histograms
        return spec is not None and pending.step % spec.every == 0

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn; on any error stop recording gradients (never break the user's training)."""
        try:
            return fn(*args)
        except Exception:  # noqa: BLE001 - recording must never break the user's training
            self._failed = True
            logger.exception("Insight stopped recording gradients")
            return None

    def _scale(self) -> Scale:
        """The GradScaler's current scale without a device sync (None when there is no scaling)."""
        scaler = self.options.scaler
        if scaler is None:
            return None
        is_enabled = getattr(scaler, "is_enabled", None)
        if callable(is_enabled) and not is_enabled():
            return None
        get_async = getattr(scaler, "_get_scale_async", None)  # torch's GradScaler: the scale tensor
        scale = get_async() if callable(get_async) else None
        if isinstance(scale, torch.Tensor):
            return scale.detach().clone()  # update() changes it in place after the step
        return float(scaler.get_scale())

    # --- writing ----------------------------------------------------------------------------------------

    def _finish(self, pending: _Pending) -> None:
        if self._pending is pending:
            self._pending = None
        _remove_handles(pending)
        if self._dist is not None:
            rows = self._dist.finish(pending)  # the collective, on every rank
        else:
            rows = None if self._failed else self._guarded(self._rows, pending)
        hists = None if self._failed else self._guarded(self._hist_rows, pending)
        # A graph the user keeps alive keeps the output hooks and this record: free the weight copies.
        pending.params.clear()
        pending.act.clear()
        pending.rank_sq.clear()
        if rows is not None and rows[0]:
            indices, array = rows
            self._on_record(pending.step, indices, array)
        spec = self.options.param_histograms
        if hists is not None and spec is not None:
            spec.on_record(pending.step, hists[0], hists[1])

    def _hist_rows(self, pending: _Pending) -> Optional[tuple[list[ParamEntry], transfer.HostArray]]:
        """The parameters' weight and gradient histograms of this record, stacked on the device (gradient
        edges divided by the GradScaler's scale), in one host transfer; None when none was taken."""
        taken = [(j, hist) for j in sorted(pending.params) if (hist := pending.params[j].hist) is not None]
        if not taken:
            return None
        fired = [j for j, _ in taken]
        stacked = torch.stack([hist for _, hist in taken])  # (params, 2, 4 + bins)
        scale = pending.param_scale
        if scale is not None:
            unscale = scale.to(stacked.device, stacked.dtype) if isinstance(scale, torch.Tensor) else scale
            stacked[:, 1, :2] = stacked[:, 1, :2] / unscale  # counts are unchanged by the scale
        return [self._entries[j] for j in fired], transfer.start_host_copy(stacked)

    def _rows(self, pending: _Pending) -> tuple[list[int], transfer.HostArray]:
        """(layer indices, their GRAD_FIELDS rows), reduced on the device, one host transfer.

        Vectorised: a table of every watched layer is built with a few tensor ops (not a few per
        layer), its copy to the host is started, and the layers with data are picked there.
        """
        fired = sorted(pending.params)
        indices = sorted({self._params[j][0] for j in fired} | set(pending.act))
        if not indices:
            return [], np.zeros((0, NUM_FIELDS))
        any_parts = pending.params[fired[0]].parts if fired else next(iter(pending.act.values()))
        device, dtype = any_parts.device, any_parts.dtype
        records = [pending.params[j] for j in fired]
        deltas = None  # each record's estimated ||w_after - w_before||^2 (weight_sample.py)
        befores = [r.before for r in records]
        if self._sample is not None and all(b is not None for b in befores):
            sample = self._sample
            deltas = [
                sample.delta_sq(j, b, dist_grads.local(self._params[j][1].detach()), dtype).to(device)
                for j, b in zip(fired, befores)
                if b is not None
            ]
        params = _param_table(
            records,
            deltas,
            self._row_index(tuple(fired), device),
            self._num_layers,
            pending.param_scale,
            device,
            dtype,
        )
        acts = _act_table(
            [pending.act.get(i) for i in range(self._num_layers)], pending.act_scale, device, dtype
        )
        return indices, transfer.start_host_copy(torch.cat([params, acts], dim=1), rows=indices)

    def _row_index(self, fired: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Layer row of each fired parameter, on the device; cached (copying it there would sync)."""
        key = (fired, device)
        if key not in self._row_cache:
            if len(self._row_cache) > 8:
                self._row_cache.clear()
            rows = [self._params[j][0] for j in fired]
            self._row_cache[key] = torch.tensor(rows, dtype=torch.long).to(device)
        return self._row_cache[key]


def _param_entries(
    model: nn.Module, layers: Sequence[tuple[int, str, nn.Module]], params: Sequence[tuple[int, nn.Parameter]]
) -> list[ParamEntry]:
    """Each attributed parameter's (qualified name, layer's module type, shape, layer's order)."""
    names: dict[int, str] = {}
    for qualified, param in model.named_parameters():
        names.setdefault(id(param), qualified)
    return [
        (names.get(id(p), f"{layers[i][1]}.?"), type(layers[i][2]).__name__, tuple(p.shape), layers[i][0])
        for i, p in params
    ]


def _norm_sq(t: torch.Tensor) -> torch.Tensor:
    """||t||^2 in the statistics dtype. The norm itself runs in t's own precision (float32 for half
    types): torch's float32 L2 norm is ~15x faster than with dtype=float64, at ~1e-5 relative error.
    On accelerators half types are accumulated in float32 by the norm kernel itself, without a float32
    copy of the parameter (which would add twice its memory at the peak)."""
    dtype = reduce.stats_dtype(t.device)
    half = t.dtype in (torch.float16, torch.bfloat16)
    if t.device.type == "cpu":  # reading the result back costs nothing here: a dot, checked
        sum_sq = reduce.sum_of_squares(t.float() if half else t)
        if math.isfinite(sum_sq):
            return torch.tensor(sum_sq, dtype=dtype)
    return torch.linalg.vector_norm(t, dtype=torch.float32 if half else None).to(dtype).square()


def _output_parts(grad: torch.Tensor) -> torch.Tensor:
    """Output gradients are large (batch x features): their norm only, the cheapest reduction."""
    return _grad_parts(grad, abs_stats=False)


# Elements per piece of a large gradient: reduce.grad_parts allocates temporaries as large as its input
# (|g| on the CPU; a float32 copy of half types, NaN/Inf masks and the masked |g| on accelerators), so a
# 1 GB gradient would add over 1 GB at the peak. In pieces they stay small: 2^20 elements on the CPU
# (4 MB of |g| at a time), 2^21 on accelerators (under ~25 MB; each piece is a few more kernel launches,
# at the recorded steps only).
_PIECE = {"cpu": 1 << 20}
_PIECE_ACCELERATOR = 1 << 21


def _grad_parts(g: torch.Tensor, *, abs_stats: bool = True) -> torch.Tensor:
    """reduce.grad_parts of g, computed piece by piece when it is large (bounded temporaries)."""
    size = _PIECE.get(g.device.type, _PIECE_ACCELERATOR)
    flat = _flat_view(g) if g.numel() > size and not g.is_sparse else None
    if flat is None:
        return reduce.grad_parts(g, abs_stats=abs_stats)
    total: Optional[torch.Tensor] = None
    for piece in flat.split(size):
        parts = reduce.grad_parts(piece, abs_stats=abs_stats)
        total = parts if total is None else reduce.add_grad_parts(total, parts)
    assert total is not None
    return total


def _flat_view(t: torch.Tensor) -> Optional[torch.Tensor]:
    """A 1-D view of all of t's elements (in memory order, for reductions), or None when t is not dense
    (a view with gaps or overlaps: it is then reduced whole)."""
    t = t.detach()
    if t.is_contiguous():
        return t.view(-1)
    order = sorted(range(t.dim()), key=lambda d: t.stride(d), reverse=True)  # channels_last and the like
    permuted = t.permute(order)
    return permuted.view(-1) if permuted.is_contiguous() else None


def _remove_handles(pending: _Pending) -> None:
    for handle in pending.handles:
        handle.remove()
    pending.handles.clear()


def _summarise(parts: torch.Tensor, scale: Scale) -> torch.Tensor:
    """(rows, 6) norm, mean |g|, max |g| (divided by the scale), NaN, Inf, numel from summed parts."""
    sum_sq, sum_abs, max_abs, nans, infs, numel = parts.unbind(dim=1)
    finite = numel - nans - infs
    stats = torch.stack([sum_sq.sqrt(), sum_abs / finite, torch.where(finite > 0, max_abs, torch.nan)], dim=1)
    if isinstance(scale, torch.Tensor):
        stats = stats / scale.to(parts.device, parts.dtype)
    elif scale is not None:
        stats = stats / scale
    return torch.cat([stats, parts[:, 3:]], dim=1)


def _param_table(
    records: list[_ParamRecord],
    deltas: Optional[list[torch.Tensor]],
    rows: torch.Tensor,
    n: int,
    scale: Scale,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """(n, 8): gradNorm … gradNumel, weightNorm, updateRatio per layer; NaN (counts 0) without records.
    `deltas`: each record's (estimated) ||w_after - w_before||^2, None without the update ratio."""
    return _param_fields(_raw_param_table(records, deltas, rows, n, device, dtype), scale)


def _raw_param_table(
    records: list[_ParamRecord],
    deltas: Optional[list[torch.Tensor]],
    rows: torch.Tensor,
    n: int,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """(n, 8) per layer: its parameters' reduce.GRAD_PARTS combined, ||w||^2 and ||Δw||^2 (NaN without
    the update ratio): sums of parts, so that the tables of several ranks' shards add up too."""
    summed = torch.zeros(n, len(reduce.GRAD_PARTS), dtype=dtype, device=device)
    max_abs = torch.full((n,), float("-inf"), dtype=dtype, device=device)
    weight_sq = torch.zeros(n, dtype=dtype, device=device)
    delta_sq = torch.full((n,), float("nan"), dtype=dtype, device=device)
    if records:
        parts = torch.stack([r.parts.to(device, dtype) for r in records])
        max_abs.scatter_reduce_(0, rows, parts[:, 2], reduce="amax")
        sums = parts.clone()
        sums[:, 2] = 0.0  # a fill on the device; the max column is combined by amax above
        summed.index_add_(0, rows, sums)
        weight_sq.index_add_(0, rows, torch.stack([r.weight_sq.to(device, dtype) for r in records]))
        if deltas is not None:
            delta_sq = torch.zeros(n, dtype=dtype, device=device).index_add_(0, rows, torch.stack(deltas))
    elif deltas is not None:
        delta_sq = torch.zeros(n, dtype=dtype, device=device)
    summed[:, 2] = max_abs
    return torch.cat([summed, weight_sq[:, None], delta_sq[:, None]], dim=1)


def _param_fields(raw: torch.Tensor, scale: Scale) -> torch.Tensor:
    """_param_table's fields from _raw_param_table's sums."""
    summed, weight_sq, delta_sq = raw[:, :6], raw[:, 6], raw[:, 7]
    has = summed[:, 5] > 0
    fields = _summarise(summed, scale)
    weight_norm = torch.where(has, weight_sq.sqrt(), torch.nan)
    ratio = torch.where(has, delta_sq.sqrt() / weight_norm, torch.nan)
    fields[:, :3] = torch.where(has[:, None], fields[:, :3], torch.nan)
    return torch.cat([fields, weight_norm[:, None], ratio[:, None]], dim=1)


def _act_table(
    parts: list[Optional[torch.Tensor]], scale: Scale, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """(n, 4): actGradNorm, actGradNanCount, actGradInfCount, actGradNumel; NaN (counts 0) when unseen."""
    return _act_fields(_raw_act_table(parts, device, dtype), scale)


def _raw_act_table(
    parts: list[Optional[torch.Tensor]], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """(n, 6): each layer's output-gradient parts (zeros when unseen)."""
    blank = torch.zeros(len(reduce.GRAD_PARTS), dtype=dtype, device=device)
    return torch.stack([blank if p is None else p.to(device, dtype) for p in parts])


def _act_fields(stacked: torch.Tensor, scale: Scale) -> torch.Tensor:
    """_act_table's fields from _raw_act_table's parts."""
    fields = _summarise(stacked, scale)
    seen = stacked[:, 5] > 0
    norm = torch.where(seen, fields[:, 0], torch.nan)
    return torch.cat([norm[:, None], fields[:, 3:]], dim=1)


class _Distributed:
    """The distributed side of a GradientRecorder (capture/dist_grads.py has the rules): reads `.grad`
    just before the optimizer step, each rank's own gradient norm for the noise scale, and one collective
    per record, joined by every rank at the same point."""

    def __init__(self, owner: GradientRecorder, model: nn.Module, on_noise: Optional[NoiseCallback]) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        self._owner = owner
        self._model = weakref.ref(model)
        self._on_noise = on_noise
        params = [p for _, p in owner._params]
        self._sharded = [dist_grads.is_sharded(p) for p in params]
        self._param_ids = {id(p) for p in params}
        self._device = dist_grads.collective_device(params)
        self.stopped = False  # every rank agreed to stop recording gradients
        self._handshake: Optional[dist_grads.Handshake] = dist_grads.Handshake()
        self.samples = 0  # this rank's samples since the last optimizer step
        self._handles = [
            register_optimizer_step_pre_hook(self._before_step),
            register_optimizer_step_post_hook(self._after_step),
        ]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # --- reading ------------------------------------------------------------------------------------
    def arm(self, pending: _Pending) -> None:
        """Hooks on the tensors this rank's own gradient accumulates into, for the noise scale."""
        owner, model = self._owner, self._model()
        if model is None or owner._failed:
            return
        targets = owner._guarded(dist_grads.rank_gradient_tensors, model, [p for _, p in owner._params])
        for j, target in enumerate(targets or ()):
            if target is not None and target.requires_grad:
                hook = portable(self._rank_hook(pending, j))
                pending.handles.append(target.register_post_accumulate_grad_hook(hook))

    def _rank_hook(self, pending: _Pending, j: int) -> Callable[[torch.Tensor], None]:
        def hook(tensor: torch.Tensor) -> None:
            if not self._owner._failed and tensor.grad is not None and not pending.read:
                value = self._owner._guarded(_norm_sq, dist_grads.local(tensor.grad))
                if value is not None:
                    pending.rank_sq[j] = value  # a later micro-batch: the accumulated gradient

        return hook

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        owner = self._owner
        pending = owner._pending
        if pending is None or not pending.armed or pending.read or owner._failed:
            return
        if any(id(p) in self._param_ids for group in optimizer.param_groups for p in group["params"]):
            owner.read_all(pending)

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.samples = 0

    # --- the collective -----------------------------------------------------------------------------
    def finish(self, pending: _Pending) -> Optional[tuple[list[int], transfer.HostArray]]:
        """Join the record's collective (always, on every rank); the gradient rows, and the noise rows
        handed to `on_noise`. None when nothing was recorded or recording stopped."""
        owner = self._owner
        if self.stopped:
            return None
        if self._handshake is not None:
            everyone, self._handshake = self._handshake.everyone(), None
            if not everyone:
                return self._go_local(pending)
        local = None if owner._failed else owner._guarded(self._local_vector, pending)
        vector, replicated = local if local is not None else (self._failed_vector(), None)
        pending.param_scale = None  # .grad was read just before the step, unscaled (param histograms)
        try:
            gathered = dist_grads.gather(vector.to(self._device))
        except Exception:  # noqa: BLE001 - recording must never break the user's training
            self.stopped = True
            logger.exception("Insight stopped recording gradients: the cross-rank reduction failed")
            return None
        if bool(gathered[:, -1].any()) or replicated is None:
            self.stopped = True
            logger.warning("Insight stopped recording gradients on every rank (a rank's recording failed)")
            return None
        return owner._guarded(self._combine, pending, gathered.double().cpu(), replicated)

    def _go_local(self, pending: _Pending) -> Optional[tuple[list[int], transfer.HostArray]]:
        """Some rank never called `watch`: describe this rank's own gradients from now on (no collective)."""
        logger.warning(
            "Insight: not every rank of this distributed job called watch(), so gradient statistics cannot be"
            " reduced across ranks; recording this rank's own gradients instead. Create the InsightWriter"
            " and call watch() on every rank (ranks='first' keeps the others from writing), or pass"
            " grad_across_ranks=False to silence this."
        )
        owner = self._owner
        owner._dist = None
        self.remove()
        pending.param_scale = None  # read just before the optimizer step: already unscaled
        return None if owner._failed else owner._guarded(owner._rows, pending)

    def _length(self) -> int:
        n = self._owner._num_layers
        return n * (dist_grads.PARAM_COLUMNS + dist_grads.ACT_COLUMNS + 2) + 2

    def _failed_vector(self) -> torch.Tensor:
        vector = torch.zeros(self._length(), dtype=torch.float64)
        vector[-1] = 1.0
        return vector

    def _local_vector(self, pending: _Pending) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's packed vector [sharded parameters' sums | output-gradient parts | own ||g||^2 per
        layer | how many parameters gave it | samples, failed], and the replicated parameters' sums."""
        owner, n = self._owner, self._owner._num_layers
        device, dtype = torch.device("cpu"), torch.float64
        fired = sorted(pending.params)
        deltas: dict[int, torch.Tensor] = {}
        if owner._sample is not None:
            for j in fired:
                before = pending.params[j].before
                if before is not None:
                    w = dist_grads.local(owner._params[j][1].detach())
                    deltas[j] = owner._sample.delta_sq(j, before, w, dtype).to(device)
        tables = []
        for sharded in (True, False):
            picked = [j for j in fired if self._sharded[j] == sharded]
            rows = torch.tensor([owner._params[j][0] for j in picked], dtype=torch.long)
            picked_deltas = [deltas[j] for j in picked] if owner._sample is not None else None
            if picked_deltas is not None and len(picked_deltas) != len(picked):
                picked_deltas = None
            records = [pending.params[j] for j in picked]
            tables.append(_raw_param_table(records, picked_deltas, rows, n, device, dtype))
        acts = _raw_act_table([pending.act.get(i) for i in range(n)], device, dtype)
        rank_sq = torch.zeros(n, dtype=dtype)
        given = torch.zeros(n, dtype=dtype)
        scale = _scale_value(pending.param_scale)
        for j, value in pending.rank_sq.items():
            layer = owner._params[j][0]
            rank_sq[layer] += float(value) / scale**2
            given[layer] += 1.0
        tail = torch.tensor([float(pending.samples), 0.0], dtype=dtype)
        vector = torch.cat([tables[0].flatten(), acts.flatten(), rank_sq, given, tail])
        return vector, tables[1]

    def _combine(
        self, pending: _Pending, gathered: torch.Tensor, replicated: torch.Tensor
    ) -> Optional[tuple[list[int], transfer.HostArray]]:
        """Every rank's vectors to the record's rows: whole-parameter gradient statistics, and the noise."""
        n, world = self._owner._num_layers, gathered.shape[0]
        p_end = n * dist_grads.PARAM_COLUMNS
        a_end = p_end + n * dist_grads.ACT_COLUMNS
        params = dist_grads.combine_sums(gathered[:, :p_end].reshape(world, n, -1))
        params[:, :MAX] = params[:, :MAX] + replicated[:, :MAX]
        params[:, MAX] = torch.maximum(params[:, MAX], replicated[:, MAX])
        params[:, MAX + 1 :] = params[:, MAX + 1 :] + replicated[:, MAX + 1 :]
        acts = dist_grads.combine_sums(gathered[:, p_end:a_end].reshape(world, n, -1))
        acts[:, 0] /= world**2  # each rank's loss averages its own batch; the job's averages all of them
        acts[:, 1:3] /= world
        table = torch.cat([_param_fields(params, None), _act_fields(acts, pending.act_scale)], dim=1)
        seen = torch.nonzero((params[:, 5] > 0) | (acts[:, 5] > 0)).flatten().tolist()
        rank_sq = gathered[:, a_end : a_end + n]
        given = gathered[:, a_end + n : a_end + 2 * n]
        self._record_noise(pending.step, params[:, 0], rank_sq, given, gathered[:, -2])
        if not seen:
            return None
        return seen, table[seen].numpy()

    def _record_noise(
        self,
        step: int,
        big_sq: torch.Tensor,
        rank_sq: torch.Tensor,
        given: torch.Tensor,
        samples: torch.Tensor,
    ) -> None:
        """The noise-scale rows (metadata.NOISE_FIELDS) of the layers every rank measured, and of all of
        them together (index -1)."""
        if self._on_noise is None:
            return
        import torch.distributed as dist

        layers = torch.nonzero((given > 0).all(dim=0) & (given == given[0]).all(dim=0)).flatten().tolist()
        if not layers:
            return
        own = rank_sq[dist.get_rank()]
        small = torch.cat([rank_sq[:, layers].mean(dim=0), rank_sq[:, layers].sum(dim=1).mean()[None]])
        big = torch.cat([big_sq[layers], big_sq[layers].sum()[None]])
        mine = torch.cat([own[layers], own[layers].sum()[None]])
        counted = bool((samples > 0).all())  # every rank counted its samples (positional tensor inputs)
        b_small = samples.mean() if counted else torch.tensor(float("nan"), dtype=samples.dtype)
        b_big = samples.sum() if counted else b_small
        g_sq, trace = dist_grads.noise_components(small, big, b_small, b_big)
        rows = torch.stack(
            [g_sq, trace, trace / g_sq, small, big, mine, b_small.expand_as(small), b_big.expand_as(small)],
            dim=1,
        )
        self._on_noise(step, [*layers, -1], rows.numpy())


MAX = dist_grads.MAX_COLUMN


def _scale_value(scale: Scale) -> float:
    """A GradScaler's scale as a float (1 without scaling)."""
    if scale is None:
        return 1.0
    return float(scale.item()) if isinstance(scale, torch.Tensor) else float(scale)
