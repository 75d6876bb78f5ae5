"""Every answer on the API port is AWS-shaped, and every route has the real one's limits
(issue 11, defect 8): names with ``/`` (``a/b``, ``a%2Fb``), wrong methods, unknown paths, the
``/invocations`` and ``/ping`` shortcuts, and a bug inside smlocal.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smlocal.emulator.asgi_errors import AwsShaped
from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.runtime_routes import route
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.service.client import sagemaker_client, wait_until_settled
from smlocal.emulator.shortcuts import first_in_service
from smlocal.emulator.spec import build_spec
from smlocal.emulator.state import StateDir
from tests.harness import Serving, runtime_client, serving
from tests.unit.fakes import FakeBackend, FakeImage

SIX_MIB = 6 * 1024 * 1024
UNKNOWN = "UnknownOperationException"
MALFORMED = "MalformedHttpRequestException"  # what the HTTP parser refuses (e.g. "get")


@pytest.fixture(scope="module")
def backend() -> FakeBackend:
    return FakeBackend({"echo": FakeImage()})


@pytest.fixture(scope="module")
def endpoint(backend: FakeBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    spec = build_spec(name="ep", variants=[{"image": "echo"}])
    with serving(spec, backend, tmp_path_factory.mktemp("routes")) as handle:
        assert handle.status == "InService"
        yield handle


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    backend = FakeBackend({"echo:1": FakeImage()})
    settings = MonitorSettings(ping_interval_s=0.2, stop_grace_s=1)
    state = StateDir(tmp_path_factory.mktemp("routes-service"))
    with service_in_background(backend, state=state, settings=settings) as url:
        client = sagemaker_client(url)
        client.create_model(ModelName="m", PrimaryContainer={"Image": "echo:1"})
        client.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[{"VariantName": "A", "ModelName": "m",
                                 "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        )  # fmt: skip
        client.create_endpoint(EndpointName="ep", EndpointConfigName="c")
        wait_until_settled(client, "ep", lambda _s, _r: None, poll_s=0.05)
        yield url


def _raw(url: str, method: str, path: str, body: bytes = b"", **headers: str) -> Any:
    """One request with ``path`` sent exactly as given (httpx would normalise it)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def _assert_aws_error(answer: Any, status: int, code: str) -> dict[str, Any]:
    got, headers, body = answer
    assert (got, headers.get("x-amzn-errortype")) == (status, code), body
    assert headers["content-type"] == "application/json"
    payload: dict[str, Any] = json.loads(body)
    assert payload["__type"] == code
    return payload


NOT_ROUTES = [
    ("POST", "/endpoints/a/b/invocations"),
    ("POST", "/endpoints/ep/invocations/"),
    ("POST", "/endpoints/ep/invocations/extra"),
    ("POST", "/endpoints/ep"),
    ("POST", "/endpoints/"),
    ("GET", "/endpoints/ep/invocations"),
    ("PUT", "/endpoints/ep/invocations"),
    ("DELETE", "/endpoints/ep/invocations"),
    ("PATCH", "/endpoints/ep/invocations-response-stream"),
    ("GET", "/endpoints/ep/async-invocations"),
    ("POST", "/ping"),
    ("GET", "/invocations"),
    ("POST", "/metrics"),
    ("GET", "/"),
    ("POST", "/"),
    ("GET", "/favicon.ico"),
]


@pytest.mark.parametrize(("method", "path"), NOT_ROUTES)
def test_no_route_is_unknown_operation_404(endpoint: Serving, method: str, path: str) -> None:
    payload = _assert_aws_error(_raw(endpoint.url, method, path), 404, UNKNOWN)
    assert f"serves no {method} {path};" in payload["message"]
    assert "POST /endpoints/{EndpointName}/invocations" in payload["message"]


@pytest.mark.parametrize(("method", "path"), NOT_ROUTES)
def test_the_service_answers_alike(service: str, method: str, path: str) -> None:
    _assert_aws_error(_raw(service, method, path), 404, UNKNOWN)


@pytest.mark.parametrize(
    "path",
    [
        "/endpoints/a%2Fb/invocations",
        "/endpoints/a%2fb/invocations-response-stream",
        "/endpoints/a%2Fb/async-invocations",
        "/endpoints/%2F/invocations",
        "/endpoints/%ff/invocations",
    ],
)
def test_an_encoded_slash_in_a_name_is_the_name_rule(endpoint: Serving, path: str) -> None:
    payload = _assert_aws_error(_raw(endpoint.url, "POST", path), 400, "ValidationError")
    assert "at 'endpointName' failed to satisfy constraint" in payload["message"]


def test_boto3_with_a_slash_in_the_name_gets_a_modelled_validation_error(
    endpoint: Serving, service: str
) -> None:
    for url in (endpoint.url, service):
        client: Any = runtime_client(url)
        with pytest.raises(client.exceptions.ValidationError) as caught:
            client.invoke_endpoint(EndpointName="a/b", Body=b"{}")
        assert "Value 'a/b' at 'endpointName'" in caught.value.response["Error"]["Message"]


def test_an_encoded_slash_reaches_the_async_route_of_the_service_as_a_name(service: str) -> None:
    answer = _raw(service, "POST", "/endpoints/a%2Fb/async-invocations")
    _assert_aws_error(answer, 400, "ValidationError")


def test_the_invocations_shortcut_has_invoke_endpoints_body_limit(
    endpoint: Serving, backend: FakeBackend
) -> None:
    before = sum(len(c.requests) for c in backend.containers.values())
    answer = httpx.post(f"{endpoint.url}/invocations", content=b"x" * (SIX_MIB + 1))
    assert answer.status_code == 400
    assert answer.headers["x-amzn-errortype"] == "ValidationError"
    assert "oversize body" in answer.json()["message"]
    assert sum(len(c.requests) for c in backend.containers.values()) == before
    assert httpx.post(f"{endpoint.url}/invocations", content=b"x" * SIX_MIB).status_code == 200


def test_the_invocations_shortcut_forwards_only_sagemakers_headers(
    endpoint: Serving, backend: FakeBackend
) -> None:
    answer = httpx.post(
        f"{endpoint.url}/invocations",
        content=b"{}",
        headers={
            "content-type": "application/json",
            "x-amzn-sagemaker-custom-attributes": "echo-headers=1",
            "authorization": "AWS4-HMAC-SHA256 Credential=secret",
            "cookie": "session=1",
            "x-forwarded-for": "10.0.0.1",
        },
    )
    assert answer.status_code == 200
    seen = answer.json()
    assert seen["content-type"] == "application/json"
    assert {"authorization", "cookie", "x-forwarded-for"}.isdisjoint(seen)
    assert answer.headers["x-amzn-invoked-production-variant"] == "AllTraffic"


def test_the_invocations_shortcut_checks_headers_and_maps_container_errors(
    endpoint: Serving,
) -> None:
    too_long = {"x-amzn-sagemaker-custom-attributes": "a" * 1025}
    answer = httpx.post(f"{endpoint.url}/invocations", content=b"{}", headers=too_long)
    assert answer.headers["x-amzn-errortype"] == "ValidationError"
    failing = {"x-amzn-sagemaker-custom-attributes": "status=500"}
    answer = httpx.post(f"{endpoint.url}/invocations", content=b"{}", headers=failing)
    assert (answer.status_code, answer.headers["x-amzn-errortype"]) == (424, "ModelError")
    assert answer.json()["OriginalStatusCode"] == 500


def test_the_ping_shortcut_is_the_containers_ping(endpoint: Serving) -> None:
    answer = httpx.get(f"{endpoint.url}/ping", headers={"cookie": "x"})
    assert (answer.status_code, answer.content) == (200, b"")


def test_no_endpoint_in_service_is_service_unavailable() -> None:
    with pytest.raises(AwsError) as caught:
        first_in_service({})
    assert (caught.value.code, caught.value.status) == ("ServiceUnavailable", 503)


def test_a_bug_inside_smlocal_is_internal_failure_not_text() -> None:
    import asyncio

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug")

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/x"}
    asyncio.run(AwsShaped(broken)(scope, receive, send))
    assert sent[0]["status"] == 500
    assert (b"x-amzn-errortype", b"InternalFailure") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["__type"] == "InternalFailure"


_METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "get"])
_PIECES = [*"abAB09-_.~%2Ffz", "%2F", "%20", "%ff", "..", "/", "ep"]
_SEGMENT = st.lists(st.sampled_from(_PIECES), max_size=6).map("".join)
_PATHS = st.one_of(
    st.builds(lambda s: f"/endpoints/{s}/invocations", _SEGMENT),
    st.builds(lambda s, t: f"/endpoints/{s}/{t}", _SEGMENT, _SEGMENT),
    st.builds(lambda s: f"/{s}", _SEGMENT),
)


@given(method=_METHODS, path=_PATHS)
def test_route_is_a_route_or_unknown_operation(method: str, path: str) -> None:
    try:
        found = route(method, path)
    except AwsError as error:
        assert (error.code, error.status) == (UNKNOWN, 404)
    else:
        assert found.operation
        if found.endpoint_name is not None:
            assert method == "POST"


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(method=_METHODS, path=_PATHS)
def test_every_answer_on_the_port_is_aws_shaped(endpoint: Serving, method: str, path: str) -> None:
    status, headers, body = _raw(endpoint.url, method, path, b"{}")
    if status == 200:  # the shortcuts, metrics, status, or an invocation that matched "ep"
        return
    assert headers.get("content-type") == "application/json", (status, body)
    assert headers["x-amzn-errortype"] in (UNKNOWN, "ValidationError", MALFORMED)
    if method != "HEAD":
        assert json.loads(body)["__type"] == headers["x-amzn-errortype"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"get /ping HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nBad\r\n\r\n",
    ],
)
def test_a_request_the_parser_refuses_is_malformed_http_request(
    endpoint: Serving, request_bytes: bytes
) -> None:
    import socket

    host, port = endpoint.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request_bytes)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"x-amzn-errortype: MalformedHttpRequestException" in head
    assert json.loads(body)["__type"] == "MalformedHttpRequestException"
