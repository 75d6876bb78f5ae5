"""A real container answering ``é`` / ``€`` in its answer headers (issue 11, defect 5).

The ``non-ascii-headers`` fixture puts UTF-8 bytes outside US-ASCII into ``Content-Type`` and
``X-Amzn-SageMaker-Custom-Attributes``: boto3 gets a modelled ModelError naming the header
(before: a text/plain 500, an unmodelled ClientError, and uvicorn's traceback in the log),
and the endpoint keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.spec import build_spec
from tests.conftest import fixture_image
from tests.harness import Serving, serving


class _Crashes(logging.Handler):
    """Records logged with a traceback (uvicorn's "Exception in ASGI application")."""

    def __init__(self) -> None:
        super().__init__()
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.tracebacks.append(record.getMessage())


@pytest.fixture(scope="module")
def endpoint(
    docker_backend: DockerBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serving]:
    spec = build_spec(
        name="non-ascii-headers", variants=[{"image": fixture_image("non-ascii-headers")}]
    )
    with serving(spec, docker_backend, tmp_path_factory.mktemp("non-ascii")) as handle:
        assert handle.status == "InService"
        yield handle


@pytest.mark.parametrize(
    ("only", "header"),
    [
        ("content-type", "Content-Type"),
        ("custom-attributes", "X-Amzn-SageMaker-Custom-Attributes"),
        ("", "Content-Type"),
    ],
)
def test_non_ascii_answer_header_is_a_model_error(
    endpoint: Serving, only: str, header: str
) -> None:
    handler = _Crashes()
    logging.getLogger("uvicorn.error").addHandler(handler)
    client: Any = endpoint.runtime_client()
    try:
        with pytest.raises(client.exceptions.ModelError) as caught:
            client.invoke_endpoint(
                EndpointName="non-ascii-headers",
                Body=b'{"x": 1}',
                ContentType="application/json",
                CustomAttributes=f"only={only}",
            )
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
    assert handler.tracebacks == []
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 200
    assert f"its {header} header" in response["Error"]["Message"]
    assert "not visible US-ASCII" in response["Error"]["Message"]


def test_the_endpoint_keeps_serving_the_stream_route_too(endpoint: Serving) -> None:
    client: Any = endpoint.runtime_client()
    with pytest.raises(client.exceptions.ModelError):
        client.invoke_endpoint_with_response_stream(
            EndpointName="non-ascii-headers", Body=b"{}", ContentType="application/json"
        )
    assert endpoint.status == "InService"
