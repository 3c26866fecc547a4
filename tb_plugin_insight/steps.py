"""Where a watch's step numbers come from, and the warning when a watched model never runs.

`watch(step=...)`: None counts the model's training forwards (the default); a callable numbers each
counted forward with its return value; "manual" leaves the model's own forward unhooked and lets the
caller (the Lightning and HuggingFace integrations) mark each step with `begin_step`/`end_step`.

A watch whose model never runs a counted forward records nothing, and would say nothing: the writer checks
the steps the user logs scalars at (`NO_FORWARD_EVERYS` recording periods past the first one logged
during the watch, so a resumed run starting at step 5000 is judged from there) and warns once, naming
the likely cause.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

StepOption = Union[None, Callable[[], int], str]

MANUAL = "manual"

# Logged steps this many `every`s past the start of a watch that has not counted a forward: warn.
NO_FORWARD_EVERYS = 3


def check_step_option(step: Any) -> tuple[Optional[Callable[[], int]], bool]:
    """watch()'s `step` -> (step source or None, manual steps?).

    Raises:
        TypeError: `step` is neither None, a callable nor "manual".
    """
    if step is None:
        return None, False
    if step == MANUAL:
        return None, True
    if callable(step):
        return step, False
    raise TypeError(
        "step must be None (count the model's training forwards), a callable returning the current step"
        f" (e.g. lambda: trainer.global_step) or {MANUAL!r}; got {step!r}"
    )


def as_step(value: Any) -> Optional[int]:
    """A logged `global_step` as an int (None when it is not a number, e.g. not given)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def no_forward_due(logged_step: int, first_logged: int, every: int, counted: int) -> bool:
    """True when scalars logged from `first_logged` to `logged_step` show training has gone on for
    `NO_FORWARD_EVERYS` recording periods without one counted forward."""
    return not counted and logged_step >= first_logged + NO_FORWARD_EVERYS * every


def no_forward_message(model_type: str, logged_step: int, seen: int, mode: str) -> str:
    """The warning: what was seen, the likely cause, and the fix."""
    if seen:
        return (
            f"Insight has recorded nothing: scalars are logged at step {logged_step}, and the watched"
            f" {model_type} ran {seen} forward passes but none counted as a training step (mode={mode!r}:"
            " Insight counts forwards in training mode). Call model.train() before training, or watch with"
            " mode='all'."
        )
    return (
        f"Insight has recorded nothing: scalars are logged at step {logged_step}, but the forward of the"
        f" watched {model_type} has not run once. Most likely a wrapper calls a submodule instead (e.g. a"
        " LightningModule whose training_step calls self.net(x)). Use the trainer integration"
        " (tb_plugin_insight.integrations.lightning.InsightCallback), watch the module that runs"
        " (watch(model.net)), or mark the steps yourself: watch(model, step='manual') and"
        " handle.begin_step(n) / handle.end_step() around each training step."
    )
