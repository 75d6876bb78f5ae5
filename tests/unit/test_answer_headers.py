"""A container's answer headers that SageMaker's response cannot carry (issue 11, defect 5).

A ``Content-Type`` or ``X-Amzn-SageMaker-Custom-Attributes`` answer with ``é`` or ``€`` (UTF-8
or Latin-1 bytes), or longer than 1024 characters, is a ModelError naming the header, never a
crash (a text/plain 500 and a traceback); an ASCII answer still goes back byte for byte.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from smlocal.emulator.answer_headers import answer_header_problem
from smlocal.emulator.spec import build_spec
from tests.harness import Serving, serving
from tests.unit.fakes import FakeBackend, FakeImage

ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
NOT_VISIBLE = "not visible US-ASCII"


class Answer:
    """What the fake container answers next: raw header bytes, sent as they are."""

    def __init__(self) -> None:
        self.headers: dict[str, bytes] = {}

    def __call__(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path == "/ping":
            return 200, {}, b""
        # http.server writes header lines in Latin-1: this sends each byte unchanged.
        return 200, {k: v.decode("latin-1") for k, v in self.headers.items()}, b'{"ok": 1}'


class Tracebacks(logging.Handler):
    """Every record logged with an exception (uvicorn's "Exception in ASGI application")."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serving, Answer]]:
    answer = Answer()
    backend = FakeBackend({"bad-headers": FakeImage(handler=answer)})
    spec = build_spec(name="bad-headers", variants=[{"image": "bad-headers"}])
    with serving(spec, backend, tmp_path_factory.mktemp("answers")) as handle:
        yield handle, answer


@pytest.fixture
def tracebacks() -> Iterator[Tracebacks]:
    handler = Tracebacks()
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


BAD = [
    pytest.param("content-type", "text/csv; note=café".encode(), NOT_VISIBLE, id="utf8-e-acute"),
    pytest.param("content-type", "text/csv; note=café".encode("latin-1"), NOT_VISIBLE, id="l1"),
    pytest.param(ATTRIBUTES, "price=5€".encode(), NOT_VISIBLE, id="utf8-euro-attributes"),
    pytest.param(ATTRIBUTES, b"a" * 1025, "1025 characters long", id="attributes-over-1024"),
    pytest.param("content-type", b"text/" + b"x" * 1020, "1025 characters long", id="type-1025"),
]


@pytest.mark.parametrize(("header", "value", "why"), BAD)
def test_unsendable_answer_header_is_a_model_error(
    served: tuple[Serving, Answer], tracebacks: Tracebacks, header: str, value: bytes, why: str
) -> None:
    handle, answer = served
    answer.headers = {"content-type": b"application/json", header: value}
    client: Any = handle.runtime_client()
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName="bad-headers", Body=b"{}")
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 200
    message = response["Error"]["Message"]
    assert message.startswith("Received an invalid response from primary: its ")
    assert header in message.lower()
    assert why in message
    assert tracebacks.records == []


@pytest.mark.parametrize(("header", "value", "why"), BAD[:3])
def test_unsendable_header_on_the_response_stream_is_a_model_error(
    served: tuple[Serving, Answer], tracebacks: Tracebacks, header: str, value: bytes, why: str
) -> None:
    handle, answer = served
    answer.headers = {"content-type": b"application/json", header: value}
    client: Any = handle.runtime_client()
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint_with_response_stream(EndpointName="bad-headers", Body=b"{}")
    assert why in caught.value.response["Error"]["Message"]
    assert tracebacks.records == []


def test_ascii_answer_headers_of_1024_characters_go_back_verbatim(
    served: tuple[Serving, Answer],
) -> None:
    handle, answer = served
    attributes = "t=" + "x" * 1022
    answer.headers = {
        "content-type": b"text/csv; charset=us-ascii",
        ATTRIBUTES: attributes.encode(),
    }
    response = handle.runtime_client().invoke_endpoint(EndpointName="bad-headers", Body=b"{}")
    assert response["ContentType"] == "text/csv; charset=us-ascii"
    assert response["CustomAttributes"] == attributes


# Header bytes a container may put on the wire (no CR/LF/NUL, which end or break the line).
_HEADER_BYTES = st.binary(min_size=1, max_size=40).filter(
    lambda raw: not set(raw) & {0, 10, 13} and raw.strip(b" \t") == raw
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=_HEADER_BYTES, header=st.sampled_from(["content-type", ATTRIBUTES]))
def test_any_answer_header_is_passed_or_a_model_error_never_a_crash(
    served: tuple[Serving, Answer], raw: bytes, header: str
) -> None:
    handle, answer = served
    answer.headers = {header: raw}
    reply = httpx.post(f"{handle.url}/endpoints/bad-headers/invocations", content=b"{}")
    assert reply.headers["content-type"] != "text/plain; charset=utf-8"
    if reply.status_code == 200:
        assert all(byte == 9 or 32 <= byte < 127 for byte in raw)
        assert reply.headers[header].encode() == raw
    else:
        assert reply.status_code == 424
        assert reply.headers["x-amzn-errortype"] == "ModelError"


@given(value=st.text(max_size=1100))
def test_the_rule_is_ascii_and_at_most_1024(value: str) -> None:
    problem = answer_header_problem(CIMultiDict({"Content-Type": value}))
    visible = all(char == "\t" or " " <= char <= "~" for char in value)
    assert (problem is None) == (visible and len(value) <= 1024)
