"""A client that disconnects mid-body: the part that came is never forwarded (issue 11, 6)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.service.client import sagemaker_client, wait_until_settled
from smlocal.emulator.state import StateDir
from tests.unit.fakes import FakeBackend, FakeImage

FAST = MonitorSettings(ping_interval_s=0.2, stop_grace_s=1)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, FakeBackend]]:
    backend = FakeBackend({"echo:1": FakeImage()})
    with service_in_background(backend, state=StateDir(tmp_path), settings=FAST) as url:
        client = sagemaker_client(url)
        client.create_model(ModelName="m", PrimaryContainer={"Image": "echo:1"})
        client.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[{"VariantName": "A", "ModelName": "m",
                                 "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        )  # fmt: skip
        client.create_endpoint(EndpointName="cut", EndpointConfigName="c")
        wait_until_settled(client, "cut", lambda _s, _r: None, poll_s=0.05)
        yield url, backend


def _invocations(backend: FakeBackend) -> list[Any]:
    return [r for c in backend.containers.values() for r in c.requests if r[0] != "/ping"]


@pytest.mark.parametrize(
    "path", ["/endpoints/cut/invocations", "/endpoints/cut/invocations-response-stream"]
)
def test_half_a_body_then_gone_is_not_forwarded(
    service: tuple[str, FakeBackend], path: str
) -> None:
    url, backend = service
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode()
            + b'{"only": "part'
        )
        time.sleep(0.2)
    time.sleep(0.5)
    assert _invocations(backend) == []
    # and the endpoint still serves whole requests
    with socket.create_connection((host, int(port))) as sock:
        body = b'{"whole": 1}'
        sock.sendall(
            f"POST /endpoints/cut/invocations HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert len(_invocations(backend)) == 1


def test_a_slow_upload_is_not_overhead_latency(service: tuple[str, FakeBackend]) -> None:
    """OverheadLatency starts once the whole request is in (issue 11, 11): a client that
    takes 0.6 s to send its body does not make smlocal look 0.6 s slow."""
    import urllib.request

    url, _ = service
    host, port = url.removeprefix("http://").split(":")
    body = b'{"x": 1}'
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST /endpoints/cut/invocations HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:3]
        )
        time.sleep(0.6)
        sock.sendall(body[3:])
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    with urllib.request.urlopen(f"{url}/metrics") as answer:
        text = answer.read().decode()
    (line,) = [
        row for row in text.splitlines()
        if row.startswith("smlocal_overhead_latency_microseconds_sum") and 'endpoint="cut"' in row
    ]  # fmt: skip
    assert float(line.split()[-1]) < 300_000  # µs: the 0.6 s upload is not in it
