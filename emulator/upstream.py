"""Keep-alive HTTP/1.1 from the runtime API to a container: the data plane's upstream client.

InvokeEndpoint's hop to ``POST /invocations`` (and a multi-model endpoint's
``/models/{name}/invoke``), and InvokeEndpointWithResponseStream's
(:meth:`UpstreamPool.open_stream`). aiohttp's client cost about 150 µs of CPU per request
on these machines (issue 15); this one is an :class:`asyncio.Protocol` per connection
(:mod:`~smlocal.emulator.upstream_connection`, httptools' response parser), a request head
built in one join, one ``write`` per request and one timer per request for its timeout. A
pool per container address keeps idle connections.

What it guarantees the caller (:mod:`~smlocal.emulator.invocation`):

- :class:`UpstreamTimeout` (a TimeoutError) when no whole answer came within ``timeout_s``;
- :class:`ConnectFailed` (a ConnectionError) when no connection could be made within
  ``connect_timeout_s`` or it was refused: a dead or wrong address, not a slow model;
- :class:`ConnectionBroken` (a ConnectionError) when the container closed the connection
  before its answer was complete: a truncated answer is never returned as one;
- an answer body of at most ``max_body + 1`` bytes (the caller refuses the oversize one; the
  connection is then closed, not drained);
- streamed, each wait for data bounded by ``timeout_s``, so a long stream that keeps
  producing is never cut off.

A connection is reused only while it has been idle less than :data:`IDLE_REUSE_S`, shorter
than containers' keep-alive timeouts, so the container has not closed it meanwhile; an older
one is closed and a new one made. Nothing is ever sent twice: a connection that closes before
answering is the container's doing (a crashed worker, say), and a POST must not reach a model
twice. At most :data:`MAX_IDLE` idle connections are kept per container.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping

from multidict import CIMultiDictProxy

from smlocal.emulator.upstream_connection import (
    ConnectFailed,
    ConnectionBroken,
    ContainerConnection,
    UpstreamAnswer,
    UpstreamTimeout,
)

__all__ = [
    "ConnectFailed",
    "ConnectionBroken",
    "UpstreamAnswer",
    "UpstreamPool",
    "UpstreamPools",
    "UpstreamStream",
    "UpstreamTimeout",
]

# Headers this client owns on the request: the caller's copies are dropped.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


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


# Containers' keep-alive timeouts are seconds (gunicorn's default is 2 s, nginx's 75 s): a
# connection idle for less than this has not been closed by one. Under load connections are
# reused within milliseconds; a request after a pause pays one connect (~0.1 ms here).
IDLE_REUSE_S = 1.0
# Idle connections kept per container beyond a burst (each may pin a worker of its server).
MAX_IDLE = 32


class UpstreamStream:
    """A streamed answer: ``status`` and ``headers`` now, the body through :meth:`chunks`."""

    def __init__(
        self,
        status: int,
        headers: CIMultiDictProxy[str],
        connection: ContainerConnection,
        pool: UpstreamPool,
    ) -> None:
        self.status = status
        self.headers = headers
        self._connection = connection
        self._pool = pool
        self._released = False

    async def chunks(self, timeout_s: float) -> AsyncIterator[bytes]:
        """The body's pieces as they come (see :meth:`ContainerConnection.next_chunk`)."""
        while (chunk := await self._connection.next_chunk(timeout_s)) is not None:
            if chunk:
                yield chunk

    async def read(self, limit: int, timeout_s: float) -> bytes:
        """The body, or its first ``limit + 1`` bytes when it is larger."""
        pieces: list[bytes] = []
        size = 0
        async for chunk in self.chunks(timeout_s):
            pieces.append(chunk)
            size += len(chunk)
            if size > limit:
                break
        return b"".join(pieces)

    def release(self) -> None:
        """Done with it: a fully read answer's connection goes back to the pool."""
        if not self._released:
            self._released = True
            self._pool._give_back(self._connection)


class UpstreamPool:
    """Idle keep-alive connections to one container address, and requests over them."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._host_header = f"{host}:{port}"
        self._idle: list[ContainerConnection] = []
        self._busy: set[ContainerConnection] = set()
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
        answer, connection = await self._exchange(
            method,
            path,
            headers,
            body,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            max_body=max_body,
            stream=False,
        )
        self._give_back(connection)
        return answer

    async def open_stream(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout_s: float,
        connect_timeout_s: float,
    ) -> UpstreamStream:
        """A request whose answer is read as it arrives: its status and headers within
        ``timeout_s``, then each piece of its body within ``timeout_s`` of the last
        (:meth:`UpstreamStream.chunks`); :meth:`UpstreamStream.release` when done."""
        answer, connection = await self._exchange(
            method,
            path,
            headers,
            body,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            max_body=0,
            stream=True,
        )
        return UpstreamStream(answer.status, answer.headers, connection, self)

    async def _exchange(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout_s: float,
        connect_timeout_s: float,
        max_body: int,
        stream: bool,
    ) -> tuple[UpstreamAnswer, ContainerConnection]:
        head = _request_head(method, path, self._host_header, headers.items(), len(body))
        # One write: the body rides with the head unless it is large enough that joining
        # would copy more than a second write costs.
        parts = [head + body] if len(body) <= 65536 else [head, body]
        loop = asyncio.get_running_loop()
        current: ContainerConnection | None = None
        timed_out = False

        def time_out() -> None:
            nonlocal timed_out
            timed_out = True
            if current is not None:
                current.fail(UpstreamTimeout())
                current.abort()

        timer = loop.call_later(timeout_s, time_out)
        try:
            current = self._take()
            if current is None:
                current = await self._connect(loop, connect_timeout_s)
            if timed_out:
                current.abort()
                raise UpstreamTimeout()
            self._busy.add(current)
            try:
                answer = await current.exchange(parts, max_body, stream=stream)
            except BaseException:
                self._busy.discard(current)
                current.abort()  # broken, cancelled or timed out mid-request: never reused
                raise
            return answer, current
        finally:
            timer.cancel()

    def _give_back(self, connection: ContainerConnection) -> None:
        self._busy.discard(connection)
        if connection.reusable and not self._closed and len(self._idle) < MAX_IDLE:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.abort()

    def _take(self) -> ContainerConnection | None:
        """The most recently used idle connection still fresh (module docstring), or None;
        stale ones are closed on the way."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.closed:
                continue
            if now - connection.idle_since < IDLE_REUSE_S:
                self._drop_stale(now)
                return connection
            connection.abort()
        return None

    def _drop_stale(self, now: float) -> None:
        # The list is in the order connections came back: the stale ones are at its start.
        while self._idle and now - self._idle[0].idle_since >= IDLE_REUSE_S:
            self._idle.pop(0).abort()

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, timeout_s: float
    ) -> ContainerConnection:
        try:
            async with asyncio.timeout(timeout_s):
                _, protocol = await loop.create_connection(
                    lambda: ContainerConnection(loop), self.host, self.port
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
