"""InvokeEndpoint's input as SageMaker judges it, through boto3 and the fake backend: every
broken constraint in one aggregated ValidationError, and headers for features the endpoint
lacks refused instead of forwarded and answered 200."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.unit.fakes import FakeBackend, FakeImage
from tests.unit.one_endpoint import one_endpoint


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[tuple[Any, FakeBackend]]:
    backend = FakeBackend({"echo:1": FakeImage()})
    # client_validation off: the service judges, as AWS does
    with one_endpoint(backend, tmp_path, "echo:1", client_validation=False) as (_, rt):
        yield rt, backend


def _error(call: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


def test_every_broken_constraint_is_reported_at_once(runtime: tuple[Any, FakeBackend]) -> None:
    rt, backend = runtime
    code, message = _error(
        lambda: rt.invoke_endpoint(
            EndpointName="ep",
            Body=b"x",
            ContentType="t" * 1025,
            SessionId="not a session",
            InferenceId="",
        )
    )
    assert code == "ValidationError"
    # an empty InferenceId breaks two constraints (min length 1, the pattern): 4 in all
    assert message.startswith("4 validation errors detected: ")
    assert message.count("failed to satisfy constraint") == 4
    for member in ("contentType", "sessionId", "inferenceId"):
        assert f"at '{member}'" in message
    code, message = _error(
        lambda: rt.invoke_endpoint(EndpointName="ep", Body=b"x", CustomAttributes="a" * 1025)
    )
    assert message == (
        "1 validation error detected: Value '***' at 'customAttributes' failed to satisfy "
        "constraint: Member must have length less than or equal to 1024"
    )
    assert not any(c.requests for c in backend.containers.values())  # nothing forwarded


@pytest.mark.parametrize(
    ("member", "value", "text"),
    [
        (
            "TargetContainerHostname",
            "c1",
            "is not configured for direct invocation of its containers",
        ),
        ("InferenceComponentName", "ic-1", "has no inference components"),
        ("EnableExplanations", "`true`", "is not configured with a ClarifyExplainerConfig"),
    ],
)
def test_headers_for_features_the_endpoint_lacks_are_refused(
    runtime: tuple[Any, FakeBackend], member: str, value: str, text: str
) -> None:
    rt, backend = runtime
    code, message = _error(
        lambda: rt.invoke_endpoint(EndpointName="ep", Body=b"x", **{member: value})
    )
    assert code == "ValidationError"
    assert message.startswith(f"Endpoint ep {text} and does not support ")
    if member != "EnableExplanations":  # the response stream has the other two
        code, message = _error(
            lambda: rt.invoke_endpoint_with_response_stream(
                EndpointName="ep", Body=b"x", **{member: value}
            )
        )
        assert code == "ValidationError" and text in message
    assert not any(c.requests for c in backend.containers.values())
    assert rt.invoke_endpoint(EndpointName="ep", Body=b"fine")["Body"].read() == b"fine"


def _too_big(
    method: str, path: str, headers: Any, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    if path == "/ping":
        return 200, {}, b""
    return 200, {"content-type": "text/csv"}, b"1\n" * (3 * 1024 * 1024 + 1)  # 6 MiB + 2


def test_an_answer_over_6_mib_says_it_was_answered(tmp_path: Path) -> None:
    """Not "server error (0)", which reads as if nothing had answered (issue 11, 11)."""
    backend = FakeBackend({"big:1": FakeImage(handler=_too_big)})
    with (
        one_endpoint(backend, tmp_path, "big:1", name="big") as (_, rt),
        pytest.raises(ClientError) as caught,
    ):
        rt.invoke_endpoint(EndpointName="big", Body=b"x")
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 200
    assert error["Error"]["Message"].startswith(
        "Received an invalid response from primary: its body is larger than the 6291456-byte "
        "limit of InvokeEndpoint's answer."
    )
