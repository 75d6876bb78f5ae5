"""InvokeEndpointWithResponseStream on the protocol-level fast path, on raw sockets and boto3.

The stream's head, its chunked framing, keep-alive and pipelining after it, and a failure
after the head went out (the connection is dropped, never a second answer).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from smlocal.emulator import fast_path, stream_answer
from smlocal.emulator.runtime_api import RuntimeApi
from tests.unit.fakes import FakeBackend, FakeImage
from tests.unit.one_endpoint import one_endpoint

IMAGE = "fake/echo:1"
STREAM = "/endpoints/ep/invocations-response-stream"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Any, tuple[str, int]]]:
    backend = FakeBackend({IMAGE: FakeImage()})
    with one_endpoint(backend, tmp_path, IMAGE) as (_, rt):
        where = urlsplit(rt.meta.endpoint_url)
        yield rt, (where.hostname or "127.0.0.1", where.port or 80)


def _request(body: bytes, path: str, attributes: str = "") -> bytes:
    extra = f"X-Amzn-SageMaker-Custom-Attributes: {attributes}\r\n" if attributes else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


class _Reader:
    """HTTP/1.1 answers off one socket: Content-Length or chunked framed."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""
        sock.settimeout(10)

    def _more(self) -> bool:
        chunk = self.sock.recv(65536)
        self.data += chunk
        return bool(chunk)

    def _line(self) -> bytes:
        while b"\r\n" not in self.data:
            assert self._more(), "connection closed mid-answer"
        line, self.data = self.data.split(b"\r\n", 1)
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.data) < size:
            assert self._more(), "connection closed mid-answer"
        taken, self.data = self.data[:size], self.data[size:]
        return taken

    def answer(self) -> tuple[int, dict[str, str], list[bytes]]:
        """(status, headers, body pieces: one per chunk, or the whole body)."""
        status = int(self._line().split()[1])
        headers: dict[str, str] = {}
        while line := self._line():
            name, value = line.decode("latin-1").split(":", 1)
            headers[name.lower()] = value.strip()
        if headers.get("transfer-encoding") != "chunked":
            return status, headers, [self._exactly(int(headers["content-length"]))]
        pieces = []
        while size := int(self._line(), 16):
            pieces.append(self._exactly(size))
            assert self._exactly(2) == b"\r\n"
        assert self._exactly(2) == b"\r\n"
        return status, headers, pieces


def test_the_stream_takes_the_fast_path_not_the_asgi_route(
    service: tuple[Any, tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, _ = service
    taken = []
    original = fast_path.FastCycle.run_asgi

    async def counting(self: fast_path.FastCycle, app: object) -> None:
        taken.append((self.name, self.stream))
        await original(self, app)

    async def refuse(*_: object) -> None:
        raise AssertionError("the ASGI route ran")

    monkeypatch.setattr(fast_path.FastCycle, "run_asgi", counting)
    monkeypatch.setattr(RuntimeApi, "invoke_stream", refuse)
    body = b"0123456789" * 30
    response = rt.invoke_endpoint_with_response_stream(
        EndpointName="ep", Body=body, CustomAttributes="stream=3"
    )
    parts = [event["PayloadPart"]["Bytes"] for event in response["Body"]]
    assert b"".join(parts) == body
    assert len(parts) >= 2
    assert response["InvokedProductionVariant"] == "A"
    assert taken == [("ep", True)]


def test_a_stream_is_chunked_with_the_asgi_routes_head_and_keeps_the_connection(
    service: tuple[Any, tuple[str, int]],
) -> None:
    _, address = service
    with socket.create_connection(address) as sock:
        # A stream, then a plain invocation pipelined behind it: answered in order.
        sock.sendall(
            _request(b"abcdef" * 50, STREAM, "stream=3")
            + _request(b"after", "/endpoints/ep/invocations")
        )
        reader = _Reader(sock)
        status, headers, events = reader.answer()
        assert status == 200
        assert headers["content-type"] == "application/vnd.amazon.eventstream"
        assert headers["x-amzn-sagemaker-content-type"] == "text/plain"
        assert headers["x-amzn-invoked-production-variant"] == "A"
        assert {"date", "server", "x-amzn-requestid"} <= headers.keys()
        assert "content-length" not in headers
        assert len(events) >= 2  # one chunk per PayloadPart event
        assert all(b":event-type\x07\x00\x0bPayloadPart" in event for event in events)
        status, _, (body,) = reader.answer()
        assert (status, body) == (200, b"after")


def test_a_stream_refused_before_its_head_is_a_plain_aws_error(
    service: tuple[Any, tuple[str, int]],
) -> None:
    _, address = service
    with socket.create_connection(address) as sock:
        sock.sendall(_request(b"x", "/endpoints/nope/invocations-response-stream"))
        status, headers, (body,) = _Reader(sock).answer()
    assert status == 400
    assert headers["x-amzn-errortype"].startswith("ValidationError")
    assert b"Endpoint nope of account" in body


def test_a_failure_after_the_head_drops_the_connection_never_a_second_answer(
    service: tuple[Any, tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, address = service

    def broken(_: bytes) -> bytes:
        raise RuntimeError("a bug in smlocal")

    monkeypatch.setattr(stream_answer, "payload_part", broken)
    with socket.create_connection(address) as sock:
        sock.sendall(_request(b"abcdef" * 50, STREAM, "stream=3"))
        reader = _Reader(sock)
        assert reader._line().startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 10
        while reader._more():  # to the end: the server closes the connection
            assert time.monotonic() < deadline
    assert b"HTTP/1.1 500" not in reader.data
    assert not reader.data.endswith(b"0\r\n\r\n")  # no clean end of the stream
    monkeypatch.undo()
    # and the service serves on
    assert rt.invoke_endpoint(EndpointName="ep", Body=b"ok")["Body"].read() == b"ok"


def test_a_client_that_leaves_mid_stream_leaves_the_service_serving(
    service: tuple[Any, tuple[str, int]],
) -> None:
    rt, address = service
    with socket.create_connection(address) as sock:
        sock.sendall(_request(b"abcdef" * 50, STREAM, "stream=5"))
        assert sock.recv(10).startswith(b"HTTP/1.1")
    time.sleep(0.4)  # the container's stream runs on meanwhile
    response = rt.invoke_endpoint_with_response_stream(
        EndpointName="ep", Body=b"still here", CustomAttributes="stream=2"
    )
    assert b"".join(e["PayloadPart"]["Bytes"] for e in response["Body"]) == b"still here"
