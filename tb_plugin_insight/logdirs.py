"""Log directory paths, local or remote (`s3://`, `gs://`, ...), handled through TensorBoard's file layer.

TensorBoard's event writer and loaders read and write through `tensorboard.compat.tf.io.gfile`: TensorFlow's
gfile when TensorFlow is installed, else TensorBoard's own stub, which serves `s3://` through boto3
(`S3_ENDPOINT` for an S3-compatible server) and every other scheme through fsspec. Insight keeps to that
layer for every path it builds or checks, so a logdir works wherever TensorBoard's does: URLs are joined
with "/" (never `os.path.join`, which would use "\\" on Windows), and a logdir the layer cannot handle
(a scheme whose package is missing, an S3 bucket's root) fails at once saying what to do, rather than
deep inside the event writer's thread.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

__all__ = ["check_logdir", "gfile", "isdir", "join", "scheme"]

# What each scheme needs when TensorFlow is not installed (TensorBoard's gfile stub).
_PACKAGES = {
    "s3": "boto3 (pip install 'tb-plugin-insight[s3]'; S3_ENDPOINT names an S3-compatible server)",
    "gs": "fsspec and gcsfs (pip install 'tb-plugin-insight[fsspec]' gcsfs)",
    "gcs": "fsspec and gcsfs (pip install 'tb-plugin-insight[fsspec]' gcsfs)",
    "az": "fsspec and adlfs (pip install 'tb-plugin-insight[fsspec]' adlfs)",
    "abfs": "fsspec and adlfs (pip install 'tb-plugin-insight[fsspec]' adlfs)",
}


def gfile() -> Any:
    """The gfile module TensorBoard itself uses (TensorFlow's, else TensorBoard's stub)."""
    from tensorboard.compat import tf

    return tf.io.gfile


def scheme(path: str | os.PathLike[str]) -> str:
    """The URL scheme of `path` ("s3" for "s3://bucket/runs"), "" for a local path."""
    text = os.fspath(path)
    index = text.find("://")
    return text[:index] if index > 0 else ""


def join(base: str | os.PathLike[str], *parts: str) -> str:
    """`base/part/...`: "/"-joined for a URL, `os.path.join` for a local path."""
    text = os.fspath(base)
    if not scheme(text):
        return os.path.join(text, *parts)
    return posixpath.join(text.rstrip("/") if not text.endswith("://") else text, *parts)


def check_logdir(path: str | os.PathLike[str]) -> None:
    """Raise, naming the fix, when TensorBoard's file layer cannot handle `path`: its scheme's package is
    missing (ImportError), or it is an S3 bucket's root, which the layer cannot list (ValueError).

    Local paths always pass. Makes no request to the storage: only whether a filesystem is available."""
    text = os.fspath(path)
    name = scheme(text)
    if not name:
        return
    layer = gfile()
    get_filesystem = getattr(layer, "get_filesystem", None)
    if get_filesystem is None:
        return  # TensorFlow's gfile: its own filesystems (and errors) apply
    try:
        filesystem = get_filesystem(text)
    except (ImportError, ValueError) as err:
        needs = _PACKAGES.get(name, f"fsspec and an fsspec filesystem for {name}:// (pip install fsspec ...)")
        raise ImportError(
            f"log directory {text!r}: TensorBoard's file layer cannot handle {name}:// paths here ({err}); "
            f"it needs {needs}"
        ) from err
    bucket_root = "/" not in text[len(name) + 3 :].strip("/")  # s3://bucket or s3://bucket/
    if bucket_root and type(filesystem).__name__ == "S3FileSystem":  # the boto3 layer, not fsspec's s3fs
        raise ValueError(
            f"log directory {text!r} is a bucket's root, where TensorBoard's S3 layer can neither write nor"
            f" list runs; use a folder of the bucket, e.g. {text.rstrip('/')}/runs"
        )


def isdir(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a directory (for object storage: whether anything lies under that prefix)."""
    check_logdir(path)
    return bool(gfile().isdir(os.fspath(path)))
