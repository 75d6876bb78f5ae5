"""The API port's HTTP connections: bounded in time, size and number, answering in AWS's shape.

uvicorn's httptools protocol has a keep-alive timeout (``timeout_keep_alive``, used) but no
read timeouts, no header-size cap, and its ``limit_concurrency`` answers text/plain. So
:func:`guarded_protocol` gives ``uvicorn.Config(http=...)`` a subclass that adds, per
connection (:class:`HttpLimits`):

- a **header timeout**: from the connect, or the first byte of a request, until its header
  block is complete. A request begun and not finished in time gets ``RequestTimeoutException``
  (408); a connection that never sent a byte is closed silently (like an idle keep-alive one).
- a **header-size cap**: a header block (request line included) over ``max_header_bytes`` gets
  ``MalformedHttpRequestException`` (400) before more of it is buffered.
- a **body timeout**: a body that stops arriving for ``body_timeout_s`` (while the app waits
  for it) ends the connection, so the app sees a disconnect and forwards nothing.
- a **connection limit**: a connection accepted while ``max_connections`` are open is
  answered ``ServiceUnavailable`` (503) and closed, and it gets at most
  :data:`OVER_LIMIT_GRACE_S` to send its request: the ones already open keep being served.

Every answer it writes itself is an AWS error in the JSON shape botocore reads, on a closing
connection; so are the parser's refusals (``MalformedHttpRequestException``).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from smlocal.emulator.aws_errors import AwsError, service_unavailable
from smlocal.emulator.fast_path import FastCycle, FastInvoke, fast_route

__all__ = [
    "OVER_LIMIT_GRACE_S",
    "HttpLimits",
    "aws_answer",
    "default_max_connections",
    "guarded_protocol",
    "raise_open_files_limit",
]

# A connection beyond the limit still holds a file descriptor until it is answered: it gets
# this long to send its request line and headers, not the full header timeout.
OVER_LIMIT_GRACE_S = 1.0
# File descriptors kept for everything but client connections (container connections, logs,
# SQLite, Docker's socket) when the connection limit is derived from RLIMIT_NOFILE.
_FD_RESERVE = 256
_MAX_CONNECTIONS_CAP = 4096
_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 503: b"Service Unavailable"}


def default_max_connections() -> int:
    """Half of what the open-files limit leaves after a reserve, at most 4096, at least 16."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_CONNECTIONS_CAP
    return max(16, min(_MAX_CONNECTIONS_CAP, (soft - _FD_RESERVE) // 2))


def raise_open_files_limit() -> None:
    """Lift this process's soft open-files limit to its hard one (the service's process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        # Some platforms (macOS) cap it below the hard limit: then it stays as it is.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass(frozen=True)
class HttpLimits:
    """Per-connection limits of the API port (see the module docstring)."""

    # ALB's limit on a request's headers is 64 KiB; SageMaker's own headers are far smaller.
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: int = 60  # uvicorn's timeout_keep_alive
    max_connections: int | None = None  # None: default_max_connections()


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


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _answering(error: AwsError) -> ASGIApp:
    """An app that answers every request with ``error`` and closes the connection."""

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        body = error.body()
        headers = [(k.encode(), v.encode()) for k, v in error.headers().items()]
        headers += [(b"content-length", b"%d" % len(body)), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return answer


_over_limit = _answering(
    service_unavailable(
        "The local service has as many connections open as it accepts; try again shortly."
    )
)


_IDLE, _HEADERS, _BODY = "idle", "headers", "body"


class _GuardedProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpLimits]
    max_connections: ClassVar[int]
    fast: ClassVar[FastInvoke | None] = None

    # -- uvicorn's protocol interface ----------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._phase = _IDLE
        self._header_bytes = 0
        self._parsed_header_bytes = 0
        self._received = False
        self._last_body = 0.0
        self._begun = 0.0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._over_limit = len(self.connections) > self.max_connections
        grace = self.limits.header_timeout_s
        if self._over_limit:
            grace = min(grace, OVER_LIMIT_GRACE_S)
            self.logger.warning(
                "%d connections open (the limit is %d): answering 503 to a new one",
                len(self.connections),
                self.max_connections,
            )
        self._header_timer = self.loop.call_later(grace, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._received = True
        if self._phase != _BODY:
            self._header_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._phase != _BODY and self._header_bytes > self.limits.max_header_bytes:
            self._refuse(
                AwsError(
                    "MalformedHttpRequestException",
                    f"The request's header block is larger than {self.limits.max_header_bytes} "
                    "bytes.",
                )
            )
            return
        # The timers are armed only for a request this read left unfinished: one that came
        # whole (the usual case on a keep-alive connection) costs no timer at all.
        if self._phase == _HEADERS and self._header_timer is None:
            left = self.limits.header_timeout_s - (self.loop.time() - self._begun)
            self._header_timer = self.loop.call_later(max(left, 0), self._header_timeout)
        elif self._phase == _BODY and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_timeout)

    def send_400_response(self, msg: str) -> None:
        self._refuse(
            AwsError(
                "MalformedHttpRequestException",
                f"There are problems with the request at the HTTP level: {msg}",
            )
        )

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEADERS
        self._begun = self.loop.time()  # the header timeout runs from here (see data_received)

    def on_url(self, url: bytes) -> None:
        self._parsed_header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed_header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        # Counted as parsed: a header block that came in one read with its request is past
        # data_received's check by the time the parser has it all.
        too_large = self._parsed_header_bytes > self.limits.max_header_bytes
        self._parsed_header_bytes = 0
        self._phase = _BODY
        self._header_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._last_body = self.loop.time()
        refusal: ASGIApp | None = None
        if too_large:
            refusal = _answering(
                AwsError(
                    "MalformedHttpRequestException",
                    f"The request's header block is larger than {self.limits.max_header_bytes} "
                    "bytes.",
                )
            )
        elif self._over_limit:
            refusal = _over_limit
        if refusal is None:
            if self.fast is None or not self._take_fast():
                super().on_headers_complete()
            return
        admitted, self.app = self.app, refusal
        try:
            super().on_headers_complete()
        finally:
            self.app = admitted

    def _take_fast(self) -> bool:
        """Hand a plain InvokeEndpoint to a FastCycle (:mod:`~smlocal.emulator.fast_path`);
        False leaves the request to uvicorn's ASGI cycle."""
        assert self.fast is not None
        parser = self.parser
        found = fast_route(
            parser.get_method(), self.url, parser.get_http_version(), self.expect_100_continue
        )
        if found is None or parser.should_upgrade():
            return False
        name, stream = found
        if not self.fast.takes(self.server, self.headers, name):
            return False
        cycle = FastCycle(
            server=self.fast,
            name=name,
            stream=stream,
            headers=self.headers,
            transport=self.transport,
            flow=self.flow,
            keep_alive=parser.should_keep_alive(),
            on_response=self.on_response_complete,
            default_headers=self.server_state.default_headers,
        )
        existing, self.cycle = self.cycle, cycle  # type: ignore[assignment]
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, self.app)  # type: ignore[arg-type]
        else:  # pipelined behind a request still being answered: queued as uvicorn queues
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))  # type: ignore[arg-type]
        return True

    def on_body(self, body: bytes) -> None:
        self._last_body = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        self._header_bytes = 0
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # -- the guards ------------------------------------------------------------------------

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self._phase == _BODY:
            return
        if self._phase == _IDLE and not self._received:
            self.transport.close()  # never said a word: nobody to answer
            return
        self._refuse(
            AwsError(
                "RequestTimeoutException",
                f"The request's headers did not arrive within {self.limits.header_timeout_s:g} s.",
            )
        )

    def _body_timeout(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self._phase != _BODY:
            return
        idle = self.loop.time() - self._last_body
        if self.flow.read_paused or idle < self.limits.body_timeout_s:
            # The app is not reading (flow control), or data came since: look again later.
            wait = max(self.limits.body_timeout_s - idle, 0.05)
            self._body_timer = self.loop.call_later(wait, self._body_timeout)
            return
        self.logger.info(
            "a request body stopped arriving for %g s: closing its connection",
            self.limits.body_timeout_s,
        )
        self.transport.close()  # the app's receive() gets http.disconnect

    def _refuse(self, error: AwsError) -> None:
        self._cancel_timers()
        self.transport.write(aws_answer(error))
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None


def guarded_protocol(
    limits: HttpLimits | None = None, fast: FastInvoke | None = None
) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, with ``limits``; ``fast`` takes
    plain InvokeEndpoint requests at the protocol level (:mod:`~smlocal.emulator.fast_path`)."""
    chosen = limits or HttpLimits()
    maximum = chosen.max_connections or default_max_connections()
    return type(
        "GuardedHttpToolsProtocol",
        (_GuardedProtocol,),
        {"limits": chosen, "max_connections": maximum, "fast": fast},
    )
