"""InvokeEndpoint and its response stream at the HTTP-protocol level: the hot path without ASGI.

uvicorn turns each request into an ASGI scope, a task running the app through its
middleware, receive/send message dicts and a header check per answer header; for a
request the data plane answers in a few hundred microseconds, that machinery was a large
share of the serving process's CPU (issue 15). So :class:`~smlocal.emulator.http_guard`'s
protocol hands a plain ``POST /endpoints/{name}/invocations`` (or
``/invocations-response-stream``) to a :class:`FastCycle` instead of an ASGI cycle: the body is
collected by the protocol's own parser callbacks, the answer comes from
:meth:`RuntimeApi.answer_invoke` or ``answer_stream`` (the very code the ASGI routes run, so
validation, limits, errors, metrics, variants and capture are the same), and it is written
in one ``transport.write`` (a stream: its head, then one chunk per event, as uvicorn frames
it).

Everything else takes the ASGI path unchanged, decided from the request line and headers
alone (:func:`fast_route`): another route or method, a query string, ``Expect:
100-continue``, an Upgrade, HTTP/1.0, and whatever the server's own gate declines
(:class:`FastInvoke.takes`: the service sends refusals of its origin guard and async
endpoints the ASGI way). A :class:`FastCycle` duck-types uvicorn's RequestResponseCycle
(``body``, ``more_body``, ``message_event``, ``response_complete``, ``disconnected``,
``keep_alive``, ``run_asgi``), so uvicorn's pipelining queue, flow control, keep-alive and
shutdown treat both alike.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import unquote

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.invoke_answer import (
    BodyReader,
    ClientDisconnected,
    InvokeAnswer,
    oversize_body,
)
from smlocal.emulator.stream_answer import StreamSink

__all__ = ["FastCycle", "FastInvoke", "fast_route"]

log = logging.getLogger(__name__)

_PREFIX = b"/endpoints/"
_SUFFIX = b"/invocations"
_STREAM_SUFFIX = b"/invocations-response-stream"


class FastInvoke(Protocol):
    """What the fast path needs of the server behind the port."""

    def takes(self, server: Any, headers: list[tuple[bytes, bytes]], name: str) -> bool:
        """False: this request takes the ASGI path (the server answers it specially)."""
        ...

    async def answer_invoke(
        self, name: str, headers: Mapping[str, str], read: BodyReader
    ) -> InvokeAnswer | None: ...

    async def answer_stream(
        self, name: str, headers: Mapping[str, str], read: BodyReader, sink: StreamSink
    ) -> InvokeAnswer | None: ...


def fast_route(
    method: bytes, url: bytes, http_version: str, expect_100: bool
) -> tuple[str, bool] | None:
    """The endpoint name of a request the fast path may take, and whether it is
    InvokeEndpointWithResponseStream; None: the ASGI path."""
    if method != b"POST" or http_version != "1.1" or expect_100:
        return None
    return _endpoint_of(url)


# Cached: a client calls the same few endpoints over and over, and the path is its key.
@functools.lru_cache(maxsize=1024)
def _endpoint_of(url: bytes) -> tuple[str, bool] | None:
    if not url.startswith(_PREFIX) or b"?" in url:
        return None
    if url.endswith(_SUFFIX):
        label, stream = url[len(_PREFIX) : -len(_SUFFIX)], False
    elif url.endswith(_STREAM_SUFFIX):
        label, stream = url[len(_PREFIX) : -len(_STREAM_SUFFIX)], True
    else:
        return None
    if not label or b"/" in label:
        return None  # not one segment: the router's UnknownOperationException, via ASGI
    return unquote(label.decode("latin-1"), errors="replace"), stream


class FastCycle:
    """One InvokeEndpoint (or InvokeEndpointWithResponseStream) request on a connection,
    from its headers to its answer."""

    def __init__(
        self,
        *,
        server: FastInvoke,
        name: str,
        stream: bool,
        headers: list[tuple[bytes, bytes]],
        transport: asyncio.Transport,
        flow: Any,  # uvicorn's FlowControl
        keep_alive: bool,
        on_response: Callable[[], None],
        default_headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.server = server
        self.name = name
        self.stream = stream
        self.raw_headers = headers
        self.transport = transport
        self.flow = flow
        self.keep_alive = keep_alive
        self.on_response = on_response
        # uvicorn's server-wide headers (date, server), refreshed by it every second.
        self.default_headers = default_headers
        # uvicorn's protocol reads and writes these (its RequestResponseCycle's names).
        self.body = bytearray()
        self.more_body = True
        self.message_event = asyncio.Event()
        self.response_complete = False
        self.disconnected = False
        self.waiting_for_100_continue = False
        self._streaming = False  # a stream's head is on the wire

    async def run_asgi(self, _app: object) -> None:
        """Named as uvicorn calls it: the request's whole life (the app is not used)."""
        try:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.raw_headers}
            try:
                if self.stream:
                    answer = await self.server.answer_stream(self.name, headers, self._read, self)
                else:
                    answer = await self.server.answer_invoke(self.name, headers, self._read)
            except Exception:
                request_id = str(uuid.uuid4())
                operation = "InvokeEndpoint" + ("WithResponseStream" if self.stream else "")
                log.exception("request %s (%s) failed inside smlocal", request_id, operation)
                if self._streaming:  # the head is out: as uvicorn does, drop the connection
                    self.transport.close()
                    return
                # AwsShaped's rule on the ASGI path: a bug is AWS's InternalFailure.
                error = AwsError(
                    "InternalFailure", f"smlocal failed on request {request_id}; see its log."
                )
                answer = InvokeAnswer(error.status, error.headers(request_id), error.body())
            if answer is None:
                return
            await self._drain()
            if not self.disconnected:
                self._write(answer)
            answer.sent()  # captured even if the client left meanwhile, as on the ASGI route
        finally:
            self.on_response = lambda: None

    async def _drain(self) -> None:
        if self.flow.write_paused and not self.disconnected:
            # The client is not reading its answers: wait, as uvicorn's cycle does, rather
            # than take (and buffer) every pipelined request or stream event behind it.
            await self.flow.drain()

    # -- StreamSink (:mod:`~smlocal.emulator.stream_answer`): a 200, chunked, as uvicorn
    # frames an ASGI answer without a content-length. A client that left is written nothing,
    # and the stream runs on (captured whole), as on the ASGI route.

    async def start(self, headers: Mapping[str, str]) -> None:
        self._streaming = True
        await self._drain()
        if self.disconnected:
            return
        parts = [STATUS_LINE[200], *self._head_lines(headers), b"transfer-encoding: chunked\r\n"]
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        self.transport.write(b"".join(parts))

    async def part(self, data: bytes) -> None:
        await self._drain()
        if data and not self.disconnected:
            self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))

    async def end(self) -> None:
        await self._drain()
        if not self.disconnected:
            self.transport.write(b"0\r\n\r\n")
        self._complete()

    def _head_lines(self, headers: Mapping[str, str]) -> list[bytes]:
        parts: list[bytes] = []
        for raw_name, raw_value in self.default_headers:
            parts += (raw_name, b": ", raw_value, b"\r\n")
        for name, value in headers.items():
            parts.append(f"{name}: {value}\r\n".encode("latin-1"))
        return parts

    async def _read(self, limit: int, request_id: str) -> bytes:
        for name, value in self.raw_headers:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise oversize_body(request_id)
        while self.more_body and not self.disconnected:
            if len(self.body) > limit:
                raise oversize_body(request_id)
            self.flow.resume_reading()
            await self.message_event.wait()
            self.message_event.clear()
        if self.disconnected:
            raise ClientDisconnected(request_id)
        if len(self.body) > limit:
            raise oversize_body(request_id)
        return bytes(self.body)

    def _write(self, answer: InvokeAnswer) -> None:
        parts = [STATUS_LINE[answer.status], *self._head_lines(answer.headers)]
        parts.append(b"content-length: %d\r\n" % len(answer.body))
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        parts.append(answer.body)
        self.transport.write(b"".join(parts))
        self._complete()

    def _complete(self) -> None:
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()
