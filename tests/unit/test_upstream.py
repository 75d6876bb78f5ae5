"""The upstream client against raw TCP servers that answer exactly as scripted."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smlocal.emulator import upstream
from smlocal.emulator.upstream import (
    ConnectFailed,
    ConnectionBroken,
    UpstreamAnswer,
    UpstreamPool,
    UpstreamStream,
    UpstreamTimeout,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def _with_server(handler: Handler, run: Callable[[UpstreamPool], Awaitable[None]]) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool("127.0.0.1", port)
    try:
        await run(pool)
    finally:
        pool.close()
        server.close()


def _request(pool: UpstreamPool, body: bytes = b"x", **kw: float) -> Awaitable[UpstreamAnswer]:
    return pool.request(
        "POST",
        "/invocations",
        {"Content-Type": "text/csv"},
        body,
        timeout_s=kw.get("timeout_s", 5.0),
        connect_timeout_s=1.0,
        max_body=int(kw.get("max_body", 1000)),
    )


def test_keep_alive_connections_are_reused_and_the_request_is_sent_whole() -> None:
    connections = 0
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head, body = await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            seen.append((head, body))
            writer.write(_ok(body.upper(), b"X-Amzn-SageMaker-Custom-Attributes: a=1\r\n"))

    async def run(pool: UpstreamPool) -> None:
        for text in (b"one", b"two", b"three"):
            answer = await _request(pool, text)
            assert answer.status == 200
            assert answer.body == text.upper()
            # case-insensitive, as aiohttp's were
            assert answer.headers["x-amzn-sagemaker-custom-attributes"] == "a=1"

    asyncio.run(_with_server(handler, run))
    assert connections == 1
    head = seen[0][0].decode()
    assert head.startswith("POST /invocations HTTP/1.1\r\n")
    assert "Content-Type: text/csv\r\n" in head and "Content-Length: 3\r\n" in head
    assert "Accept: */*\r\n" in head  # what aiohttp sent when the client named none


def test_a_request_without_content_type_gets_octet_stream_as_before() -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await _read_request(reader)
        heads.append(head)
        writer.write(_ok(b"ok"))
        await writer.drain()

    async def run(pool: UpstreamPool) -> None:
        await pool.request(
            "POST", "/invocations", {}, b"", timeout_s=5, connect_timeout_s=1, max_body=10
        )

    asyncio.run(_with_server(handler, run))
    assert b"Content-Type: application/octet-stream\r\n" in heads[0]


def test_connection_close_chunked_and_close_delimited_answers() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nuntil the end",  # no length: ends with the connection
    ]
    script = list(answers)
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while script:
            await _read_request(reader)
            answer = script.pop(0)
            writer.write(answer)
            await writer.drain()
            if b"Connection: close" in answer or b"\r\n\r\nuntil" in answer:
                writer.close()
                return

    async def run(pool: UpstreamPool) -> None:
        bodies = [(await _request(pool)).body for _ in answers]
        assert bodies == [b"hi", b"abcde", b"until the end"]

    asyncio.run(_with_server(handler, run))
    # The first closed after its answer; the chunked answer's connection carried the third.
    assert connections == 2


def test_a_container_closing_mid_answer_is_broken_never_a_short_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.close()

    async def run(pool: UpstreamPool) -> None:
        with pytest.raises(ConnectionBroken, match="mid-answer"):
            await _request(pool)

    asyncio.run(_with_server(handler, run))


def test_a_silent_container_times_out_and_its_connection_is_not_reused() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        _, body = await _read_request(reader)
        if body == b"slow":
            await asyncio.sleep(5)
        writer.write(_ok(b"late" if body == b"slow" else b"fast"))
        await writer.drain()

    async def run(pool: UpstreamPool) -> None:
        with pytest.raises(UpstreamTimeout):
            await _request(pool, b"slow", timeout_s=0.2)
        answer = await _request(pool, b"quick")
        assert answer.body == b"fast"

    asyncio.run(_with_server(handler, run))
    assert connections == 2


def test_an_oversize_answer_stops_at_the_limit_plus_one() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_ok(b"y" * 5000))
        await writer.drain()

    async def run(pool: UpstreamPool) -> None:
        answer = await _request(pool, max_body=100)
        assert len(answer.body) > 100
        assert not pool._idle  # not drained for reuse

    asyncio.run(_with_server(handler, run))


def _closing_on_the_second_request(counter: list[int]) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counter.append(1)
        if len(counter) == 1:
            await _read_request(reader)
            writer.write(_ok(b"first"))
            await writer.drain()
            # The next request arrives as the container gives up on the connection.
            await reader.readuntil(b"\r\n\r\n")
            writer.transport.abort()
            return
        await _read_request(reader)
        writer.write(_ok(b"second"))
        await writer.drain()

    return handler


def test_a_connection_idle_too_long_is_not_reused_so_no_keep_alive_race(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(upstream, "IDLE_REUSE_S", 0.0)  # every idle connection is "stale"
    connections: list[int] = []

    async def run(pool: UpstreamPool) -> None:
        assert (await _request(pool)).body == b"first"
        assert (await _request(pool)).body == b"second"

    asyncio.run(_with_server(_closing_on_the_second_request(connections), run))
    assert len(connections) == 2


def test_a_busy_connection_closed_on_a_request_is_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Used a moment ago: no keep-alive timeout closed it; the container closed on the request
    # (a crashed worker), and sending it again would run the model twice.
    monkeypatch.setattr(upstream, "IDLE_REUSE_S", 60.0)
    connections: list[int] = []

    async def run(pool: UpstreamPool) -> None:
        assert (await _request(pool)).body == b"first"
        with pytest.raises(ConnectionBroken, match="before answering"):
            await _request(pool)

    asyncio.run(_with_server(_closing_on_the_second_request(connections), run))
    assert len(connections) == 1


def test_no_listener_is_a_connect_failure() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    pool = UpstreamPool("127.0.0.1", port)
    with pytest.raises(ConnectFailed, match="cannot connect"):
        asyncio.run(_request(pool))  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(bodies=st.lists(st.binary(max_size=70_000), min_size=1, max_size=4))
def test_any_body_goes_and_comes_back_intact(bodies: list[bytes]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                _, body = await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(_ok(body[::-1]))

    async def run(pool: UpstreamPool) -> None:
        for body in bodies:
            answer = await _request(pool, body, max_body=100_000)
            assert answer.body == body[::-1]

    asyncio.run(_with_server(handler, run))


def _stream(pool: UpstreamPool, timeout_s: float = 5.0) -> Awaitable[UpstreamStream]:
    return pool.open_stream(
        "POST", "/invocations", {}, b"go", timeout_s=timeout_s, connect_timeout_s=1.0
    )


def _chunked_head() -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_a_stream_yields_its_pieces_as_they_come_and_its_connection_is_reused() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(_chunked_head())
            for piece in (b"one ", b"two ", b"three"):
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                await asyncio.sleep(0.05)
            writer.write(b"0\r\n\r\n")

    async def run(pool: UpstreamPool) -> None:
        for _ in range(2):
            stream = await _stream(pool)
            assert stream.status == 200 and stream.headers["content-type"] == "text/plain"
            pieces = [piece async for piece in stream.chunks(5.0)]
            stream.release()
            assert b"".join(pieces) == b"one two three" and len(pieces) >= 2

    asyncio.run(_with_server(handler, run))
    assert connections == 1


def test_a_stream_broken_off_or_gone_quiet_raises_never_ends_quietly() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await _read_request(reader)
        writer.write(_chunked_head() + b"4\r\npart\r\n")
        await writer.drain()
        if body == b"go":
            writer.transport.abort()  # broken off mid-stream
        else:
            await asyncio.sleep(5)  # silent

    async def run(pool: UpstreamPool) -> None:
        stream = await _stream(pool)
        with pytest.raises(ConnectionBroken):
            async for _ in stream.chunks(5.0):
                pass
        stream.release()
        quiet = await pool.open_stream(
            "POST", "/invocations", {}, b"quiet", timeout_s=0.3, connect_timeout_s=1.0
        )
        with pytest.raises(UpstreamTimeout):
            async for _ in quiet.chunks(0.3):
                pass
        quiet.release()
        assert not pool._idle  # neither connection is reused

    asyncio.run(_with_server(handler, run))
