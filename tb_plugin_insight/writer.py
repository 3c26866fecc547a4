"""InsightWriter: a SummaryWriter that can also watch a model's layers while it trains.

This is the facade users call. What is recorded lives in the recorders (tb_plugin_insight/recorders/, one
module per capability), put together for one model by `session.WatchSession`; options are checked in
`options.py` (grouped) and by each recorder (what needs the model). Every record is built and written on
the writer thread (`background.BackgroundJobs`) through `_enqueue`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from torch import nn
from torch.utils.tensorboard import SummaryWriter

from tb_plugin_insight import background, crc, logdirs, metadata, recorders, records, steps, validate
from tb_plugin_insight import ranks as ranks_mod
from tb_plugin_insight.capture import dist_grads, hooks, wrappers
from tb_plugin_insight.capture import layers as layer_selection
from tb_plugin_insight.capture import text_probe as text_probe_mod
from tb_plugin_insight.capture.hooks import Mode
from tb_plugin_insight.capture.layers import LayerSelector
from tb_plugin_insight.capture.probe import Probe
from tb_plugin_insight.capture.text_probe import TextProbe
from tb_plugin_insight.handle import WatchHandle, check_step
from tb_plugin_insight.options import CAM, FeatureMaps, Gradients, Histograms, Saliency
from tb_plugin_insight.recorders import WatchContext
from tb_plugin_insight.recorders import cams as cam_recorder
from tb_plugin_insight.recorders import saliency as saliency_recorder
from tb_plugin_insight.session import WatchSession
from tb_plugin_insight.sink import WriterSink

logger = logging.getLogger(__name__)

# watch()'s parameters that are not options of a recorder
_NOT_OPTIONS = frozenset(
    {
        "self",
        "model",
        "layers",
        "every",
        "mode",
        "probe",
        "class_names",
        "step",
        "more",
        "token_names",
        "tokenizer",
    }
)

__all__ = ["InsightWriter", "WatchHandle"]


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
            log_dir: SummaryWriter's: a folder, or a URL TensorBoard's file layer writes
                (`s3://bucket/runs/exp` with boto3, other schemes with fsspec; see the guide "Logdirs on
                object storage"). A scheme whose package is missing, or an S3 bucket's root, is refused here.
            ranks: "first" (default): in a distributed job only rank 0 writes; on the other ranks every
                method (Insight's and SummaryWriter's) is accepted and writes nothing, and `watch` keeps
                only what joins rank 0's cross-rank reductions (the gradient hooks; everything under FSDP2,
                whose forwards gather parameters): call `watch` and `close` on every rank. "all": every
                rank writes its own run, `<log_dir>/rank<r>` (without a log_dir:
                `runs/job_<torchrun's job id>/rank<r>`, the same directory on every rank).
            write_queue_size: how many recorded steps may wait for the writer thread before the training
                thread waits for it (default 64).
        """
        self.rank, world_size = ranks_mod.process_rank()
        self.writes = ranks_mod.check_mode(ranks) == "all" or self.rank == 0
        if log_dir is not None:
            logdirs.check_logdir(log_dir)  # before SummaryWriter starts its event writer on it
        if ranks == "all" and world_size > 1:
            comment = kwargs.get("comment", args[0] if args else "")
            shared = log_dir or ranks_mod.shared_log_dir(_default_log_dir(comment), comment)
            log_dir = logdirs.join(shared, f"rank{self.rank}")
        self._jobs = background.BackgroundJobs(write_queue_size)
        super().__init__(log_dir, *args, **kwargs)
        crc.install()
        self._recorders: dict[int, WatchSession] = {}  # id(model) -> its watch
        self._probe: Optional[Probe] = None
        self._text_probe: Optional[TextProbe] = None  # a text probe replaces the image probe, and back
        self._sink = WriterSink(
            self._jobs, self._get_file_writer, lambda: self._probe, lambda: self._text_probe
        )

    def _get_file_writer(self) -> Any:
        """torch's FileWriter, or on a rank that does not write (see `ranks`) one that keeps nothing."""
        if self.writes:
            return super()._get_file_writer()
        if self.all_writers is None or self.file_writer is None:
            # SummaryWriter annotates both attributes as None; torch assigns its own writers the same way
            self.file_writer = ranks_mod.NullFileWriter(self.log_dir)  # type: ignore[assignment]
            self.all_writers = {self.log_dir: self.file_writer}  # type: ignore[assignment]
        return self.file_writer

    def set_probe(
        self,
        images: Any,
        labels: Any = None,
        *,
        class_names: Optional[Sequence[str]] = None,
        display: Any = None,
        token_names: Optional[Sequence[Sequence[str]]] = None,
        tokenizer: Any = None,
    ) -> None:
        """Fix the probe batch that CAMs, saliency and feature maps show (stored once per run).

        Args:
            images: model inputs (N, C, H, W), as the model expects them (normalised). Or a text probe:
                a dict of model inputs with `input_ids` (its `labels` entry, if any, taken as the
                labels), or integer token ids (N, L); see docs/guides/text-probes.md.
            labels: optional true class per image (N,), shown under each image (text: the class, or for
                a language model the next token, per sequence).
            class_names: optional names of the classes, indexed by class.
            display: optional (N, H, W, 3) uint8 (or float 0..1) pictures to show instead of the inputs;
                by default each input is min-max stretched to 0..255.
            token_names: text probes: one list of L token strings per sequence, shown in the tab.
            tokenizer: text probes: anything with `convert_ids_to_tokens` (a HuggingFace tokenizer) to
                name the tokens and the predicted next tokens (instead of `token_names`).
        """
        made = text_probe_mod.make_any_probe(
            metadata.DEFAULT_PROBE, images, labels, class_names=class_names, display=display,
            token_names=token_names, tokenizer=tokenizer,
        )  # fmt: skip
        self._probe, self._text_probe = (None, made) if isinstance(made, TextProbe) else (made, None)

    def watch(
        self,
        model: nn.Module,
        layers: LayerSelector = None,
        every: int = 10,
        *,
        mode: Mode = "train",
        probe: Any = None,
        class_names: Optional[Sequence[str]] = None,
        token_names: Optional[Sequence[Sequence[str]]] = None,
        tokenizer: Any = None,
        step: steps.StepOption = None,
        cam_every: int = 100,
        cam_layer: Any = None,
        cam_methods: Union[Sequence[str], str] = ("gradcam",),
        cam_target: str = "predicted",
        grads: bool = True,
        grad_accumulation: int = 1,
        grad_scaler: Any = None,
        update_ratio: bool = True,
        saliency_every: Optional[int] = None,
        saliency_methods: Union[Sequence[str], str, None] = None,
        saliency_target: Optional[str] = None,
        saliency_options: Optional[dict[str, dict[str, Any]]] = None,
        saliency_max_side: Optional[int] = 64,
        histograms: Union[bool, Histograms] = True,
        histogram_bins: int = 32,
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
        cam: Optional[CAM] = None,
        saliency: Optional[Saliency] = None,
        feature_maps: Optional[FeatureMaps] = None,
        gradients: Optional[Gradients] = None,
        **more: Any,
    ) -> WatchHandle:
        """Record `model`'s layers every `every` steps: activation statistics, histograms, dead units and
        gradient flow from the training steps, and with a probe batch CAMs, saliency and feature maps.

        Steps: Insight counts the model's forward passes in training mode (`model.train()`), from 0. In
        the usual loop (one training forward per step, `global_step` counting from 0) its steps are the
        `global_step`s you pass to `add_scalar`; eval passes are not counted. Set `writer.step = n` (or
        `handle.step = n`) to align it with any other counter, or give `step=`. Scalars logged while the
        model has not run a counted forward get one warning with the likely cause and the fix.

        Args:
            model: the module to watch (DDP, DataParallel and torch.compile wrappers are unwrapped).
                Watching it again replaces the earlier watch.
            layers: None for modules with parameters plus activation modules; a list of qualified names
                (as in `model.named_modules()`); or a predicate `(name, module) -> bool`.
            every: record the steps divisible by `every` (1 records every step).
            mode: which forwards count as steps: "train" (default), "eval", or "all".
            probe: a fixed batch to explain: images (N, C, H, W) or (images, labels), as `set_probe`;
                without it a probe set earlier with `set_probe` is used, if any. A text probe (a dict of
                model inputs with `input_ids` and `labels`, `(inputs_dict, labels)`, or `(token_ids,
                labels)`) gets token saliency (`token_saliency_*`, `TokenSaliency`) instead of maps.
            class_names: names of the classes, shown in the tab.
            token_names, tokenizer: the tokens of a text probe, as `set_probe`.
            step: None (default): the counter above. A callable (`lambda: global_step`): each counted
                forward is step `step()`, a repeated number recorded once. "manual": the model's own
                forward is not hooked; mark steps with the handle's `begin_step(n)`, `gradients_ready()`
                and `end_step()` (as the Lightning and HuggingFace integrations do).
            cam, saliency, feature_maps, gradients: grouped options (`CAM`, `Saliency`, `FeatureMaps`,
                `Gradients`); `histograms` takes a bool or `Histograms`. Every other keyword is the flat
                twin of a grouped field, documented there: `cam_*` of `CAM`, `saliency_*` of `Saliency`,
                `maps_*` and `filters_layers` of `FeatureMaps`, `grads`, `grad_*` and `update_ratio` of
                `Gradients`, `histogram_*` of `Histograms`. A flat keyword and its grouped twin given with
                different values is an error.
            units: record the fraction of dead (and, for bounded modules, saturated) channels at the
                statistics steps (rules in `tb_plugin_insight.capture.units`).
            model_table: record once one row per module (type, output shape, parameters, depth, watched).
            **more: options of further capabilities (their recorders declare them; an unknown keyword is
                a TypeError naming the closest ones), e.g. `health=True` and `massive_ratio=100.0`:
                massive activations of token layers at the statistics steps (`recorders.health`,
                docs/guides/transformer-health.md).

        Returns:
            A WatchHandle with the watched layer names, the step counter, the CAM layer and `remove()`.

        Raises:
            ValueError: unknown layer names (with close matches), no layer selected, bad options (each
                message names the option and the fix).
            TypeError: `model` is not an nn.Module, or an option has the wrong type.
        """
        keywords = {k: v for k, v in locals().items() if k not in _NOT_OPTIONS}
        keywords.update(more)
        text = {"token_names": token_names, "tokenizer": tokenizer}
        return self._watch(model, layers, every, mode, probe, class_names, keywords, step, text)

    def _watch(
        self,
        model: nn.Module,
        layers: LayerSelector,
        every: int,
        mode: Mode,
        probe: Any,
        class_names: Optional[Sequence[str]],
        keywords: dict[str, Any],
        step: steps.StepOption,
        text: Optional[dict[str, Any]] = None,
    ) -> WatchHandle:
        if not isinstance(model, nn.Module):
            raise TypeError(f"watch() needs an nn.Module, got {type(model).__name__}")
        step_source, manual = steps.check_step_option(step)
        compiled = bool(wrappers.compile_contexts(model))
        recordable = wrappers.recordable(model)  # warns when it is not
        model = wrappers.unwrap(model)  # DDP, DataParallel, torch.compile: names without their prefix
        validate.int_option(every, f"every must be a positive int (1 = every step), got {every!r}")
        if mode not in hooks.MODES:
            raise ValueError(f"mode must be one of {', '.join(hooks.MODES)}; got {mode!r}")
        chosen = layer_selection.select_layers(model, layers)
        text = text or {}
        if probe is not None:
            images, labels = text_probe_mod.split_any_probe(probe)
            self.set_probe(images, labels, class_names=class_names, **text)
        else:
            text_probe_mod.check_without_probe(**text)
            for current in (self._probe, self._text_probe):
                if class_names is not None and current is not None:
                    current.class_names = tuple(str(n) for n in class_names)
        resolved = recorders.resolve_options(keywords)
        ctx = WatchContext(model, chosen, layers is not None, every, resolved, self._sink, self._probe)
        ctx.text_probe = self._text_probe
        # a rank that does not write keeps what joins the writing rank's collectives (see `ranks`)
        across = bool(getattr(resolved.get("gradients"), "across_ranks", False))
        only = None if self.writes else dist_grads.kept_on_silent_rank(model, across)
        session = WatchSession.build(ctx, only)
        self.unwatch(model)
        session.attach(
            model, chosen, every=every, mode=mode, compiled=compiled, step_source=step_source, manual=manual
        )
        if only == () or not recordable or not session.recorders:
            session.remove()  # a rank that does not write records nothing (see `ranks`)
        else:
            self._recorders[id(model)] = session
        return WatchHandle(self, model, session)

    def add_cam(
        self,
        tag: str,
        model: nn.Module,
        inputs: Any,
        target_layer: Any = None,
        method: Union[Sequence[str], str] = "gradcam",
        targets: Any = None,
        global_step: Optional[int] = None,
        *,
        labels: Any = None,
        class_names: Optional[Sequence[str]] = None,
        reshape_transform: Any = None,
        layout: Optional[str] = None,
    ) -> None:
        """Log CAMs of `inputs` once, under `tag` (shown in the tab's CAM view as probe `tag`).

        Args:
            tag: the name of this batch of images in the tab.
            model, inputs, target_layer, targets, reshape_transform, layout: as
                `tb_plugin_insight.cam.compute_cam`; target_layer None picks the layer as watch() does.
            method: a method name or a list of them (they share one pass).
            global_step: the step to record at (default: the watched model's current step, else 0).
            labels, class_names: optional true labels and class names shown under the images.
        """
        step = self._one_off_step(tag, global_step)
        if self.writes:
            cam_recorder.write_once(
                self._sink, step, tag, wrappers.unwrap(model), inputs, target_layer, method, targets,
                labels=labels, class_names=class_names, reshape_transform=reshape_transform, layout=layout,
            )  # fmt: skip

    def add_saliency(
        self,
        tag: str,
        model: nn.Module,
        inputs: Any,
        method: Union[Sequence[str], str] = "gradient",
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
        step = self._one_off_step(tag, global_step)
        if self.writes:
            saliency_recorder.write_once(
                self._sink, step, tag, wrappers.unwrap(model), inputs, method, targets,
                labels=labels, class_names=class_names, options=options,
            )  # fmt: skip

    def _one_off_step(self, tag: Any, global_step: Optional[int]) -> int:
        if not isinstance(tag, str) or not tag or "/" in tag:
            raise ValueError(f"tag must be a non-empty string without '/', got {tag!r}")
        return check_step(global_step if global_step is not None else (self.step or 0))

    def unwatch(self, model: nn.Module | None = None) -> None:
        """Remove the hooks on `model` (on every watched model if None). Safe to call repeatedly."""
        keys = list(self._recorders) if model is None else [id(wrappers.unwrap(model))]
        for key in keys:
            session = self._recorders.pop(key, None)
            if session is not None:
                session.remove()

    @property
    def step(self) -> int | None:
        """The step of the next recorded forward of the most recently watched model (None if none)."""
        if not self._recorders:
            return None
        return next(reversed(self._recorders.values())).step

    @step.setter
    def step(self, value: int) -> None:
        value = check_step(value)
        for session in self._recorders.values():
            session.step = value

    def _note_logged_step(self, global_step: Any) -> None:
        """A native add_* call at `global_step`: the watches check they have seen training (steps.py)."""
        for session in self._recorders.values():
            session.check_logged_step(global_step)

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

    def _enqueue(self, build_fn: Callable[..., Any], *args: Any, step: int) -> None:
        """Queue one record builder for the writer thread (see `sink.WriterSink.enqueue`)."""
        self._sink.enqueue(build_fn, *args, step=step)

    def _write(self, summary_proto: Any, step: int) -> None:
        """Write an already built Summary, in order with the queued records."""
        self._sink.enqueue(records.prebuilt, summary_proto, step=step)


def _noting_step(name: str) -> Callable[..., Any]:
    """SummaryWriter's `name(tag, value, global_step, ...)`, first noting the step (`_note_logged_step`)."""
    native = getattr(SummaryWriter, name)
    signature = inspect.signature(native)

    @functools.wraps(native)
    def method(self: InsightWriter, *args: Any, **kwargs: Any) -> Any:
        if self._recorders:  # keyword or positional, as SummaryWriter takes it
            try:
                global_step = signature.bind(self, *args, **kwargs).arguments.get("global_step")
            except TypeError:
                global_step = None  # SummaryWriter raises its own error below
            self._note_logged_step(global_step)
        return native(self, *args, **kwargs)

    return method


for _name in ("add_scalar", "add_scalars", "add_histogram", "add_image"):
    setattr(InsightWriter, _name, _noting_step(_name))


def _default_log_dir(comment: str) -> str:
    """SummaryWriter's default, runs/<date>_<host><comment>, chosen here when a rank subdirectory is added."""
    import socket
    from datetime import datetime

    return os.path.join(
        "runs", datetime.now().strftime("%b%d_%H-%M-%S") + "_" + socket.gethostname() + comment
    )
