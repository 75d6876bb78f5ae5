"""The API port's read timeouts, header-size cap and connection limit (issue 11, defect 7).

Before: a connection that never sent a byte, or sent half a header block, was held for
good; a 256 MiB unfinished header block was buffered; nothing capped connections, and beyond
the open-files limit the API answered text/plain 500s. Every limit here is set short or
small, and nothing is timed: each test waits for the server's own answer (or its close).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smlocal.emulator.background import serve_in_background
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.http_guard import HttpLimits
from smlocal.emulator.server import ServeOptions
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.spec import build_spec
from smlocal.emulator.state import StateDir
from tests.harness import runtime_client
from tests.unit.fakes import FakeBackend, FakeImage

SHORT = HttpLimits(
    header_timeout_s=0.5, body_timeout_s=0.5, max_header_bytes=8 * 1024, max_connections=4
)
WAIT_S = 60  # how long a test waits for the server's answer before it fails


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend({"echo": FakeImage()})


@pytest.fixture
def url(backend: FakeBackend, tmp_path: Path) -> Iterator[str]:
    spec = build_spec(name="ep", variants=[{"image": "echo"}])
    options = ServeOptions(
        port=0, settings=MonitorSettings(), state=StateDir(tmp_path), http_limits=SHORT
    )
    with serve_in_background(spec, backend, options) as handle:
        assert handle.status == "InService"
        yield handle.url


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT_S)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _aws_error(answer: bytes) -> tuple[int, str, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    return int(lines[0].split()[1]), headers["x-amzn-errortype"], json.loads(body)


def _request(path: str = "/endpoints/ep/invocations", body: bytes = b"{}") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _invocations(backend: FakeBackend) -> int:
    return sum(1 for c in backend.containers.values() for r in c.requests if r[0] != "/ping")


def test_half_a_header_block_gets_request_timeout(url: str) -> None:
    with _connect(url) as sock:
        sock.sendall(b"POST /endpoints/ep/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        status, code, payload = _aws_error(_read_all(sock))
    assert (status, code) == (408, "RequestTimeoutException")
    assert "did not arrive within 0.5 s" in payload["message"]


def test_a_connection_that_never_speaks_is_closed(url: str) -> None:
    with _connect(url) as sock:
        assert _read_all(sock) == b""


def test_a_body_that_stops_arriving_ends_the_connection_unforwarded(
    url: str, backend: FakeBackend
) -> None:
    with _connect(url) as sock:
        sock.sendall(_request(body=b"x" * 100)[:-90])  # headers and 10 of 100 body bytes
        assert _read_all(sock) == b""
    assert _invocations(backend) == 0
    with _connect(url) as sock:  # and the next client is served
        sock.sendall(_request())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def _answered_once(sock: socket.socket) -> None:
    """One whole request answered on ``sock``, which stays open (keep-alive)."""
    sock.sendall(_request())
    answer = b""
    while b"\r\n\r\n{}" not in answer:  # the echo fixture answers the body, "{}"
        chunk = sock.recv(65536)
        assert chunk, "the connection closed after its first answer"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_half_a_header_block_on_a_kept_alive_connection_gets_request_timeout(
    url: str,
) -> None:
    # Its timer is armed by the read that left the block unfinished, not at the connect.
    with _connect(url) as sock:
        _answered_once(sock)
        sock.sendall(b"POST /endpoints/ep/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        status, code, payload = _aws_error(_read_all(sock))
    assert (status, code) == (408, "RequestTimeoutException")
    assert "did not arrive within 0.5 s" in payload["message"]


def test_a_body_that_stops_on_a_kept_alive_connection_ends_it_unforwarded(
    url: str, backend: FakeBackend
) -> None:
    with _connect(url) as sock:
        _answered_once(sock)
        sock.sendall(_request(body=b"y" * 100)[:-90])
        assert _read_all(sock) == b""
    assert not any(
        body.startswith(b"y") for c in backend.containers.values() for _, _, body in c.requests
    )


def test_a_header_block_over_the_cap_is_refused(url: str) -> None:
    with _connect(url) as sock:
        sock.sendall(b"POST /endpoints/ep/invocations HTTP/1.1\r\nX-Big: " + b"a" * 9 * 1024)
        status, code, payload = _aws_error(_read_all(sock))
    assert (status, code) == (400, "MalformedHttpRequestException")
    assert "larger than 8192 bytes" in payload["message"]


def test_a_whole_header_block_over_the_cap_in_one_read_is_refused(
    url: str, backend: FakeBackend
) -> None:
    """The block and its body in one send: the parser has it all before data_received's own
    check could run, so the parsed headers are counted (it was served at 60-70 KiB over a
    64 KiB cap)."""
    with _connect(url) as sock:
        request = _request()
        padding = b"X-Big: " + b"a" * (9 * 1024) + b"\r\n"
        sock.sendall(request.replace(b"\r\n\r\n", b"\r\n" + padding + b"\r\n", 1))
        status, code, payload = _aws_error(_read_all(sock))
    assert (status, code) == (400, "MalformedHttpRequestException")
    assert "larger than 8192 bytes" in payload["message"]
    assert _invocations(backend) == 0


def test_a_header_block_just_under_the_cap_is_served(url: str) -> None:
    with _connect(url) as sock:
        request = _request()
        padding = b"X-Pad: " + b"a" * (8 * 1024 - len(request) - 20) + b"\r\n"
        sock.sendall(request.replace(b"\r\n\r\n", b"\r\n" + padding + b"\r\n", 1))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_an_endless_header_block_is_cut_off_at_the_default_cap(
    backend: FakeBackend, tmp_path: Path
) -> None:
    spec = build_spec(name="ep", variants=[{"image": "echo"}])
    options = ServeOptions(port=0, settings=MonitorSettings(), state=StateDir(tmp_path))
    sent = 0
    with serve_in_background(spec, backend, options) as handle, _connect(handle.url) as sock:
        sock.sendall(b"POST /endpoints/ep/invocations HTTP/1.1\r\nX-Big: ")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < 256 * 1024 * 1024:
                sock.sendall(b"a" * 65536)
                sent += 65536
        # The kernel's buffers hold a few MiB at most: the server stopped reading long before.
        assert sent < 32 * 1024 * 1024


def _served(sock: socket.socket) -> bool:
    """One whole request and answer on a kept-alive connection: True when it was a 200."""
    sock.sendall(_request())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head.startswith(b"HTTP/1.1 200 ")


def test_beyond_the_connection_limit_is_service_unavailable_and_the_others_are_served(
    url: str,
) -> None:
    held = [_connect(url) for _ in range(4)]
    try:
        assert all(_served(sock) for sock in held)  # 4 keep-alive connections, all open
        with _connect(url) as extra:
            extra.sendall(_request())
            status, code, _ = _aws_error(_read_all(extra))
        assert (status, code) == (503, "ServiceUnavailable")
        client: Any = runtime_client(url)
        with pytest.raises(client.exceptions.ServiceUnavailable):
            client.invoke_endpoint(EndpointName="ep", Body=b"{}")
        assert all(_served(sock) for sock in held)  # the open ones keep being served
    finally:
        for sock in held[1:]:
            sock.close()
    held[0].close()
    client = runtime_client(url)
    for _ in range(200):  # the server sees the closes soon; no timing is asserted
        with contextlib.suppress(client.exceptions.ServiceUnavailable):
            assert client.invoke_endpoint(EndpointName="ep", Body=b"{}")["Body"].read() == b"{}"
            break
    else:
        pytest.fail("a client was never served again after the held connections closed")


def test_the_service_has_the_same_limits(tmp_path: Path) -> None:
    backend = FakeBackend({})
    with (
        service_in_background(backend, state=StateDir(tmp_path), http_limits=SHORT) as url,
        _connect(url) as sock,
    ):
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: SageMaker.List")
        status, code, _ = _aws_error(_read_all(sock))
    assert (status, code) == (408, "RequestTimeoutException")


def test_errors_need_no_file_once_the_api_is_up() -> None:
    """Out of file descriptors, an error must still be answerable: botocore's tables are read
    when the runtime API is made, not at the first error (which then failed with EMFILE)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import builtins, errno, io
        from multidict import CIMultiDict
        from smlocal.emulator.runtime_api import RuntimeApi
        RuntimeApi({})

        def no_fd(*args, **kwargs):
            raise OSError(errno.EMFILE, "Too many open files")

        builtins.open = io.open = no_fd
        from smlocal.emulator.answer_headers import answer_header_problem
        from smlocal.emulator.aws_errors import AwsError, service_unavailable
        from smlocal.emulator.request_rules import invoke_rules
        from smlocal.emulator.runtime_routes import route
        for code in ("ValidationError", "ModelError", "ServiceUnavailable", "InternalFailure",
                     "RequestTimeoutException", "MalformedHttpRequestException"):
            AwsError(code, "x").status
        service_unavailable("x").body()
        try:
            route("GET", "/nope")
        except AwsError as error:
            assert error.status == 404
        try:
            invoke_rules().check_endpoint_name("a/b")
        except AwsError as error:
            assert error.status == 400
        assert answer_header_problem(CIMultiDict({"Content-Type": "é"}))
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
