"""Request parsing and the one error path of every route: JSON 400/404/405, never a 500 page."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection
from typing import Any

from tensorboard import errors as tb_errors
from tensorboard.backend import http_util
from werkzeug import Request, Response, wrappers

from tb_plugin_insight.plugin import encode

logger = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 4096
JSON = "application/json"


class InsightRequestError(Exception):
    """An error the user can fix: carries the HTTP status and a message naming the problem."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bad_request(message: str) -> InsightRequestError:
    return InsightRequestError(400, message)


def not_found(message: str) -> InsightRequestError:
    return InsightRequestError(404, message)


def unreadable(message: str) -> InsightRequestError:
    """The data exists but TensorBoard cannot deliver it (422: the message says why and what to do)."""
    return InsightRequestError(422, message)


def error_response(request: Request, code: int, message: str) -> Response:
    return http_util.Respond(request, {"error": {"code": code, "message": message}}, JSON, code=code)


def route(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap a route: GET/HEAD only, user errors to JSON, anything unexpected to a JSON 500 + log."""

    @functools.wraps(handler)
    def wrapped(self: Any, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return error_response(request, 405, f"method {request.method} not allowed; use GET")
        try:
            return handler(self, request)
        except InsightRequestError as err:
            return error_response(request, err.code, err.message)
        except tb_errors.PublicError as err:  # a data provider's user-facing error (bad run, not found...)
            if err.http_code < 500:
                return error_response(request, err.http_code, err.ui_message)
            logger.exception("Insight route %s failed", request.path)
            return error_response(request, 500, f"TensorBoard's data provider failed: {err.ui_message}")
        except Exception:  # noqa: BLE001 - the tab must get JSON, and the log the traceback
            logger.exception("Insight route %s failed", request.path)
            return error_response(request, 500, "internal error in the Insight plugin (see log)")

    # werkzeug's stub types application() for plain functions; a method's request comes second
    return wrappers.Request.application(wrapped)  # type: ignore[arg-type, return-value]


def get_param(
    request: Request, name: str, *, allowed: Collection[str] | None = None, required: bool = True
) -> str:
    """A single-valued query parameter; required ones must be present and non-empty ("" if optional
    and absent); `allowed` restricts it to a fixed set."""
    values = request.args.getlist(name)
    if not values:
        if not required:
            return ""
        raise bad_request(f"missing query parameter '{name}'")
    if len(values) > 1:
        raise bad_request(f"query parameter '{name}' given {len(values)} times; give it once")
    value = values[0]
    if not value and required:
        raise bad_request(f"query parameter '{name}' is empty")
    if len(value) > MAX_PARAM_LENGTH:
        raise bad_request(f"query parameter '{name}' is longer than {MAX_PARAM_LENGTH} characters")
    if allowed is not None and value not in allowed:
        raise bad_request(
            f"query parameter '{name}' must be one of {', '.join(sorted(allowed))}; got {value[:80]!r}"
        )
    return value


def get_list_param(request: Request, name: str, *, allowed: Collection[str]) -> list[str]:
    """An optional comma-separated list of names from `allowed` (empty list when absent), in order."""
    text = get_param(request, name, required=False)
    if not text:
        return []
    names = list(dict.fromkeys(text.split(",")))
    bad = [n for n in names if n not in allowed]
    if bad:
        raise bad_request(
            f"query parameter '{name}' has unknown entries {', '.join(repr(b[:40]) for b in bad[:3])};"
            f" allowed: {', '.join(allowed)}"
        )
    return names


def respond_json(request: Request, body: Any) -> Response:
    """`body` as JSON; dumped here (see encode.json_bytes), through TensorBoard's Cleanse only if it
    holds a non-finite float."""
    data = encode.json_bytes(body)
    return http_util.Respond(request, body if data is None else data, JSON)


def get_step(request: Request, name: str = "step") -> int:
    """A required non-negative integer step (TensorBoard steps are int64)."""
    text = get_param(request, name)
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > 2**63 - 1:
        raise bad_request(f"query parameter '{name}' must be a non-negative integer, got {text[:40]!r}")
    return int(text)


def get_positive_int(request: Request, name: str, *, limit: int = 1_000_000) -> int:
    """A required integer in 1..limit (page sizes, column counts)."""
    text = get_param(request, name)
    if not text.isascii() or not text.isdigit() or len(text) > 9 or not 1 <= int(text) <= limit:
        raise bad_request(f"query parameter '{name}' must be an integer from 1 to {limit}, got {text[:40]!r}")
    return int(text)


def get_positive_float(request: Request, name: str, *, limit: float = 1e9) -> float:
    """A required finite number in (0, limit] (thresholds)."""
    text = get_param(request, name)
    try:
        value = float(text) if len(text) <= 40 and text.isascii() else float("nan")
    except ValueError:
        value = float("nan")
    if not 0 < value <= limit:  # also rejects NaN
        raise bad_request(
            f"query parameter '{name}' must be a number above 0 and at most {limit:g}, got {text[:40]!r}"
        )
    return value
