"""The runtime API over real HTTP with boto3, against fake containers (no Docker)."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.spec import build_spec
from tests.harness import Serving, serving
from tests.unit.fakes import FakeBackend, FakeImage

SIX_MIB = 6 * 1024 * 1024


def unsupported_type(
    method: str, path: str, headers: Any, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    if path == "/ping":
        return 200, {}, b""
    if headers.get("content-type") != "application/json":
        return 415, {"content-type": "text/plain"}, b"only application/json is supported"
    return 200, {"content-type": "application/json"}, b'{"ok": true}'


@pytest.fixture()
def backend() -> FakeBackend:
    return FakeBackend(
        {
            "echo": FakeImage(),
            "json-only": FakeImage(handler=unsupported_type),
            "variant-b": FakeImage(),
        }
    )


@pytest.fixture()
def endpoint(backend: FakeBackend, tmp_path: Path) -> Iterator[Serving]:
    spec = build_spec(name="echo-ep", variants=[{"image": "echo", "instance_count": 2}])
    with serving(spec, backend, tmp_path) as handle:
        assert handle.status == "InService"
        yield handle


def test_invoke_returns_container_body_and_aws_headers(endpoint: Serving) -> None:
    client: Any = endpoint.runtime_client()
    response = client.invoke_endpoint(
        EndpointName="echo-ep",
        Body=b'{"instances": [[1, 2]]}',
        ContentType="application/json",
        CustomAttributes="trace=abc",
    )
    assert response["Body"].read() == b'{"instances": [[1, 2]]}'
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["CustomAttributes"] == "trace=abc"


def test_unknown_endpoint_is_the_validation_error_sagemaker_gives(endpoint: Serving) -> None:
    client: Any = endpoint.runtime_client()
    with pytest.raises(client.exceptions.ValidationError) as caught:
        client.invoke_endpoint(EndpointName="nope", Body=b"{}", ContentType="application/json")
    assert caught.value.response["Error"]["Message"] == (
        "Endpoint nope of account 000000000000 not found."
    )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_body_over_6_mib_is_refused_before_the_container(
    endpoint: Serving, backend: FakeBackend
) -> None:
    client: Any = endpoint.runtime_client()
    with pytest.raises(client.exceptions.ValidationError) as caught:
        client.invoke_endpoint(EndpointName="echo-ep", Body=b"x" * (SIX_MIB + 1))
    assert "oversize body" in caught.value.response["Error"]["Message"]
    assert not any(c.requests for c in backend.containers.values())


def test_body_of_exactly_6_mib_passes(endpoint: Serving) -> None:
    client: Any = endpoint.runtime_client()
    response = client.invoke_endpoint(EndpointName="echo-ep", Body=b"y" * SIX_MIB)
    assert len(response["Body"].read()) == SIX_MIB


def test_chunked_body_over_limit_is_refused(endpoint: Serving) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(7):
            yield b"z" * (1024 * 1024)

    answer = httpx.post(f"{endpoint.url}/endpoints/echo-ep/invocations", content=chunks())
    assert answer.status_code == 400
    assert answer.headers["x-amzn-errortype"] == "ValidationError"


def test_container_4xx_becomes_model_error_with_original_status(
    backend: FakeBackend, tmp_path: Path
) -> None:
    spec = build_spec(name="strict", variants=[{"image": "json-only"}])
    with serving(spec, backend, tmp_path) as handle:
        client: Any = handle.runtime_client()
        with pytest.raises(client.exceptions.ModelError) as caught:
            client.invoke_endpoint(EndpointName="strict", Body=b"a,b", ContentType="text/plain")
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 415
    assert response["OriginalMessage"] == "only application/json is supported"
    assert response["LogStreamArn"].startswith("arn:aws:logs:")
    assert "Received client error (415) from primary" in response["Error"]["Message"]


def test_container_5xx_is_a_server_model_error(endpoint: Serving) -> None:
    client: Any = endpoint.runtime_client()
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName="echo-ep", Body=b"{}", CustomAttributes="status=503")
    assert caught.value.response["OriginalStatusCode"] == 503
    assert "Received server error (503)" in caught.value.response["Error"]["Message"]


def test_slow_container_times_out_as_model_error(backend: FakeBackend, tmp_path: Path) -> None:
    spec = build_spec(name="slow", variants=[{"image": "echo"}], invocation_timeout_s=0.5)
    with serving(spec, backend, tmp_path) as handle:
        client: Any = handle.runtime_client()
        with pytest.raises(client.exceptions.ModelError) as caught:
            client.invoke_endpoint(EndpointName="slow", Body=b"{}", CustomAttributes="sleep=2")
    assert "timed out" in caught.value.response["Error"]["Message"]
    assert "OriginalStatusCode" not in caught.value.response


def test_header_too_long_is_a_validation_error(endpoint: Serving) -> None:
    client: Any = endpoint.runtime_client()
    with pytest.raises(client.exceptions.ValidationError) as caught:
        client.invoke_endpoint(EndpointName="echo-ep", Body=b"{}", CustomAttributes="a" * 1025)
    message = caught.value.response["Error"]["Message"]
    assert "customAttributes" in message
    assert "less than or equal to 1024" in message
    assert "aaaa" not in message  # sensitive values are not echoed


def test_only_modelled_headers_reach_the_container(endpoint: Serving, backend: FakeBackend) -> None:
    answer = httpx.post(
        f"{endpoint.url}/endpoints/echo-ep/invocations",
        content=b"{}",
        headers={
            "content-type": "application/json",
            "accept": "application/json",
            "x-unknown-header": "dropped",
            "x-amzn-sagemaker-inference-id": "req-1",
        },
    )
    assert answer.status_code == 200
    seen = [headers for c in backend.containers.values() for _, headers, _ in c.requests]
    assert seen
    assert seen[-1]["accept"] == "application/json"
    assert seen[-1]["x-amzn-sagemaker-inference-id"] == "req-1"
    assert "x-unknown-header" not in seen[-1]


def test_requests_round_robin_across_instances(endpoint: Serving, backend: FakeBackend) -> None:
    client: Any = endpoint.runtime_client()
    for _ in range(10):
        client.invoke_endpoint(EndpointName="echo-ep", Body=b"{}")
    counts = sorted(len(c.requests) for c in backend.containers.values())
    assert counts == [5, 5]


def test_variants_split_by_weight_and_target_variant_pins(
    backend: FakeBackend, tmp_path: Path
) -> None:
    spec = build_spec(
        name="ab",
        variants=[
            {"name": "A", "image": "echo", "weight": 3},
            {"name": "B", "image": "variant-b", "weight": 1},
        ],
    )
    with serving(spec, backend, tmp_path) as handle:
        client: Any = handle.runtime_client()
        seen = collections.Counter(
            client.invoke_endpoint(EndpointName="ab", Body=b"{}")["InvokedProductionVariant"]
            for _ in range(200)
        )
        pinned = {
            client.invoke_endpoint(EndpointName="ab", Body=b"{}", TargetVariant="B")[
                "InvokedProductionVariant"
            ]
            for _ in range(10)
        }
        with pytest.raises(client.exceptions.ValidationError):
            client.invoke_endpoint(EndpointName="ab", Body=b"{}", TargetVariant="C")
    assert pinned == {"B"}
    assert 110 <= seen["A"] <= 185, seen  # 150 expected; wide bounds keep this deterministic enough


def test_metrics_count_invocations_and_errors(endpoint: Serving) -> None:
    client: Any = endpoint.runtime_client()
    client.invoke_endpoint(EndpointName="echo-ep", Body=b"{}")
    with pytest.raises(ClientError):
        client.invoke_endpoint(EndpointName="echo-ep", Body=b"{}", CustomAttributes="status=400")
    with pytest.raises(ClientError):
        client.invoke_endpoint(EndpointName="echo-ep", Body=b"{}", CustomAttributes="status=500")
    text = httpx.get(f"{endpoint.url}/metrics").text
    labels = 'endpoint="echo-ep",variant="AllTraffic"'
    assert f"smlocal_invocations_total{{{labels}}} 3" in text
    assert f"smlocal_invocation_4xx_errors_total{{{labels}}} 1" in text
    assert f"smlocal_invocation_5xx_errors_total{{{labels}}} 1" in text
    assert f"smlocal_model_latency_microseconds_count{{{labels}}} 3" in text


def test_plain_ping_and_invocations_pass_through_for_curl(endpoint: Serving) -> None:
    assert httpx.get(f"{endpoint.url}/ping").status_code == 200
    answer = httpx.post(
        f"{endpoint.url}/invocations", content=b"hello", headers={"content-type": "text/plain"}
    )
    assert answer.status_code == 200
    assert answer.content == b"hello"


def test_status_route_describes_the_endpoint(endpoint: Serving) -> None:
    described = httpx.get(f"{endpoint.url}/smlocal/endpoints").json()["Endpoints"][0]
    assert described["EndpointStatus"] == "InService"
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 2


def test_async_invocation_on_a_realtime_endpoint_is_refused(endpoint: Serving) -> None:
    client: Any = endpoint.runtime_client()
    with pytest.raises(client.exceptions.ValidationError) as caught:
        client.invoke_endpoint_async(EndpointName="echo-ep", InputLocation="s3://b/k")
    assert "asynchronous" in caught.value.response["Error"]["Message"]


def test_invalid_endpoint_name_is_refused_with_the_pattern(endpoint: Serving) -> None:
    answer = httpx.post(f"{endpoint.url}/endpoints/bad_name/invocations", content=b"{}")
    assert answer.status_code == 400
    assert "regular expression pattern" in json.loads(answer.content)["Message"]


def test_unhealthy_instance_is_replaced(tmp_path: Path) -> None:
    backend = FakeBackend({"flaky": FakeImage(healthy_pings=2)})
    spec = build_spec(name="flaky", variants=[{"image": "flaky"}])
    settings = MonitorSettings(ping_interval_s=0.05, unhealthy_after=2)
    with serving(spec, backend, tmp_path, settings=settings):
        deadline = __import__("time").monotonic() + 10
        while len(backend.containers) < 2 and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.05)
    assert len(backend.containers) >= 2
    assert backend.stopped  # the unhealthy one was stopped


def _stream(client: Any, **params: Any) -> tuple[dict[str, Any], list[bytes]]:
    response = client.invoke_endpoint_with_response_stream(EndpointName="echo-ep", **params)
    parts = [event["PayloadPart"]["Bytes"] for event in response["Body"]]
    return response, parts


def test_response_stream_delivers_chunks_as_payload_parts(endpoint: Serving) -> None:
    client: Any = endpoint.runtime_client()
    body = b"0123456789" * 30
    response, parts = _stream(client, Body=body, CustomAttributes="stream=3")
    assert b"".join(parts) == body
    assert len(parts) >= 2
    assert response["ContentType"] == "text/plain"
    assert response["InvokedProductionVariant"] == "AllTraffic"


def test_response_stream_accept_reaches_the_container_as_accept(endpoint: Serving) -> None:
    client: Any = endpoint.runtime_client()
    _, parts = _stream(
        client, Body=b"{}", Accept="application/jsonlines", CustomAttributes="echo-headers=1"
    )
    seen = json.loads(b"".join(parts))
    assert seen["accept"] == "application/jsonlines"
    assert "x-amzn-sagemaker-accept" not in seen


def test_response_stream_container_error_is_a_model_error(
    backend: FakeBackend, tmp_path: Path
) -> None:
    spec = build_spec(name="strict-stream", variants=[{"image": "json-only"}])
    with serving(spec, backend, tmp_path) as handle:
        client: Any = handle.runtime_client()
        with pytest.raises(client.exceptions.ModelError) as caught:
            client.invoke_endpoint_with_response_stream(
                EndpointName="strict-stream", Body=b"x", ContentType="text/plain"
            )
    assert caught.value.response["OriginalStatusCode"] == 415


def test_response_stream_broken_midway_is_a_model_stream_error(endpoint: Serving) -> None:
    from botocore.exceptions import EventStreamError

    client: Any = endpoint.runtime_client()
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="echo-ep", Body=b"abcdef" * 100, CustomAttributes="stream=4,break=1"
    )
    with pytest.raises(EventStreamError) as caught:
        for _ in response["Body"]:
            pass
    assert caught.value.response["Error"]["Code"] == "ModelStreamError"
