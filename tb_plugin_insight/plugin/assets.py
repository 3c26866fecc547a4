"""Serves the committed frontend bundle from plugin/static (fixed file names only: no traversal)."""

from __future__ import annotations

import functools
import importlib.resources
import pathlib

_MIME = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}


def read_asset(name: str) -> tuple[bytes, str] | None:
    """Bytes and MIME type of a bundled file, or None if `name` is not a plain file name there."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        return None
    suffix = name[name.rfind(".") :] if "." in name else ""
    if suffix not in _MIME:
        return None
    path = pathlib.Path(str(importlib.resources.files("tb_plugin_insight.plugin") / "static" / name))
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _read_cached(path, mtime), _MIME[suffix]


@functools.lru_cache(maxsize=8)
def _read_cached(path: pathlib.Path, mtime_ns: int) -> bytes:
    """Keyed on the modification time, so a rebuilt bundle is served without restarting TensorBoard."""
    return path.read_bytes()
