"""What carries an InvokeEndpoint request and its answer between the runtime API and a transport.

The runtime API's ASGI routes and the protocol-level fast path (:mod:`~smlocal.emulator.fast_path`)
share one answering code; these are the pieces they exchange: how the body is read
(:data:`BodyReader`), the answer (:class:`InvokeAnswer`), a client gone mid-body
(:class:`ClientDisconnected`), and the oversize-body refusal in AWS's words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from smlocal.emulator.aws_errors import AwsError, validation_error

__all__ = [
    "TARGET_VARIANT",
    "BodyReader",
    "ClientDisconnected",
    "InvokeAnswer",
    "oversize_body",
]

TARGET_VARIANT = "x-amzn-sagemaker-target-variant"

# read(limit, request_id): the whole body, at most ``limit`` bytes.
BodyReader = Callable[[int, str], Awaitable[bytes]]


@dataclass(frozen=True)
class InvokeAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    # What runs once the answer is on its way (data capture's offer).
    after: Callable[[], None] | None = None

    def sent(self) -> None:
        if self.after is not None:
            self.after()


class ClientDisconnected(Exception):
    """The client went away before its request body was complete: nothing is to be done
    with the part that came (a truncated body is never forwarded), and nobody to answer."""


def oversize_body(request_id: str) -> AwsError:
    """The ValidationError for a body over the operation's limit (AWS's text)."""
    return validation_error(f"Request {request_id} has oversize body.")
