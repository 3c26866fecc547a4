"""HuggingFace `transformers.Trainer`: `InsightCallback`, the Insight tab in the run that
`report_to=["tensorboard"]` writes, at the same step numbers.

    trainer = Trainer(model, args, train_dataset=data, callbacks=[InsightCallback(every=10)])

The run folder is the one the Trainer's `TensorBoardCallback` uses (`TENSORBOARD_LOGGING_DIR`, else
`<output_dir>/runs/<date>_<host>`; `TrainingArguments.logging_dir` in transformers 4). When the callback is
given to the Trainer's constructor, Insight's writer *is* that callback's writer (handed over before it
makes its own, as `TensorBoardCallback(tb_writer=...)` allows): one writer and one event file per run.
Added later with `trainer.add_callback`, it writes its own event file into the same folder; TensorBoard
reads every event file of a run folder as one run.

Steps: the Trainer logs a step's scalars at `state.global_step` after the optimizer step (1, 2, ...), so
the training step that starts at global step g is recorded as g + 1. With gradient accumulation its first
micro-batch is recorded. Gradients are read in `on_pre_optimizer_step`: accumulated, unscaled under AMP,
and after `max_grad_norm` clipping (the Trainer clips before that hook). Only the world process zero
records and writes. Needs `transformers` (`pip install tb-plugin-insight[transformers]`).
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Optional

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.integrations import TensorBoardCallback

from tb_plugin_insight import logdirs
from tb_plugin_insight.integrations import trainer_watch
from tb_plugin_insight.integrations.trainer_watch import TrainerWatch
from tb_plugin_insight.writer import InsightWriter

__all__ = ["InsightCallback", "run_folder"]


class InsightCallback(TrainerCallback):
    """Watch the Trainer's model during `train()` and write the Insight tab into its TensorBoard run.

    Example:
        >>> args = TrainingArguments("out", report_to=["tensorboard"], logging_steps=10)
        >>> trainer = Trainer(model, args, train_dataset=data, callbacks=[InsightCallback(every=10)])
        >>> trainer.train()
    """

    def __init__(self, *, log_dir: Optional[str] = None, **options: Any) -> None:
        """
        Args:
            log_dir: the run folder to write into; default: the TensorBoard callback's (module doc).
            **options: `InsightWriter.watch`'s options (`layers`, `every`, `probe`, `cam=...`, ...),
                except `step`, `mode` and `grad_accumulation`, which the Trainer decides.

        Raises:
            TypeError / ValueError: an unknown or bad option (checked here, not at the start of training).
        """
        self.log_dir = log_dir
        self.options = trainer_watch.check_options("InsightCallback", options)
        self.watch: Optional[TrainerWatch] = None
        self._shared: Optional[InsightWriter] = None  # handed to the Trainer's TensorBoardCallback

    def on_init_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Hand an InsightWriter to the Trainer's TensorBoardCallback before it makes its own writer."""
        tensorboard = _tensorboard_callback(self)
        if self.log_dir is not None or not state.is_world_process_zero or tensorboard is None:
            return
        if isinstance(tensorboard.tb_writer, InsightWriter):
            self._shared = tensorboard.tb_writer  # the user's own, handed over already
        elif tensorboard.tb_writer is None:
            tensorboard.logging_dir = getattr(tensorboard, "logging_dir", None) or run_folder(args)
            self._shared = tensorboard.tb_writer = InsightWriter(tensorboard.logging_dir)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.close()
        if not state.is_world_process_zero:
            return
        shared = self._shared
        self._shared = None  # a later train() makes its own writer: the TensorBoardCallback closes this one
        if shared is not None and shared.all_writers is not None:
            writer, owns = shared, False  # the TensorBoardCallback closes it at the end of training
        else:
            tensorboard = _tensorboard_callback(self)
            folder = self.log_dir or getattr(tensorboard, "logging_dir", None) or run_folder(args)
            writer, owns = InsightWriter(folder), True
        self.watch = TrainerWatch(writer, kwargs["model"], self.options, owns_writer=owns)

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.watch is not None:
            self.watch.begin(state.global_step + 1)  # the step the Trainer logs this step's scalars at

    def on_substep_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.watch is not None:
            self.watch.end()  # the first micro-batch's forward and backward have run

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.watch is not None:
            self.watch.gradients_ready()
            self.watch.end()

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.close()

    def close(self) -> None:
        """Remove the hooks and close the writer now. `on_train_end` does it; the Trainer has no hook for a
        training that raised, so call this after one (idempotent)."""
        watch, self.watch = self.watch, None
        trainer_watch.close(watch)


def run_folder(args: TrainingArguments) -> str:
    """The folder the Trainer's TensorBoardCallback writes into when it makes its own writer:
    `TrainingArguments.logging_dir` in transformers 4; in transformers 5 (which has no such argument)
    `TENSORBOARD_LOGGING_DIR`, else `<output_dir>/runs/<date>_<host>`."""
    folder = getattr(args, "logging_dir", None) or os.getenv("TENSORBOARD_LOGGING_DIR")
    if folder:
        return os.path.expanduser(folder)
    from transformers.integrations.integration_utils import default_logdir

    return logdirs.join(args.output_dir or ".", default_logdir())  # may be a URL (s3://...)


def _tensorboard_callback(callback: TrainerCallback) -> Optional[TensorBoardCallback]:
    """The Trainer's TensorBoardCallback, if any. Callbacks are not given the Trainer or its other
    callbacks, so this looks in the calling `CallbackHandler.call_event` frame for the list that holds
    `callback`; None when it is not found there."""
    frame = inspect.currentframe()
    try:
        for _ in range(4):
            frame = frame.f_back if frame is not None else None
            if frame is None:
                return None
            callbacks = getattr(frame.f_locals.get("self"), "callbacks", None)
            if isinstance(callbacks, list) and any(c is callback for c in callbacks):
                found = [c for c in callbacks if isinstance(c, TensorBoardCallback)]
                return found[0] if found else None
        return None
    finally:
        del frame
