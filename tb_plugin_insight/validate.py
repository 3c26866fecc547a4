"""Option checks shared by every capability: one place that says what a valid int or flag is.

Each check takes the message to raise, so every option keeps an error that names it and its fix.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional


def is_int(value: Any, low: Optional[int] = None, high: Optional[int] = None) -> bool:
    """True for an integer (numpy's too, never a bool) within [low, high] (either bound may be None)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return False
    number = int(value)
    return (low is None or number >= low) and (high is None or number <= high)


def int_option(value: Any, message: str, *, low: Optional[int] = 1, high: Optional[int] = None) -> int:
    """`value` as an int within [low, high] (default: positive).

    Raises:
        ValueError: `message`, when it is not.
    """
    if not is_int(value, low, high):
        raise ValueError(message)
    return int(value)


def flag_option(name: str, value: Any) -> bool:
    """`value`, which must be True or False.

    Raises:
        TypeError: naming the option `name`.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def choice_option(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """`value`, which must be one of `choices`.

    Raises:
        ValueError: naming the option `name` and the choices.
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value
