"""Classify a failed invocation into the kind of error a load-test report counts.

Kinds (the ``Error`` column of Locust's ``failures.csv`` holds exactly these strings, so
counts by kind come straight from Locust's own statistics):

``ModelError(NNN)``      the container answered NNN (SageMaker's 424 with ``OriginalStatusCode``)
``ValidationError``      the request was refused before the container (400)
``Throttling``           ``ThrottlingException``, ``ModelNotReadyException`` or a bare 429
``ConnectionError``      no HTTP answer at all (refused, reset, timed out)
``<ErrorType>(NNN)``     any other AWS error type (``x-amzn-errortype``) or plain status NNN

With ``--direct`` there is no runtime API to wrap a container's answer: any non-2xx status
NNN the container gives is ``ModelError(NNN)``, what SageMaker would report for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = ["CONNECTION_ERROR", "InvocationFailure", "classify", "parse_kind"]

CONNECTION_ERROR = "ConnectionError"
_THROTTLING = {"ThrottlingException", "ModelNotReadyException"}


class InvocationFailure(Exception):
    """Handed to Locust as the failure; its repr is the kind, which Locust uses as the key."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind

    def __repr__(self) -> str:
        return self.kind


def _error_type(headers: Mapping[str, str], body: bytes) -> str:
    # botocore reads the code from x-amzn-errortype first, then __type/code in the body.
    header = next((v for k, v in headers.items() if k.lower() == "x-amzn-errortype"), "")
    if header:
        return header.split(":", 1)[0]
    try:
        parsed = json.loads(body)
    except ValueError:
        return ""
    if isinstance(parsed, dict):
        raw = parsed.get("__type") or parsed.get("code") or ""
        return str(raw).rsplit("#", 1)[-1]
    return ""


def _original_status(body: bytes) -> int | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    value = parsed.get("OriginalStatusCode") if isinstance(parsed, dict) else None
    return value if isinstance(value, int) else None


def classify(
    status: int, headers: Mapping[str, str], body: bytes, *, direct: bool = False
) -> str | None:
    """The error kind of one response, or None for a success (2xx). ``direct``: the answer
    came from the container itself (``--direct``), not through a runtime API."""
    if status == 0:
        return CONNECTION_ERROR
    if 200 <= status < 300:
        return None
    if direct:
        return f"ModelError({status})"
    error_type = _error_type(headers, body)
    if error_type == "ModelError":
        original = _original_status(body)
        return f"ModelError({original})" if original is not None else "ModelError"
    if error_type in _THROTTLING or (not error_type and status == 429):
        return "Throttling"
    if error_type == "ValidationError":
        return "ValidationError"
    return f"{error_type or 'HTTP'}({status})"


def parse_kind(locust_error: str) -> str:
    """The kind inside a ``failures.csv`` Error cell (Locust may wrap foreign exceptions)."""
    text = locust_error.strip()
    for prefix in ("CatchResponseError(", "InvocationFailure("):
        if text.startswith(prefix) and text.endswith(")"):
            text = text[len(prefix) : -1].strip("'\"")
    return text
