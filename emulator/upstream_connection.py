"""One keep-alive HTTP/1.1 connection to a container, for :mod:`~smlocal.emulator.upstream`.

An :class:`asyncio.Protocol` with httptools' response parser, one request at a time: the
whole answer (at most ``max_body + 1`` bytes of its body) or, streaming, its head at once and
its body chunk by chunk with flow control. The errors it raises are the upstream client's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "ConnectFailed",
    "ConnectionBroken",
    "ContainerConnection",
    "UpstreamAnswer",
    "UpstreamTimeout",
]

# A streamed body queued beyond this many chunks pauses reading from the container until
# the queue is down to the second figure.
_PAUSE_AT, _RESUME_AT = 64, 16


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


class ContainerConnection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0  # time.monotonic() when the pool last took it back
        self.parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[UpstreamAnswer] | None = None
        # Streaming (InvokeEndpointWithResponseStream): the answer resolves at its headers,
        # the body arrives here chunk by chunk; None ends it, an exception breaks it.
        self._chunks: asyncio.Queue[bytes | Exception | None] | None = None
        self._paused = False
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
        if self._answer is None or (self._answer.done() and not self._streaming_body()):
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
        if self._streaming_body():
            assert self._chunks is not None
            if self._close_delimited:
                self._complete = True
                self._chunks.put_nowait(None)
            else:
                self._chunks.put_nowait(ConnectionBroken("the container closed the stream"))
            return
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
        if self._chunks is not None and self._answer is not None and not self._answer.done():
            self._answer.set_result(
                UpstreamAnswer(self.parser.get_status_code(), self._head(), b"")
            )

    def on_body(self, body: bytes) -> None:
        if self._chunks is not None:
            self._chunks.put_nowait(body)
            if self._chunks.qsize() > _PAUSE_AT and self.transport is not None:
                # The client reads slower than the container writes: hold the container
                # back (TCP flow control) rather than buffer its whole stream here.
                self.transport.pause_reading()
                self._paused = True
            return
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
        if self._chunks is not None:
            self._complete = True
            self._chunks.put_nowait(None)
            return
        self._finish()

    # -- the request ---------------------------------------------------------------------

    async def exchange(
        self, parts: Sequence[bytes], max_body: int, *, stream: bool = False
    ) -> UpstreamAnswer:
        """The answer; with ``stream``, its status and headers only (the body through
        :meth:`next_chunk`)."""
        assert self.transport is not None
        self._reset()
        self._max_body = max_body
        self._chunks = asyncio.Queue() if stream else None
        self._answer = self.loop.create_future()
        for part in parts:
            self.transport.write(part)
        return await self._answer

    async def next_chunk(self, timeout_s: float) -> bytes | None:
        """The next piece of a streamed body, None at its end; UpstreamTimeout when none
        came within ``timeout_s``, ConnectionBroken when the container broke it off."""
        assert self._chunks is not None
        try:
            async with asyncio.timeout(timeout_s):
                item = await self._chunks.get()
        except TimeoutError:
            self.abort()
            raise UpstreamTimeout() from None
        if self._paused and self._chunks.qsize() <= _RESUME_AT and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        if isinstance(item, Exception):
            raise item
        return item

    def _streaming_body(self) -> bool:
        return (
            self._chunks is not None
            and self._answer is not None
            and self._answer.done()
            and not self._complete
        )

    @property
    def reusable(self) -> bool:
        return self._complete and self._keep_alive and not self.closed

    def _finish(self) -> None:
        if self._answer is None or self._answer.done():
            return
        self._complete = True
        status = self.parser.get_status_code()
        self._answer.set_result(UpstreamAnswer(status, self._head(), b"".join(self._body)))

    def _head(self) -> CIMultiDictProxy[str]:
        headers: CIMultiDict[str] = CIMultiDict(
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
            for name, value in self._headers
        )
        return CIMultiDictProxy(headers)

    def fail(self, error: Exception) -> None:
        if self._streaming_body():
            assert self._chunks is not None
            self._chunks.put_nowait(error)
        elif self._answer is not None and not self._answer.done():
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
