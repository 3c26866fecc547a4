"""InsightWriter: a SummaryWriter that can also watch a model's layers while it trains."""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from tb_plugin_insight import background, crc, metadata, records
from tb_plugin_insight import ranks as ranks_mod
from tb_plugin_insight.capture import feature_maps as fmaps
from tb_plugin_insight.capture import filters as filters_mod
from tb_plugin_insight.capture import grads as grads_mod
from tb_plugin_insight.capture import histogram as histogram_mod
from tb_plugin_insight.capture import hooks, maps, pooling, probe_pass, wrappers
from tb_plugin_insight.capture import layers as layer_selection
from tb_plugin_insight.capture import model_table as model_table_mod
from tb_plugin_insight.capture import probe as probe_mod
from tb_plugin_insight.capture import units as units_mod
from tb_plugin_insight.capture.hooks import ActivationRecorder, LayerInfo, Mode
from tb_plugin_insight.capture.layers import LayerSelector
from tb_plugin_insight.capture.maps import CamPlan, MapRecord, SaliencyPlan
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.capture.transfer import HostArray

logger = logging.getLogger(__name__)


class WatchHandle:
    """What `InsightWriter.watch` returns: the watched layer names, the step counter, `remove()`."""

    def __init__(
        self,
        writer: InsightWriter,
        model: nn.Module,
        recorder: ActivationRecorder,
        cam_plan: Optional[CamPlan] = None,
        saliency_plan: Optional[SaliencyPlan] = None,
    ) -> None:
        self._writer = weakref.ref(writer)
        self._model = weakref.ref(model)
        self._recorder = recorder
        self._cam_plan = cam_plan
        self._saliency_plan = saliency_plan

    @property
    def cam_layer(self) -> Optional[str]:
        """The layer CAMs explain (chosen automatically unless cam_layer= was given), or None."""
        return self._cam_plan.layer if self._cam_plan else None

    @property
    def cam_methods(self) -> tuple[str, ...]:
        return self._cam_plan.methods if self._cam_plan else ()

    @property
    def saliency_methods(self) -> tuple[str, ...]:
        return self._saliency_plan.methods if self._saliency_plan else ()

    @property
    def grads(self) -> bool:
        """True when gradient flow is recorded (watch(grads=True), the default)."""
        return self._recorder.gradients is not None

    @property
    def layers(self) -> list[str]:
        """Qualified names of the watched layers, in model order."""
        return [info.name for info in self._recorder.layers]

    @property
    def every(self) -> int:
        return self._recorder.every

    @property
    def step(self) -> int:
        """The step the next counted forward pass will be recorded as."""
        return self._recorder.step

    @step.setter
    def step(self, value: int) -> None:
        self._recorder.step = _check_step(value)

    @property
    def active(self) -> bool:
        """False once the hooks are removed."""
        return self._recorder.active

    def remove(self) -> None:
        """Remove the hooks (same as `writer.unwatch(model)`)."""
        writer, model = self._writer(), self._model()
        if writer is not None and model is not None:
            writer.unwatch(model)
        else:
            self._recorder.remove()

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"<WatchHandle {state}, {len(self.layers)} layers, every={self.every}, step={self.step}>"


class InsightWriter(SummaryWriter):
    """`torch.utils.tensorboard.SummaryWriter` plus `watch(model)` for the Insight tab.

    The constructor and every native method (add_scalar, add_graph, ...) are SummaryWriter's, unchanged.

    Example:
        >>> writer = InsightWriter("runs/exp1")
        >>> writer.watch(model, every=10)
        >>> for step, (x, y) in enumerate(loader):
        ...     loss = criterion(model(x), y)   # every 10th training forward is recorded
        ...     writer.add_scalar("loss", loss.item(), step)
        >>> writer.close()
    """

    def __init__(
        self,
        log_dir: Optional[str] = None,
        *args: Any,
        ranks: str = "first",
        write_queue_size: int = background.DEFAULT_MAX_QUEUE,
        **kwargs: Any,
    ) -> None:
        """SummaryWriter's arguments, plus `ranks` for distributed training and the writer thread's queue.

        Args:
            ranks: "first" (default): in a distributed job only rank 0 writes; on the other ranks every
                method (Insight's and SummaryWriter's) is accepted and writes nothing, and `watch` adds no
                hooks. "all": every rank writes its own run, `<log_dir>/rank<r>`.
            write_queue_size: how many recorded steps may wait for the writer thread before the training
                thread waits for it (default 64).
        """
        self.rank, world_size = ranks_mod.process_rank()
        self.writes = ranks_mod.check_mode(ranks) == "all" or self.rank == 0
        if ranks == "all" and world_size > 1:
            comment = kwargs.get("comment", args[0] if args else "")
            log_dir = os.path.join(log_dir or _default_log_dir(comment), f"rank{self.rank}")
        self._jobs = background.BackgroundJobs(write_queue_size)
        super().__init__(log_dir, *args, **kwargs)
        crc.install()
        self._recorders: dict[int, ActivationRecorder] = {}
        self._metadata_file_writer: object | None = None
        self._tags_with_metadata: set[str] = set()
        self._probe: Optional[Probe] = None
        self._stored_images: dict[str, str] = {}  # probe name -> fingerprint of the stored images
        self._map_failures: set[int] = set()
        # Maps due at the same step share one forward of the probe (capture/probe_pass.py); False runs
        # each kind's own pass (kept for tests and benchmarks that compare the two).
        self._share_probe_passes = True

    def _get_file_writer(self) -> Any:
        """torch's FileWriter, or on a rank that does not write (see `ranks`) one that keeps nothing."""
        if self.writes:
            return super()._get_file_writer()
        if self.all_writers is None or self.file_writer is None:
            self.file_writer = ranks_mod.NullFileWriter(self.log_dir)
            self.all_writers = {self.log_dir: self.file_writer}
        return self.file_writer

    def set_probe(
        self,
        images: Any,
        labels: Any = None,
        *,
        class_names: Optional[Sequence[str]] = None,
        display: Any = None,
    ) -> None:
        """Fix the probe batch that CAMs explain at every `cam_every`-th step (stored once per run).

        Args:
            images: model inputs (N, C, H, W), as the model expects them (normalised).
            labels: optional true class per image (N,), shown under each image.
            class_names: optional names of the classes, indexed by class.
            display: optional (N, H, W, 3) uint8 (or float 0..1) pictures to show instead of the inputs;
                by default each input is min-max stretched to 0..255.
        """
        self._probe = probe_mod.make_probe(
            metadata.DEFAULT_PROBE, images, labels, class_names=class_names, display=display
        )

    def watch(
        self,
        model: nn.Module,
        layers: LayerSelector = None,
        every: int = 10,
        *,
        mode: Mode = "train",
        probe: Any = None,
        cam_every: int = 100,
        cam_layer: Any = None,
        cam_methods: Sequence[str] | str = ("gradcam",),
        cam_target: str = "predicted",
        class_names: Optional[Sequence[str]] = None,
        grads: bool = True,
        grad_accumulation: int = 1,
        grad_scaler: Any = None,
        update_ratio: bool = True,
        saliency_every: Optional[int] = None,
        saliency_methods: Sequence[str] | str | None = None,
        saliency_target: Optional[str] = None,
        saliency_options: Optional[dict[str, dict[str, Any]]] = None,
        saliency_max_side: Optional[int] = 64,
        histograms: bool = True,
        histogram_bins: int = histogram_mod.DEFAULT_BINS,
        histogram_every: Optional[int] = None,
        units: bool = True,
        model_table: bool = True,
        maps_every: int = 100,
        maps_k: int = 16,
        maps_layers: LayerSelector = None,
        maps_channels: Optional[dict[str, Sequence[int]]] = None,
        maps_depth: Any = None,
        filters_layers: Optional[Sequence[str]] = None,
        maps_max_side: Optional[int] = 32,
        maps_bits: int = 6,
    ) -> WatchHandle:
        """Record activation statistics and gradient flow of `model`'s layers every `every` steps, and CAMs
        and input saliency of a probe.

        Steps: Insight counts the model's forward passes in training mode (`model.train()`), from 0.
        In the usual loop (one training forward per step, `global_step` counting from 0) its steps are
        the `global_step`s you pass to `add_scalar`; eval passes in `model.eval()` are not counted.
        Set `writer.step = n` (or `handle.step = n`) to align it with any other counter.

        Args:
            model: the module to watch. Watching it again replaces the earlier watch.
            layers: None for modules with parameters plus activation modules; a list of qualified names
                (as in `model.named_modules()`); or a predicate `(name, module) -> bool`.
            every: record the steps divisible by `every` (1 records every step).
            mode: which forwards count as steps: "train" (default), "eval", or "all".
            probe: a fixed batch to explain: images (N, C, H, W) or (images, labels). Same as
                `set_probe`; without it a probe set earlier with `set_probe` is used, if any.
            cam_every: with a probe, record CAMs every `cam_every` steps, computed just before that
                step's training forward (so with the weights that step uses), without changing training.
            cam_layer: the layer to explain (module or qualified name); None picks the last layer with a
                spatial output and logs its name (also in `handle.cam_layer` and in the tab).
            cam_methods: one or several of `tb_plugin_insight.cam.METHODS`; they share one pass.
            cam_target: "predicted" explains each image's predicted class; "label" its true label.
            class_names: names of the classes, shown in the tab.
            grads: record gradient flow at the recorded steps, from the user's own backward (nothing
                recomputed, `.grad` only read): per layer the norm, mean |g| and max |g| of its parameters'
                gradients and of the gradient into its output, NaN/Inf counts, the weight norm and the
                update ratio ||w_after - w_before|| / ||w_before||. Steps run under `torch.no_grad()` or
                `inference_mode()` are skipped quietly. Gradients are read right after the backward, so
                they are the values before any clipping (the update ratio shows the clipped update).
            grad_accumulation: micro-batches per optimizer step. The record of step s then holds the
                gradients accumulated over the k micro-batches of s's group (read after the last one's
                backward) and the output gradients of micro-batch s. Make `every` a multiple of it.
            grad_scaler: the `torch.amp.GradScaler` (or any object with `get_scale()`) that scales the
                loss: gradient statistics are divided by its scale, so they show unscaled values. Without
                it, statistics of scaled gradients are recorded as they are.
            update_ratio: False skips the update ratio and the copy of the watched parameters it needs
                (kept from the end of the backward to the next forward).
            saliency_every: with a probe, record input saliency maps every `saliency_every` steps
                (computed like CAMs, without changing training). Default: `cam_every` (100 if that
                is 0), when `saliency_methods` is given.
            saliency_methods: one or several of `tb_plugin_insight.saliency.METHODS` (default
                "gradient" when only `saliency_every` is given).
            saliency_target: "predicted" or "label"; default `cam_target`.
            saliency_options: per method, options of `compute_saliency`, e.g.
                `{"smoothgrad": {"samples": 8}}`; guided_gradcam's `target_layer` defaults to the CAM layer.
            saliency_max_side: saliency maps with a side above it are stored average-pooled (before
                their normalisation) by the smallest integer factor that brings both sides within it: a
                112 x 112 probe gets 56 x 56 maps (a quarter of the bytes), which the tab draws over the
                full-size images, upsampled. None stores them at the probe's resolution.
            histograms: record an activation histogram of every watched layer every `histogram_every`
                steps, on the device, with bin edges fixed at the layer's first histogram (rule in
                `tb_plugin_insight.capture.histogram`) plus underflow/overflow counts.
            histogram_bins: number of equal-width bins (1..4096; default 32, about the 30 buckets of
                TensorBoard's own histogram dashboard).
            histogram_every: steps between histograms, a multiple of `every`. Default: 100 (rounded up
                to a multiple of `every`), with the feature maps: a histogram costs about as much as all
                the statistics of its layer, and 1 in 10 statistics steps is enough to watch the
                distribution drift. Set it to `every` for a histogram at every statistics step.
            units: record, at the same steps and on the same (training) batch, the fraction of dead
                channels (never > 0) and, for bounded modules (Sigmoid, Tanh, ReLU6, ...), of saturated
                channels (rules in `tb_plugin_insight.capture.units`).
            model_table: record once, from the first recorded training forward, one row per module:
                type, output shape, parameter counts, depth, watched (the Model view of the tab).
            maps_every: every `maps_every` steps (0 = never), record feature maps of the probe (one
                side-effect-free forward under no_grad, just before that step's training forward, shared
                with the CAMs and saliency due at the same step: capture/probe_pass.py) and
                the filters of the first convolution (without a probe: only when `filters_layers` is
                given).
            maps_k: channels per layer: the `maps_k` most active on the probe (highest mean
                activation at the first maps step), kept for the whole run.
            maps_layers: the layers with feature maps, selected like `layers`. Default: the watched
                layers when `layers` is given; otherwise the last layer of each stage (of consecutive
                layers whose maps have the same size, the last one: one per resolution of a CNN), which
                keeps the default storage small. Outputs that are not (N, C), (N, C, L), (N, L, C),
                (N, C, H, W) or (N, C, D, H, W) are skipped.
            maps_channels: channels chosen by index per layer, e.g. `{"features.3": [0, 5, 9]}`,
                instead of the most active ones.
            maps_depth: for 3-D layers (N, C, D, H, W), the depth slice shown: an int for every such
                layer or `{"layer": index}` (default: the middle slice).
            filters_layers: further convolutions whose weights are recorded as image tiles (the first
                convolution always is).
            maps_max_side: feature maps with a side above it are average-pooled on the device, before
                quantisation, by the smallest integer factor f that brings both sides within it (the same
                f for height and width, edge blocks average the pixels they cover): with the default 32 a
                56 x 56 stem map is stored as 28 x 28, and the tab says "pooled 2x from 56x56". Token
                grids are pooled as grids; 1-row maps (sequences, tokens without a grid) only when longer
                than maps_max_side²; vector strips never. None stores full resolution.
            maps_bits: precision of the stored feature maps, 1..8: L + 1 evenly spaced levels per map's
                [min, max], L the largest divisor of 255 not above 2^bits - 1 (default 6: 52 levels,
                within (max - min) / 102 of the value, PNGs about 35% smaller than with 8 bits, which
                stay within (max - min) / 510; see `capture/quantize.py`). Filters keep 8 bits.

        Returns:
            A WatchHandle with the watched layer names, the step counter, the CAM layer and `remove()`.

        Raises:
            ValueError: unknown layer names (with close matches), no layer selected, bad `every`/`mode`,
                bad CAM, gradient or saliency options (each message names the fix).
            TypeError: `model` is not an nn.Module or `layers` has the wrong type.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"watch() needs an nn.Module, got {type(model).__name__}")
        compiled = bool(wrappers.compile_contexts(model))
        no_graph_breaks = wrappers.compiled_without_graph_breaks(model)
        model = wrappers.unwrap(model)  # DDP, DataParallel, torch.compile: names without their prefix
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int (1 = every step), got {every!r}")
        if mode not in hooks.MODES:
            raise ValueError(f"mode must be one of {', '.join(hooks.MODES)}; got {mode!r}")
        chosen = layer_selection.select_layers(model, layers)
        if probe is not None:
            images, labels = probe if isinstance(probe, (tuple, list)) else (probe, None)
            self.set_probe(images, labels, class_names=class_names)
        elif class_names is not None and self._probe is not None:
            self._probe.class_names = tuple(str(n) for n in class_names)
        for flag_name, flag in (("grads", grads), ("histograms", histograms), ("units", units)):
            if not isinstance(flag, bool):
                raise TypeError(f"{flag_name} must be True or False, got {flag!r}")
        if not isinstance(model_table, bool):
            raise TypeError(f"model_table must be True or False, got {model_table!r}")
        pooling.check_max_side("saliency_max_side", saliency_max_side)  # also when saliency is off
        reducers: list[hooks.LayerReducer] = []
        if units:
            reducers.append(units_mod.UnitReducer())
        if histograms:
            hist_every = histogram_mod.choose_every(histogram_every, every)
            reducers.append(histogram_mod.HistogramReducer(histogram_bins, hist_every))
        grad_options = (
            grads_mod.check_options(grad_accumulation, grad_scaler, update_ratio) if grads else None
        )
        plan = None
        if self._probe is not None and cam_every:
            plan = maps.plan_cams(
                model, self._probe, every=cam_every, layer=cam_layer, methods=cam_methods, target=cam_target
            )
        saliency_plan = None
        if saliency_every is not None or saliency_methods:
            if self._probe is None:
                raise ValueError(
                    "saliency maps need a probe batch: pass probe=(images, labels) or call set_probe"
                )
            saliency_plan = maps.plan_saliency(
                model,
                self._probe,
                every=saliency_every if saliency_every is not None else (cam_every or 100),
                methods=saliency_methods or ("gradient",),
                target=saliency_target or cam_target,
                options=saliency_options,
                cam_layer=plan.layer if plan else None,
                max_side=saliency_max_side,
            )
        map_layers = chosen if maps_layers is None else layer_selection.select_layers(model, maps_layers)
        maps_plan = fmaps.plan_feature_maps(
            model,
            self._probe,
            every=maps_every,
            k=maps_k,
            layers=[(name, module) for _, name, module in map_layers],
            channels=maps_channels,
            depth=maps_depth,
            filter_layers=filters_layers,
            device=maps.model_device(model),
            stage_ends_only=maps_layers is None and layers is None,
            max_side=maps_max_side,
            bits=maps_bits,
        )
        maps_recorder = fmaps.FeatureMapRecorder(maps_plan) if maps_plan else None
        self.unwatch(model)
        starter = None
        if plan or saliency_plan or maps_recorder:
            starter = self._step_starter(plan, saliency_plan, maps_recorder)
        recorder = ActivationRecorder(
            model,
            chosen,
            every=every,
            mode=mode,
            on_record=self._stats_recorder(model, records.activation_stats),
            on_step_start=starter,
            gradients=grad_options,
            on_gradient_record=self._stats_recorder(model, records.gradient_stats),
            reducers=reducers,
            on_extras=self._extras_recorder(chosen, histogram_bins) if reducers else None,
            on_model_table=self._record_model_table if model_table else None,
            compiled=compiled,
        )
        if no_graph_breaks:
            logger.warning(
                "Insight cannot record a model compiled with torch.compile(fullgraph=True): its hooks run"
                " Python that needs graph breaks. Nothing is recorded for this model. Compile it without"
                " fullgraph=True (Insight's hooks then split the graph at the watched layers), or watch it"
                " uncompiled."
            )
        if not self.writes or no_graph_breaks:
            recorder.remove()  # a rank that does not write records nothing (see `ranks`)
        else:
            self._recorders[id(model)] = recorder
        return WatchHandle(self, model, recorder, plan, saliency_plan)

    def add_cam(
        self,
        tag: str,
        model: nn.Module,
        inputs: Any,
        target_layer: Any = None,
        method: Sequence[str] | str = "gradcam",
        targets: Any = None,
        global_step: Optional[int] = None,
        *,
        labels: Any = None,
        class_names: Optional[Sequence[str]] = None,
    ) -> None:
        """Log CAMs of `inputs` once, under `tag` (shown in the tab's CAM view as probe `tag`).

        Args:
            tag: the name of this batch of images in the tab.
            model, inputs, target_layer, targets: as `tb_plugin_insight.cam.compute_cam`; target_layer
                None picks the last spatial layer.
            method: a method name or a list of them (they share one pass).
            global_step: the step to record at (default: the watched model's current step, else 0).
            labels, class_names: optional true labels and class names shown under the images.
        """
        if not isinstance(tag, str) or not tag or "/" in tag:
            raise ValueError(f"tag must be a non-empty string without '/', got {tag!r}")
        step = _check_step(global_step if global_step is not None else (self.step or 0))
        if not self.writes:
            return
        model = wrappers.unwrap(model)
        probe = probe_mod.make_probe(tag, inputs, labels, class_names=class_names)
        device, dtype = maps.model_device(model), maps.model_dtype(model)
        layer = target_layer
        auto = layer is None
        if auto:
            layer = probe_mod.find_last_spatial_layer(model, probe.on(device, dtype)[:1])
        from tb_plugin_insight import cam

        result = cam.compute_cams(
            model, probe.on(device, dtype), layer, method, targets=targets, upsample=False
        )
        layer_name = maps.resolve_layer(model, layer)[0]
        self._write_maps(step, probe, layer_name, maps.record_from_cams(result), auto_selected=auto)

    def add_saliency(
        self,
        tag: str,
        model: nn.Module,
        inputs: Any,
        method: Sequence[str] | str = "gradient",
        targets: Any = None,
        global_step: Optional[int] = None,
        *,
        labels: Any = None,
        class_names: Optional[Sequence[str]] = None,
        **options: Any,
    ) -> None:
        """Log input saliency maps of `inputs` once, under `tag` (the tab's overlay viewer, kind Saliency).

        Args:
            tag: the name of this batch of images in the tab.
            model, inputs, targets, options: as `tb_plugin_insight.saliency.compute_saliency`.
            method: a method name or a list of them.
            global_step: the step to record at (default: the watched model's current step, else 0).
            labels, class_names: optional true labels and class names shown under the images.
        """
        from tb_plugin_insight import saliency

        if not isinstance(tag, str) or not tag or "/" in tag:
            raise ValueError(f"tag must be a non-empty string without '/', got {tag!r}")
        step = _check_step(global_step if global_step is not None else (self.step or 0))
        if not self.writes:
            return
        model = wrappers.unwrap(model)
        probe = probe_mod.make_probe(tag, inputs, labels, class_names=class_names)
        images = probe.on(maps.model_device(model), maps.model_dtype(model))
        methods = [method] if isinstance(method, str) else list(dict.fromkeys(method))
        result = {m: saliency.compute_attribution(model, images, m, targets, **options) for m in methods}
        record = maps.record_from_attributions(result, *maps.predictions(model, images))
        self._write_maps(step, probe, "", record, auto_selected=False, kind=metadata.RecordKind.SALIENCY)

    def _step_starter(
        self,
        plan: Optional[CamPlan],
        saliency_plan: Optional[SaliencyPlan],
        maps_recorder: Optional[fmaps.FeatureMapRecorder] = None,
    ) -> Any:
        def on_step_start(step: int, model: nn.Module) -> None:
            with torch.inference_mode(False):  # a loop under inference_mode: probe passes still work
                run_probe_passes(step, model)

        def run_probe_passes(step: int, model: nn.Module) -> None:
            probe = self._probe
            maps_now = (
                maps_recorder is not None
                and step % maps_recorder.plan.every == 0
                and id(maps_recorder) not in self._map_failures
            )
            cams_now = plan is not None and step % plan.every == 0 and id(plan) not in self._map_failures
            sp = saliency_plan
            saliency_now = (
                sp is not None
                and not step % sp.every
                and probe is not None
                and id(sp) not in self._map_failures
            )
            shared = None
            if probe is not None and self._share_probe_passes:
                fm_shares = maps_now and maps_recorder is not None and bool(maps_recorder.plan.views)
                if probe_pass.saves_a_forward(
                    fm_shares, cams_now, sp if saliency_now else None, len(probe.images), predict=not cams_now
                ):
                    shared = self._shared_probe_pass(
                        model,
                        probe,
                        maps_recorder if fm_shares else None,
                        plan if cams_now else None,
                        sp if saliency_now else None,
                        predict=not cams_now,
                    )
            if maps_now and maps_recorder is not None:
                self._record_feature_maps(
                    step, model, maps_recorder, shared.feature_maps if shared is not None else None
                )
            if cams_now and plan is not None and probe is not None:
                try:
                    record = _result(shared.cams) if shared is not None else maps.run_cams(model, probe, plan)
                    self._write_maps(step, probe, plan.layer, record, auto_selected=plan.auto_selected)
                except Exception:  # noqa: BLE001 - recording must never break the user's training
                    self._map_failures.add(id(plan))
                    logger.exception("Insight stopped recording CAMs of layer %r", plan.layer)
            if not saliency_now or sp is None or probe is None:
                return
            try:
                if shared is not None:
                    record = _result(shared.saliency)
                else:
                    record = maps.run_saliency(model, probe, sp, predict=not cams_now)
                self._write_maps(
                    step, probe, "", record, auto_selected=False, kind=metadata.RecordKind.SALIENCY
                )
            except Exception:  # noqa: BLE001 - recording must never break the user's training
                self._map_failures.add(id(sp))
                logger.exception("Insight stopped recording saliency maps")

        return on_step_start

    def _shared_probe_pass(
        self,
        model: nn.Module,
        probe: Probe,
        recorder: Optional[fmaps.FeatureMapRecorder],
        cam_plan: Optional[CamPlan],
        saliency_plan: Optional[SaliencyPlan],
        *,
        predict: bool,
    ) -> Optional[probe_pass.SharedMaps]:
        """The maps due at this step from one forward of the probe (capture/probe_pass.py), or None when
        that forward fails: each kind then runs its own pass, so a failure stops only the kinds it hits."""
        try:
            return probe_pass.run_shared(
                model,
                probe,
                feature_maps=recorder,
                cam_plan=cam_plan,
                saliency_plan=saliency_plan,
                predict=predict,
            )
        except Exception:  # noqa: BLE001 - the separate passes below report what fails
            logger.debug(
                "Insight's shared probe pass failed; running the maps' passes separately", exc_info=True
            )
            return None

    def _record_feature_maps(
        self,
        step: int,
        model: nn.Module,
        recorder: fmaps.FeatureMapRecorder,
        shared: probe_pass.FeatureMapsOutcome = None,
    ) -> None:
        """Feature maps of the probe and the filters at one step; a failure stops them, never training.

        `shared`: the feature maps (or the error) of a shared probe pass, None to run their own pass."""
        if id(recorder) in self._map_failures:
            return
        try:
            feature_maps = {}
            if shared is not None:
                feature_maps = _result(shared)
            elif self._probe is not None and recorder.plan.views:
                probe_images = self._probe.on(maps.model_device(model), maps.model_dtype(model))
                feature_maps = recorder.run(model, probe_images)
            modules = dict(model.named_modules())
            weights = {name: filters_mod.filter_record(modules[name]) for name in recorder.plan.filter_layers}
            orders = {name: i for i, name in enumerate(modules)}
            self._write_feature_maps(step, feature_maps, weights, orders)
        except Exception:  # noqa: BLE001 - recording must never break the user's training
            self._map_failures.add(id(recorder))
            logger.exception("Insight stopped recording feature maps and filters")

    def _write_feature_maps(
        self,
        step: int,
        feature_maps: dict[str, fmaps.FeatureMapRecord],
        weights: dict[str, filters_mod.FilterRecord],
        orders: dict[str, int],
    ) -> None:
        if not feature_maps and not weights:
            return
        probe = self._probe
        store_images = bool(feature_maps) and probe is not None and self._images_changed(probe)
        self._enqueue(records.feature_maps, probe, feature_maps, weights, orders, store_images, step=step)

    def _images_changed(self, probe: Probe) -> bool:
        """True when the probe's images are not stored yet in this run (or changed since)."""
        fingerprint = probe.fingerprint()
        if self._stored_images.get(probe.name) == fingerprint:
            return False
        self._stored_images[probe.name] = fingerprint
        return True

    def _write_maps(
        self,
        step: int,
        probe: Probe,
        layer: str,
        record: MapRecord,
        *,
        auto_selected: bool,
        kind: int = metadata.RecordKind.CAM,
    ) -> None:
        store_images = self._images_changed(probe)
        self._enqueue(records.maps, probe, layer, record, auto_selected, kind, store_images, step=step)

    def unwatch(self, model: nn.Module | None = None) -> None:
        """Remove the hooks on `model` (on every watched model if None). Safe to call repeatedly."""
        keys = list(self._recorders) if model is None else [id(wrappers.unwrap(model))]
        for key in keys:
            recorder = self._recorders.pop(key, None)
            if recorder is not None:
                recorder.remove()

    @property
    def step(self) -> int | None:
        """The step of the next recorded forward of the most recently watched model (None if none)."""
        if not self._recorders:
            return None
        return next(reversed(self._recorders.values())).step

    @step.setter
    def step(self, value: int) -> None:
        value = _check_step(value)
        for recorder in self._recorders.values():
            recorder.step = value

    def flush(self) -> None:
        """Write every record made so far (Insight's queue first), then flush the event files to disk."""
        self._jobs.drain()
        super().flush()

    def close(self) -> None:
        """Remove every hook, write what is queued, then flush and close the event files."""
        self.unwatch()
        self._jobs.stop()
        if self._jobs.failures > 1:
            logger.warning(
                "Insight could not write %d records (the first error was logged)", self._jobs.failures
            )
        super().close()

    def _stats_recorder(self, model: nn.Module, build: Callable[..., Any]) -> hooks.RecordCallback:
        """The callback writing one step's statistics with `build`: float64 while the model computes in
        float64 (its statistics then carry digits float32 would drop), else as summary.compact_floats
        says. Checked at every record: a model may change dtype after watch()."""
        model_ref = weakref.ref(model)

        def record(step: int, infos: Sequence[LayerInfo], stats: HostArray) -> None:
            current = model_ref()
            float64 = current is not None and maps.model_dtype(current) == torch.float64
            self._enqueue(build, tuple(infos), stats, float64, step=step)

        return record

    def _extras_recorder(
        self, chosen: Sequence[tuple[int, str, nn.Module]], bins: int
    ) -> hooks.ExtrasCallback:
        bounded = {name: units_mod.output_bounds(module) is not None for _, name, module in chosen}

        def record(
            step: int, infos: Sequence[LayerInfo], extras: HostArray, layout: tuple[tuple[str, int], ...]
        ) -> None:
            self._enqueue(records.layer_extras, tuple(infos), extras, layout, bounded, bins, step=step)

        return record

    def _record_model_table(self, step: int, model: nn.Module, rows: list[dict[str, Any]]) -> None:
        document = model_table_mod.table_document(model, rows)
        self._enqueue(records.model_table, document, step=step)

    # --- writing: every Insight record goes through _enqueue ---------------------------------------

    def _enqueue(self, build_fn: Callable[..., Any], *args: Any, step: int) -> None:
        """Record one step's Summary off the training thread: THE way Insight writes.

        `build_fn(first_time, *args)` runs on the writer thread, in submission order, and returns the
        Summary (see `records.py`); `args` should be host numpy arrays or `transfer.HostArray`s whose
        copies were started with `transfer.start_host_copy` (never tensors still used by training).
        `first_time(tag)` says whether the tag needs its metadata. The wall time is taken now. A full
        queue blocks here (see `background.BackgroundJobs`); `flush()`/`close()` wait for the queue.
        """
        file_writer = self._get_file_writer()  # on this thread: torch creates it lazily, unlocked
        walltime = time.time()

        def job() -> None:
            built = build_fn(lambda tag: self._first_time(tag, file_writer), *args)
            file_writer.add_summary(built, global_step=step, walltime=walltime)

        self._jobs.submit(job)

    def _first_time(self, key: str, file_writer: object | None = None) -> bool:
        """True once per tag per event file: metadata is read from a tag's first value only.

        Called on the writer thread only (from builders), so it needs no lock."""
        if file_writer is None:
            file_writer = self._get_file_writer()
        if file_writer is not self._metadata_file_writer:
            self._metadata_file_writer = file_writer
            self._tags_with_metadata = set()
        if key in self._tags_with_metadata:
            return False
        self._tags_with_metadata.add(key)
        return True

    def _write(self, summary_proto: Any, step: int) -> None:
        """Write an already built Summary, in order with the queued records."""
        self._enqueue(records.prebuilt, summary_proto, step=step)


def _default_log_dir(comment: str) -> str:
    """SummaryWriter's default, runs/<date>_<host><comment>, chosen here when a rank subdirectory is added."""
    import socket
    from datetime import datetime

    return os.path.join(
        "runs", datetime.now().strftime("%b%d_%H-%M-%S") + "_" + socket.gethostname() + comment
    )


def _result(outcome: Any) -> Any:
    """A shared probe pass's result for one kind, or raise the exception that stopped that kind."""
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _check_step(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"step must be a non-negative int, got {value!r}")
    return int(value)
