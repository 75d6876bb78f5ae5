"""The service refuses what only a web page sends (DNS rebinding, cross-site posts), on loopback."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.service.origin_guard import refusal
from smlocal.emulator.state import StateDir
from tests.unit.fakes import FakeBackend, FakeImage


def scope(host: str | None, origin: str | None = None, server: str = "127.0.0.1") -> dict:
    headers = [(b"host", host.encode())] if host is not None else []
    headers += [(b"origin", origin.encode())] if origin is not None else []
    return {"type": "http", "server": (server, 8080), "headers": headers}


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:8080", "127.0.0.1", "localhost:8080", "LOCALHOST", "[::1]:8080", "127.1.2.3:9",
     "api.localhost:8080", None],
)  # fmt: skip
def test_clients_of_this_machine_pass(host: str | None) -> None:
    assert refusal(scope(host)) is None
    assert refusal(scope(host, origin="http://localhost:3000")) is None


@pytest.mark.parametrize(
    ("host", "origin", "needle"),
    [
        ("evil.example:8080", None, "DNS rebinding"),
        ("10.0.0.5:8080", None, "DNS rebinding"),
        ("127.0.0.1.evil.example", None, "DNS rebinding"),
        ("127.0.0.1:8080", "https://evil.example", "web pages"),
        ("127.0.0.1:8080", "null", "web pages"),
    ],
)
def test_what_a_web_page_sends_is_refused(host: str, origin: str | None, needle: str) -> None:
    reason = refusal(scope(host, origin))
    assert reason is not None and needle in reason


def test_a_service_shared_on_purpose_is_not_guarded() -> None:
    assert refusal(scope("my-box.lan:8080", "https://evil.example", server="0.0.0.0")) is None


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=60))
def test_any_host_header_gets_an_answer_never_an_exception(host: str) -> None:
    reason = refusal(scope(host))
    assert reason is None or "DNS rebinding" in reason


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    backend = FakeBackend({"echo:1": FakeImage()})
    settings = MonitorSettings(ping_interval_s=0.2, stop_grace_s=1)
    with service_in_background(backend, state=StateDir(tmp_path), settings=settings) as address:
        yield address


def test_the_service_answers_a_rebound_request_with_403_and_boto3_still_works(url: str) -> None:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    body = json.dumps({})
    connection.request(
        "POST",
        "/",
        body=body,
        headers={
            "Host": f"rebind.evil.example:{port}",
            "X-Amz-Target": "SageMaker.ListEndpoints",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    answer = connection.getresponse()
    assert answer.status == 403
    assert json.loads(answer.read())["__type"] == "AccessDeniedException"
    client = boto3.client(
        "sagemaker", endpoint_url=url, region_name="us-east-1",
        config=Config(signature_version=UNSIGNED),
    )  # fmt: skip
    assert client.list_endpoints()["Endpoints"] == []
