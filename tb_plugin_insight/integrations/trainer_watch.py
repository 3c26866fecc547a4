"""What the trainer callbacks share: their options checked up front, and one manual-step watch of the
trainer's model with the writer it records into (made on the process that writes, rank 0)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, Optional

from torch import nn

from tb_plugin_insight import recorders, validate
from tb_plugin_insight.options import Gradients
from tb_plugin_insight.writer import InsightWriter

logger = logging.getLogger(__name__)

# watch() keywords a callback sets itself, and why
_SET_BY_TRAINER = {
    "step": "steps are the trainer's global step",
    "mode": "the trainer marks its training steps",
    "grad_accumulation": "the trainer's optimizer steps are the steps, its accumulation is read from it",
}
# watch()'s keywords that are not recorder options
_WATCH_ARGS = ("layers", "every", "probe", "class_names", "token_names", "tokenizer")


def check_options(callback: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """watch()'s options for `callback`, checked now (not at the start of training).

    Raises:
        TypeError: an unknown option or one the trainer sets (see `_SET_BY_TRAINER`).
        ValueError: a bad option value (as watch()).
    """
    for name, why in _SET_BY_TRAINER.items():
        if name in options:
            raise TypeError(f"{callback} sets {name!r} itself ({why}); leave it out")
    grouped = options.get("gradients")
    if getattr(grouped, "accumulation", 1) != 1:
        raise TypeError(
            f"{callback} sets Gradients.accumulation itself ({_SET_BY_TRAINER['grad_accumulation']})"
        )
    every = options.get("every", 10)
    validate.int_option(every, f"every must be a positive int (1 = every step), got {every!r}")
    recorders.resolve_options({k: v for k, v in options.items() if k not in _WATCH_ARGS})
    return dict(options)


class TrainerWatch:
    """A manual-step watch of `model` into `writer`; `close()` removes it (and closes a writer it owns)."""

    def __init__(
        self,
        writer: InsightWriter,
        model: nn.Module,
        options: Mapping[str, Any],
        *,
        scaler: Any = None,
        owns_writer: bool = True,
    ) -> None:
        options = dict(options)
        if scaler is not None and "gradients" not in options and "grad_scaler" not in options:
            options["grad_scaler"] = scaler  # output gradients are read in the backward: still scaled
        self.writer = writer
        self.owns_writer = owns_writer
        # only rank 0 watches: a cross-rank reduction would wait forever for the others
        group = options.get("gradients")
        if isinstance(group, Gradients):
            options["gradients"] = dataclasses.replace(group, across_ranks=False)
        else:
            options["grad_across_ranks"] = False
        self.handle = writer.watch(model, step="manual", **options)

    def begin(self, step: int) -> None:
        self.handle.begin_step(step)

    def gradients_ready(self) -> None:
        self.handle.gradients_ready()

    def end(self) -> None:
        self.handle.end_step()

    def close(self) -> None:
        """Remove the hooks (a record whose backward happened is written), flush or close the writer."""
        self.handle.end_step()
        self.handle.remove()
        if self.owns_writer:
            self.writer.close()
        else:
            self.writer.flush()


def close(watch: Optional[TrainerWatch]) -> None:
    """Close `watch` if there is one; a failure is logged, never raised (training has ended anyway)."""
    if watch is None:
        return
    try:
        watch.close()
    except Exception:  # noqa: BLE001 - ending the watch must not hide the trainer's own outcome
        logger.exception("Insight could not close its watch cleanly")
