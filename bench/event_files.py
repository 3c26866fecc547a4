"""Sizes of what a benchmark's writers wrote."""

from __future__ import annotations

from pathlib import Path


def event_bytes(logdir: Path) -> int:
    """Bytes of the event files under `logdir` (every run below it)."""
    return sum(p.stat().st_size for p in logdir.rglob("events.out.tfevents.*"))
