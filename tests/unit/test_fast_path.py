"""What the protocol-level InvokeEndpoint path must not lose, on raw sockets against the service.

Pipelining, a client that leaves mid-body (nothing forwarded), a container that closes
mid-answer (a ModelError, never a short body), Expect: 100-continue, chunked request bodies,
oversize bodies, keep-alive after an early refusal, and the service's own refusals (origin
guard) that take the ASGI path.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from smlocal.emulator import fast_path
from smlocal.emulator.runtime_api import RuntimeApi
from tests.unit.fakes import FakeBackend, FakeImage
from tests.unit.one_endpoint import one_endpoint

IMAGE = "fake/echo:1"
PATH = "/endpoints/ep/invocations"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[FakeBackend, Any, tuple[str, int]]]:
    backend = FakeBackend({IMAGE: FakeImage()})
    with one_endpoint(backend, tmp_path, IMAGE) as (_, rt):
        where = urlsplit(rt.meta.endpoint_url)
        yield backend, rt, (where.hostname or "127.0.0.1", where.port or 80)


def _request(body: bytes, path: str = PATH, extra: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def _read_answers(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``count`` whole answers (Content-Length framed) from ``sock``."""
    data = b""
    answers: list[tuple[int, dict[str, str], bytes]] = []
    sock.settimeout(10)
    while len(answers) < count:
        if b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(answers)} answers"
            data += chunk
            continue
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        if status == 100:
            answers.append((100, headers, b""))
            data = rest
            continue
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
        answers.append((status, headers, rest[:length]))
        data = rest[length:]
    return answers


def _requests_seen(backend: FakeBackend) -> list[bytes]:
    return [body for c in backend.containers.values() for path, _, body in c.requests]


def test_invoke_endpoint_takes_the_fast_path_not_the_asgi_route(
    service: tuple[FakeBackend, Any, tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, rt, _ = service
    taken = []
    original = fast_path.FastCycle.run_asgi

    async def counting(self: fast_path.FastCycle, app: object) -> None:
        taken.append(self.name)
        await original(self, app)

    async def refuse(*_: object) -> None:
        raise AssertionError("the ASGI route ran")

    monkeypatch.setattr(fast_path.FastCycle, "run_asgi", counting)
    monkeypatch.setattr(RuntimeApi, "invoke_endpoint", refuse)
    answer = rt.invoke_endpoint(EndpointName="ep", Body=b"1,2", ContentType="text/csv")
    assert answer["Body"].read() == b"1,2"
    assert answer["ContentType"] == "text/csv"
    assert answer["InvokedProductionVariant"] == "A"
    assert taken == ["ep"]


def test_pipelined_requests_are_answered_in_order_across_both_paths(
    service: tuple[FakeBackend, Any, tuple[str, int]],
) -> None:
    _, _, address = service
    with socket.create_connection(address) as sock:
        ping = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # the ASGI path, in between
        sock.sendall(_request(b"first") + ping + _request(b"second") + _request(b"third"))
        answers = _read_answers(sock, 4)
    assert [a[0] for a in answers] == [200, 200, 200, 200]
    assert [answers[i][2] for i in (0, 2, 3)] == [b"first", b"second", b"third"]


def test_a_client_that_leaves_mid_body_forwards_nothing(
    service: tuple[FakeBackend, Any, tuple[str, int]],
) -> None:
    backend, rt, address = service
    with socket.create_connection(address) as sock:
        sock.sendall(_request(b"x" * 1000)[:-990])  # headers and 10 of 1000 bytes
        time.sleep(0.2)
    time.sleep(0.5)
    assert not any(body.startswith(b"x") for body in _requests_seen(backend))
    # and the service serves on
    assert rt.invoke_endpoint(EndpointName="ep", Body=b"ok")["Body"].read() == b"ok"


def test_a_container_that_closes_mid_answer_is_a_model_error_never_a_short_body(
    service: tuple[FakeBackend, Any, tuple[str, int]],
) -> None:
    _, rt, _ = service
    with pytest.raises(ClientError) as raised:
        rt.invoke_endpoint(
            EndpointName="ep", Body=b"abcdefghijkl", CustomAttributes="stream=3,break=1"
        )
    assert raised.value.response["Error"]["Code"] == "ModelError"
    assert "connection" in raised.value.response["Error"]["Message"]


def test_expect_100_continue_gets_its_interim_answer_then_the_answer(
    service: tuple[FakeBackend, Any, tuple[str, int]],
) -> None:
    _, _, address = service
    with socket.create_connection(address) as sock:
        request = _request(b"later", extra="Expect: 100-continue\r\n")
        head, body = request.split(b"\r\n\r\n", 1)
        sock.sendall(head + b"\r\n\r\n")
        (interim,) = _read_answers(sock, 1)
        assert interim[0] == 100
        sock.sendall(body)
        ((status, _, answer),) = _read_answers(sock, 1)
    assert (status, answer) == (200, b"later")


def test_a_chunked_request_body_is_forwarded_whole(
    service: tuple[FakeBackend, Any, tuple[str, int]],
) -> None:
    backend, _, address = service
    chunks = [b"alpha,", b"beta,", b"gamma"]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with socket.create_connection(address) as sock:
        sock.sendall(head)
        for piece in (framed[:7], framed[7:20], framed[20:]):
            time.sleep(0.05)
            sock.sendall(piece)
        ((status, _, answer),) = _read_answers(sock, 1)
    assert (status, answer) == (200, b"alpha,beta,gamma")
    assert b"alpha,beta,gamma" in _requests_seen(backend)


def test_an_oversize_chunked_body_is_refused_and_not_forwarded(
    service: tuple[FakeBackend, Any, tuple[str, int]],
) -> None:
    backend, _, address = service
    piece = b"z" * (1024 * 1024)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with socket.create_connection(address) as sock:
        sock.sendall(head)
        try:
            for _ in range(8):
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the service may stop reading once it has refused
        ((status, _, answer),) = _read_answers(sock, 1)
    refusal = json.loads(answer)
    assert (status, refusal["__type"]) == (400, "ValidationError")
    assert "oversize body" in refusal["message"]
    assert not any(body.startswith(b"z") for body in _requests_seen(backend))


def test_a_refusal_before_the_body_keeps_the_connection_usable(
    service: tuple[FakeBackend, Any, tuple[str, int]],
) -> None:
    _, _, address = service
    with socket.create_connection(address) as sock:
        sock.sendall(_request(b"lost", path="/endpoints/nope/invocations") + _request(b"kept"))
        (refused, served) = _read_answers(sock, 2)
    assert refused[0] == 400
    assert json.loads(refused[2])["__type"] == "ValidationError"
    assert "Endpoint nope of account" in json.loads(refused[2])["message"]
    assert served[0] == 200 and served[2] == b"kept"


def test_the_origin_guard_still_refuses_a_web_page(
    service: tuple[FakeBackend, Any, tuple[str, int]],
) -> None:
    backend, _, address = service
    with socket.create_connection(address) as sock:
        sock.sendall(_request(b"page", extra="Origin: http://evil.example\r\n"))
        ((status, headers, _),) = _read_answers(sock, 1)
    assert status == 403 and headers["x-amzn-errortype"] == "AccessDeniedException"
    assert b"page" not in _requests_seen(backend)


def test_fast_answers_carry_the_server_wide_headers_the_asgi_ones_do(
    service: tuple[FakeBackend, Any, tuple[str, int]],
) -> None:
    _, _, address = service
    with socket.create_connection(address) as sock:
        sock.sendall(_request(b"a") + _request(b"b", path=PATH + "?asgi=1"))
        fast, general = _read_answers(sock, 2)
    assert fast[0] == general[0] == 200  # a query string takes the ASGI path
    assert "date" in fast[1] and "date" in general[1]
    assert fast[1].get("server") == general[1].get("server")
