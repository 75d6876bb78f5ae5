"""The runtime API's curl shortcuts: ``GET /ping`` and ``POST /invocations`` on its own port.

Both go to the first InService endpoint. ``POST /invocations`` is InvokeEndpoint on it (the
runtime API calls its own invoke path: the same header rules, 6 MiB limit, timeout and
ModelError mapping, and only SageMaker's forwarded headers reach the container).
``GET /ping`` is that endpoint's next instance's ``/ping``, with SageMaker's 2-second limit:
the container's status and body (at most 64 KiB), no client header forwarded, its
Content-Type only when SageMaker could carry it. What smlocal itself refuses is AWS-shaped:
no endpoint InService is ServiceUnavailable (503), a container that does not answer its ping
is a ModelError (424).
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from smlocal.emulator.answer_headers import answer_header_problem
from smlocal.emulator.aws_errors import (
    ACCOUNT_ID,
    REGION,
    AwsError,
    model_error,
    service_unavailable,
)
from smlocal.emulator.endpoint import Endpoint, EndpointStatus

__all__ = ["PING_TIMEOUT_S", "first_in_service", "ping_answer"]

PING_TIMEOUT_S = 2.0  # SageMaker's per-ping limit
_PING_BODY_MAX = 64 * 1024


def first_in_service(endpoints: Mapping[str, Endpoint]) -> Endpoint:
    """The endpoint the shortcuts serve; ServiceUnavailable when none is InService."""
    for endpoint in list(endpoints.values()):
        if endpoint.status == EndpointStatus.IN_SERVICE:
            return endpoint
    raise service_unavailable("No endpoint is InService: the /ping and /invocations shortcuts "
                              "serve the first endpoint that is.")  # fmt: skip


async def ping_answer(endpoint: Endpoint) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of the container's ``/ping``; AwsError when it cannot answer."""
    instance = endpoint.choose(None)
    try:
        async with endpoint.http.get(
            instance.url("/ping"), timeout=aiohttp.ClientTimeout(total=PING_TIMEOUT_S)
        ) as answer:
            body = await answer.content.read(_PING_BODY_MAX)
            status = answer.status
            headers = {}
            content_type = answer.headers.get("Content-Type")
            if content_type and answer_header_problem({"Content-Type": content_type}) is None:
                headers["content-type"] = content_type
    except (TimeoutError, aiohttp.ClientError, ConnectionError) as error:
        raise _ping_failed(endpoint, error) from None
    return status, headers, body


def _ping_failed(endpoint: Endpoint, error: BaseException) -> AwsError:
    return model_error(
        f"The container of endpoint {endpoint.spec.name} did not answer /ping within "
        f"{PING_TIMEOUT_S:g} s ({error.__class__.__name__}).",
        original_status=None,
        original_message=None,
        log_stream_arn=(
            f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/"
            f"{endpoint.spec.name}"
        ),
    )
