"""The API port's HTTP connections: uvicorn's httptools protocol, answering in AWS's shape.

uvicorn answers what never reaches the app itself, in text/plain: a request its parser
refuses (``Invalid HTTP request received.``, 400). :func:`guarded_protocol` is the protocol
class given to ``uvicorn.Config(http=...)``; its answers are AWS's common error
``MalformedHttpRequestException`` (400) in the JSON shape botocore reads, on a closing
connection.
"""

from __future__ import annotations

import uuid

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from smlocal.emulator.aws_errors import AwsError

__all__ = ["aws_answer", "guarded_protocol"]

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 503: b"Service Unavailable"}


def aws_answer(error: AwsError) -> bytes:
    """A whole HTTP/1.1 answer carrying ``error``, on a connection that closes after it."""
    body = error.body()
    head = [
        b"HTTP/1.1 %d %s" % (error.status, _REASONS.get(error.status, b"Error")),
        *(f"{k}: {v}".encode() for k, v in error.headers(str(uuid.uuid4())).items()),
        b"content-length: %d" % len(body),
        b"connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class _AwsHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        error = AwsError(
            "MalformedHttpRequestException",
            f"There are problems with the request at the HTTP level: {msg}",
        )
        self.transport.write(aws_answer(error))
        self.transport.close()


def guarded_protocol() -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``."""
    return _AwsHttpToolsProtocol
