"""Keep-alive HTTP/1.1 from the runtime API to a container: the data plane's upstream client.

InvokeEndpoint's hop to ``POST /invocations`` (and a multi-model endpoint's
``/models/{name}/invoke``). aiohttp's client cost about 150 µs of CPU per request on these
machines (issue 15); this one is an :class:`asyncio.Protocol` per connection with httptools'
response parser, a request head built in one join, one ``write`` per request and one timer
per request for its timeout. A pool per container address keeps idle connections.

What it guarantees the caller (:mod:`~smlocal.emulator.invocation`):

- :class:`UpstreamTimeout` (a TimeoutError) when no whole answer came within ``timeout_s``;
- :class:`ConnectFailed` (a ConnectionError) when no connection could be made within
  ``connect_timeout_s`` or it was refused: a dead or wrong address, not a slow model;
- :class:`ConnectionBroken` (a ConnectionError) when the container closed the connection
  before its answer was complete: a truncated answer is never returned as one;
- an answer body of at most ``max_body + 1`` bytes (the caller refuses the oversize one; the
  connection is then closed, not drained).

A connection the pool reused that the container had closed meanwhile (its keep-alive timeout
raced the request) fails before any answer byte: that one request is retried once on a new
connection, as the container never saw it answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "ConnectFailed",
    "ConnectionBroken",
    "UpstreamAnswer",
    "UpstreamPool",
    "UpstreamPools",
    "UpstreamTimeout",
]

# Headers this client owns on the request: the caller's copies are dropped.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class UpstreamTimeout(TimeoutError):
    """No whole answer within the invocation timeout."""


class ConnectFailed(ConnectionError):
    """No connection to the container: refused, unreachable, or not within the connect timeout."""


class ConnectionBroken(ConnectionError):
    """The container closed the connection before its answer was complete."""


@dataclass(frozen=True)
class UpstreamAnswer:
    status: int
    # Case-insensitive, values decoded as aiohttp decodes them (UTF-8, undecodable bytes kept
    # as surrogates), so the answer-header rules read them as they did.
    headers: CIMultiDictProxy[str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[UpstreamAnswer] | None = None
        self._reset()

    def _reset(self) -> None:
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._max_body = 0
        self._received = False
        self._keep_alive = True
        self._complete = False
        self._headers_done = False
        self._close_delimited = False

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._received = True
        if self._answer is None or self._answer.done():
            # An answer nobody asked for (or after the one we read): this connection's state
            # is unknown now, so it is not reused.
            self._close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.fail(ConnectionBroken(f"the container's answer is not HTTP: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is not None and not self._answer.done():
            if self._headers_done and self._close_delimited:
                self._finish()  # an answer without length ends with its connection
            else:
                what = "before answering" if not self._received else "mid-answer"
                self.fail(ConnectionBroken(f"the container closed the connection {what}"))

    # -- httptools callbacks -------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._keep_alive = self.parser.should_keep_alive()
        names = {name.lower() for name, _ in self._headers}
        self._close_delimited = b"content-length" not in names and b"transfer-encoding" not in names

    def on_body(self, body: bytes) -> None:
        if self._size > self._max_body:
            return
        self._body.append(body)
        self._size += len(body)
        if self._size > self._max_body:
            # The caller only needs to know it is too large: stop here, and drop the
            # connection rather than read the rest of an oversize answer.
            self._keep_alive = False
            self._finish()

    def on_message_complete(self) -> None:
        self._finish()

    # -- the request ---------------------------------------------------------------------

    async def exchange(self, parts: Sequence[bytes], max_body: int) -> UpstreamAnswer:
        assert self.transport is not None
        self._reset()
        self._max_body = max_body
        self._answer = self.loop.create_future()
        for part in parts:
            self.transport.write(part)
        return await self._answer

    @property
    def received_nothing(self) -> bool:
        return not self._received

    @property
    def reusable(self) -> bool:
        return self._complete and self._keep_alive and not self.closed

    def _finish(self) -> None:
        if self._answer is None or self._answer.done():
            return
        self._complete = True
        status = self.parser.get_status_code()
        headers: CIMultiDict[str] = CIMultiDict(
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
            for name, value in self._headers
        )
        body = b"".join(self._body)
        self._answer.set_result(UpstreamAnswer(status, CIMultiDictProxy(headers), body))

    def fail(self, error: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self._close()

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Give up on this connection (a timeout, a cancelled request)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _request_head(
    method: str, path: str, host: str, headers: Iterable[tuple[str, str]], length: int
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}"]
    seen_type = seen_accept = False
    for name, value in headers:
        lower = name.lower()
        if lower in _OWN_HEADERS:
            continue
        seen_type = seen_type or lower == "content-type"
        seen_accept = seen_accept or lower == "accept"
        lines.append(f"{name}: {value}")
    # What the aiohttp client sent before when the caller named none: containers written
    # against it keep seeing the same request.
    if not seen_type:
        lines.append("Content-Type: application/octet-stream")
    if not seen_accept:
        lines.append("Accept: */*")
    lines.append("\r\n")
    # latin-1: header values came in as latin-1 from the runtime API's own decoding.
    return "\r\n".join(lines).encode("latin-1")


class UpstreamPool:
    """Idle keep-alive connections to one container address, and requests over them."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._host_header = f"{host}:{port}"
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._closed = False

    async def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout_s: float,
        connect_timeout_s: float,
        max_body: int,
    ) -> UpstreamAnswer:
        """One request and its whole answer (see the module docstring for what it raises)."""
        head = _request_head(method, path, self._host_header, headers.items(), len(body))
        # One write: the body rides with the head unless it is large enough that joining
        # would copy more than a second write costs.
        parts = [head + body] if len(body) <= 65536 else [head, body]
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None
        current: _Connection | None = None
        timed_out = False

        def time_out() -> None:
            nonlocal timed_out
            timed_out = True
            if current is not None:
                current.fail(UpstreamTimeout())
                current.abort()

        timer = loop.call_later(timeout_s, time_out)
        try:
            for attempt in (1, 2):
                current, reused = self._take()
                if current is None:
                    current = await self._connect(loop, connect_timeout_s)
                    reused = False
                if timed_out:
                    raise UpstreamTimeout()
                self._busy.add(current)
                try:
                    answer = await current.exchange(parts, max_body)
                except ConnectionBroken:
                    self._busy.discard(current)
                    if reused and attempt == 1 and current.received_nothing and not timed_out:
                        continue  # the keep-alive race (module docstring): once more, anew
                    raise
                except BaseException:
                    self._busy.discard(current)
                    current.abort()  # cancelled or timed out mid-request: never reused
                    raise
                self._busy.discard(current)
                if current.reusable and not self._closed:
                    self._idle.append(current)
                else:
                    current.abort()
                return answer
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            timer.cancel()

    def _take(self) -> tuple[_Connection | None, bool]:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection, True
        return None, False

    async def _connect(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> _Connection:
        try:
            async with asyncio.timeout(timeout_s):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(loop), self.host, self.port
                )
        except TimeoutError:
            raise ConnectFailed(
                f"no connection to {self._host_header} within {timeout_s:g} s"
            ) from None
        except OSError as error:
            raise ConnectFailed(
                f"cannot connect to {self._host_header}: {error.strerror or error}"
            ) from None
        return protocol

    def close(self) -> None:
        """Close the idle connections; one still carrying a request finishes it (a retiring
        container drains) and is closed then."""
        self._closed = True
        for connection in self._idle:
            connection.abort()
        self._idle.clear()


class UpstreamPools:
    """One :class:`UpstreamPool` per container address of an endpoint."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, int], UpstreamPool] = {}

    def to(self, address: tuple[str, int]) -> UpstreamPool:
        pool = self._pools.get(address)
        if pool is None:
            pool = self._pools[address] = UpstreamPool(*address)
        return pool

    def forget(self, address: tuple[str, int]) -> None:
        """The container at ``address`` left: close its connections."""
        pool = self._pools.pop(address, None)
        if pool is not None:
            pool.close()

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
