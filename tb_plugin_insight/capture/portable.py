"""Hooks that copies of a watched model leave behind: `copy.deepcopy`, pickle and `torch.save` work.

Hooks live in the module's hook dictionaries, so copying a watched model would copy them, and with them the
recorder and the writer behind them (thread locks, open files: "cannot pickle '_thread.lock' object").
A `PortableHook` is copied as an `InertHook` instead: the copy runs exactly like the original but is not
watched (it records nothing); watch it with its own `writer.watch(copy)`.
"""

from __future__ import annotations

from typing import Any, Callable


class InertHook:
    """What a copied hook becomes: does nothing, returns None (the output passes unchanged)."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return None


def _inert() -> InertHook:
    return InertHook()


class PortableHook:
    """Calls `fn`; pickled or deep-copied as an InertHook."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Callable[[], InertHook], tuple[()]]:
        return _inert, ()


def portable(fn: Callable[..., Any], *, eager: bool = False) -> PortableHook:
    """Wrap a hook. `eager=True` (for torch.compile'd models) keeps torch.compile from tracing into it:
    it runs as ordinary Python at a graph break, so its probe passes are not compiled frame by frame
    (about 1.5 us per call, which is why plain models do without)."""
    if eager:
        import torch

        fn = torch.compiler.disable(fn, recursive=True)
    return PortableHook(fn)
