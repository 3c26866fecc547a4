"""Text-probe records: numpy and JSON in, `Summary` protos out (writer thread), and their decoding (plugin).

No torch here: the plugin decodes the stored token saliency with `decode_saliency`.

PROBE_TOKENS, tag `insight/probe_tokens/<probe>`, BLOB_SEQUENCE: one UTF-8 JSON document per token
saliency step: {"predicted": [id per sequence], "probability": [...], "predictedNames": [token string
or class name], "targets": [the class / next token explained], "positions": [explained position] or
null}, plus, at the first step and whenever the probe's sequences change, {"tokens": [[str]], "ids":
[[int]], "mask": [[0|1]], "labels": [int] or null, "labelNames": [str] or null}. The sequences in
effect at a step are those of the latest document at or before it that has "tokens".

TOKEN_SALIENCY, tag `insight/token_saliency/<probe>/<method>`, BLOB_SEQUENCE: one blob per step: N
little-endian float32 scales (each sequence's largest |value|), then N x L int8 codes, row-major; a
token's value is code / 127 * its sequence's scale (within scale / 254 of the computed value; padding 0).
N and L are the metadata's `num_images` and `width`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
from tensorboard.compat.proto import summary_pb2
from tensorboard.util import tensor_util

from tb_plugin_insight import metadata

CODE_MAX = 127
PROBE_TOKENS = metadata.RecordKind.PROBE_TOKENS
TOKEN_SALIENCY = metadata.RecordKind.TOKEN_SALIENCY


def quantize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) float32 scales (max |v| per row) and (N, L) int8 codes round(v / scale * 127)."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    scales = np.abs(values).max(axis=1) if values.size else np.zeros(len(values))
    safe = np.where(scales > 0, scales, 1.0)
    codes = np.clip(np.rint(values / safe[:, None] * CODE_MAX), -CODE_MAX, CODE_MAX).astype(np.int8)
    return scales.astype(np.float32), codes


def encode_saliency(scales: np.ndarray, codes: np.ndarray) -> bytes:
    return np.asarray(scales, "<f4").tobytes() + np.ascontiguousarray(codes, np.int8).tobytes()


def decode_saliency(blob: bytes, n: int, length: int) -> np.ndarray:
    """The (N, L) float32 values of one stored step.

    Raises:
        ValueError: a blob whose size is not 4 N + N L bytes.
    """
    if len(blob) != n * 4 + n * length:
        raise ValueError(f"a token saliency record of {len(blob)} bytes does not hold {n} x {length} tokens")
    scales = np.frombuffer(blob[: n * 4], "<f4").astype(np.float32)
    codes = np.frombuffer(blob[n * 4 :], np.int8).reshape(n, length).astype(np.float32)
    return codes / CODE_MAX * scales[:, None]


def _blob_value(tag: str, blob: bytes) -> summary_pb2.Summary.Value:
    return summary_pb2.Summary.Value(
        tag=tag, tensor=tensor_util.make_tensor_proto(np.array([blob], dtype=object))
    )


def build(
    first_time: Callable[[str], bool],
    probe: str,
    document: Mapping[str, Any],
    saliency: Mapping[str, np.ndarray],
    info: Mapping[str, Any],
) -> summary_pb2.Summary:
    """One step of a text probe: its PROBE_TOKENS document and one TOKEN_SALIENCY value per method.

    `info`: num_images, width, class_names, token_task, token_target, embedding_layer, token_steps,
    token_baseline (metadata, written with each tag's first value)."""
    values = []
    tag = metadata.tag_for(PROBE_TOKENS, probe=probe)
    value = _blob_value(tag, json.dumps(document, separators=(",", ":")).encode("utf-8"))
    if first_time(tag):
        value.metadata.CopyFrom(
            metadata.create_summary_metadata(
                PROBE_TOKENS,
                "",
                data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
                probe=probe,
                num_images=int(info["num_images"]),
                width=int(info["width"]),
                class_names=list(info.get("class_names", ())),
                token_task=str(info["token_task"]),
            )
        )
    values.append(value)
    for method, array in saliency.items():
        tag = metadata.tag_for(TOKEN_SALIENCY, method=method, probe=probe)
        value = _blob_value(tag, encode_saliency(*quantize(array)))
        if first_time(tag):
            value.metadata.CopyFrom(
                metadata.create_summary_metadata(
                    TOKEN_SALIENCY,
                    "",
                    data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
                    probe=probe,
                    method=method,
                    num_images=int(info["num_images"]),
                    width=int(info["width"]),
                    token_task=str(info["token_task"]),
                    token_target=str(info["token_target"]),
                    embedding_layer=str(info["embedding_layer"]),
                    token_steps=int(info["token_steps"]) if method == "integrated_gradients" else 0,
                    token_baseline=str(info["token_baseline"]) if method == "integrated_gradients" else "",
                )
            )
        values.append(value)
    return summary_pb2.Summary(value=values)
