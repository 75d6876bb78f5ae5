"""A raw httptools proxy: the floor that ``benchmarks/runtime_api.py`` measures smlocal against.

The cheapest Python proxy we know how to write on this stack (uvloop, httptools' parsers,
callbacks only: no coroutine, task or future per request): its CPU per request is the floor
of a lean design, not a product. None of the runtime API's work (routing, validation,
metrics, capture, timeouts, errors): each request's method, Content-Type, Accept and body go
to ``/invocations`` over one keep-alive container connection per client connection; the
container's status, Content-Type and body come back. Pipelined requests are answered in order.

Run: python benchmarks/floor_proxy.py --upstream HOST:PORT [--port 0]
     (prints ``listening on 127.0.0.1:PORT``, serves until SIGTERM)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
from collections import deque
from http import HTTPStatus
from typing import cast

import httptools
import uvloop

Request = tuple[bytes, bool]  # (the upstream request in one piece, keep the client connection)


@functools.cache
def _status_line(code: int) -> bytes:
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {code} {phrase}\r\n".encode()


class Upstream(asyncio.Protocol):
    """The keep-alive connection to the container behind one client connection."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.content_type = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are only alike

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.client.upstream_lost()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.upstream_lost()

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        status, content_type = self.parser.get_status_code(), self.content_type
        self.body, self.content_type = [], b""
        self.client.answer(status, content_type, body)


class Client(asyncio.Protocol):
    """One client connection: parses its requests, hands them to its upstream in turn."""

    def __init__(self, upstream: tuple[str, int], head: bytes) -> None:
        self.upstream_address, self.head = upstream, head
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.upstream: Upstream | None = None  # None until connected
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Request] = deque()
        self.in_flight: Request | None = None
        self.headers: list[bytes] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, upstream = await loop.create_connection(
                lambda: Upstream(self), *self.upstream_address
            )
        except OSError:
            self.upstream_lost()
            return
        if self.closed:  # the client left while we connected
            transport.close()
            return
        self.upstream = upstream
        self._next()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-type", b"accept"):
            self.headers += (name, b": ", value, b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        method, headers = self.parser.get_method(), b"".join(self.headers)
        head = b"%b%b%bcontent-length: %d\r\n\r\n" % (method, self.head, headers, len(body))
        self.queue.append((head + body, self.parser.should_keep_alive()))
        self.headers, self.body = [], []
        self._next()

    def _next(self) -> None:
        if self.in_flight is None and self.queue and self.upstream is not None:
            self.in_flight = self.queue.popleft()
            assert self.upstream.transport is not None
            self.upstream.transport.write(self.in_flight[0])

    def answer(self, status: int, content_type: bytes, body: bytes) -> None:
        assert self.transport is not None and self.in_flight is not None
        keep_alive = self.in_flight[1]
        self.in_flight = None
        if self.closed:
            return
        close = b"" if keep_alive else b"connection: close\r\n"
        head = b"%bcontent-type: %b\r\ncontent-length: %d\r\n%b\r\n" % (
            _status_line(status),
            content_type or b"application/octet-stream",
            len(body),
            close,
        )
        self.transport.write(head + body)
        if keep_alive:
            self._next()
        else:
            self._close()

    def upstream_lost(self) -> None:
        if (self.in_flight or self.queue) and not self.closed and self.transport is not None:
            self.transport.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
        self._close()

    def _close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()


async def serve(upstream: tuple[str, int], port: int) -> None:
    head = f" /invocations HTTP/1.1\r\nhost: {upstream[0]}:{upstream[1]}\r\n".encode()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(upstream, head), "127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the container, HOST:PORT")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    uvloop.run(serve((host, int(port)), args.port))


if __name__ == "__main__":
    main()
