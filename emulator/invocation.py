"""One InvokeEndpoint request carried to a container and its answer carried back.

Owns the data-plane rules between the runtime API and ``POST /invocations``: the 60-second
answer limit, the 6 MiB response limit, custom attributes both ways, and the mapping of a
container's 4xx/5xx, silence, disconnect or unsendable answer headers
(:mod:`~smlocal.emulator.answer_headers`) to SageMaker's ModelError (with
OriginalStatusCode, OriginalMessage, LogStreamArn). Metrics are recorded per variant.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from smlocal.emulator.answer_headers import answer_header_problem
from smlocal.emulator.aws_errors import ACCOUNT_ID, REGION, AwsError, model_error
from smlocal.emulator.endpoint import Endpoint, Instance
from smlocal.emulator.request_rules import invoke_rules
from smlocal.emulator.sessions import (
    NO_SESSION,
    SessionAnswer,
    SessionHeaderError,
    route_session,
    session_table,
)
from smlocal.emulator.upstream import UpstreamTimeout

__all__ = ["InvokeResult", "StreamAnswer", "StreamInterrupted", "invoke", "open_stream"]

log = logging.getLogger(__name__)

CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
_MESSAGE_PREVIEW = 1024


@dataclass(frozen=True)
class InvokeResult:
    body: bytes
    content_type: str
    variant: str
    custom_attributes: str
    session: SessionAnswer = NO_SESSION


def _log_stream_arn(endpoint: str, instance: Instance) -> str:
    return (
        f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/{endpoint}"
        f":log-stream:{instance.variant}/{instance.container.name}"
    )


def _where(endpoint: str) -> str:
    return (
        f"See the smlocal log of endpoint {endpoint} (`smlocal logs {endpoint}`) "
        "for more information."
    )


def _timeout_error(endpoint: str, instance: Instance, timeout_s: float) -> AwsError:
    return model_error(
        f"Your invocation timed out while waiting for a response from container primary "
        f"(no answer within {timeout_s:g} s). Review the latency metrics for each container, "
        f"resolve the issue, and try again. {_where(endpoint)}",
        original_status=None,
        original_message=None,
        log_stream_arn=_log_stream_arn(endpoint, instance),
    )


def _connection_error(endpoint: str, instance: Instance, error: BaseException) -> AwsError:
    return model_error(
        f'Received server error (0) from primary with message "connection to the container '
        f'failed: {error.__class__.__name__}: {error}". {_where(endpoint)}',
        original_status=None,
        original_message=None,
        log_stream_arn=_log_stream_arn(endpoint, instance),
    )


def _answer_error(endpoint: str, instance: Instance, status: int, problem: str) -> AwsError:
    """A 2xx answer whose headers SageMaker's response cannot carry (not US-ASCII, too long)."""
    log.warning(
        "endpoint %s: container %s answered %d, but %s; the client gets a ModelError",
        endpoint,
        instance.container.name,
        status,
        problem,
    )
    return model_error(
        f"Received an invalid response from primary: {problem}. {_where(endpoint)}",
        original_status=status,
        original_message=None,
        log_stream_arn=_log_stream_arn(endpoint, instance),
    )


def _status_error(endpoint: str, instance: Instance, status: int, payload: bytes) -> AwsError:
    text = payload.decode(errors="replace")
    kind = "client" if 400 <= status < 500 else "server"
    return model_error(
        f"Received {kind} error ({status}) from primary with message "
        f'"{text[:_MESSAGE_PREVIEW]}". {_where(endpoint)}',
        original_status=status,
        original_message=text,
        log_stream_arn=_log_stream_arn(endpoint, instance),
    )


# A container on this machine accepts in microseconds; a connect that takes longer is a dead
# or wrong address, not a slow model: fail it fast and let the instance leave the rotation.
CONNECT_TIMEOUT_S = 1.0


def _no_answer(
    endpoint: Endpoint, instance: Instance, error: Exception, started: float
) -> AwsError:
    """No answer came (a timeout, or no connection: the instance leaves the rotation unless
    it is the last); recorded in the variant's metrics, as the client's ModelError."""
    elapsed_us = int((time.perf_counter() - started) * 1e6)
    endpoint.metrics.variant(instance.variant).record(
        status=None, model_us=elapsed_us, total_us=elapsed_us
    )
    name = endpoint.spec.name
    if isinstance(error, UpstreamTimeout):
        return _timeout_error(name, instance, endpoint.spec.invocation_timeout_s)
    endpoint.eject(
        instance, f"a connection to it failed ({error.__class__.__name__})", unless_last=True
    )
    return _connection_error(name, instance, error)


async def invoke(
    endpoint: Endpoint,
    body: bytes,
    headers: Mapping[str, str],
    *,
    target_variant: str | None = None,
    received_at: float | None = None,
    path: str = "/invocations",
) -> InvokeResult:
    """Send one request to the next instance. Raises AwsError for anything but a 2xx answer.

    ``path``: the container route (a multi-model endpoint's ``/models/{name}/invoke``).

    ``received_at`` (``time.perf_counter()`` when the request arrived) makes OverheadLatency
    include the runtime API's own work, as CloudWatch's does.
    """
    instance = route_session(endpoint, headers, target_variant) or endpoint.choose(target_variant)
    name = endpoint.spec.name
    timeout_s = endpoint.spec.invocation_timeout_s
    max_bytes = invoke_rules().max_body_bytes
    metrics = endpoint.metrics.variant(instance.variant)
    started = time.perf_counter()
    arrived = received_at if received_at is not None else started
    try:
        answer = await endpoint.upstream.to(instance.address).request(
            "POST",
            path,
            headers,
            body,
            timeout_s=timeout_s,
            connect_timeout_s=CONNECT_TIMEOUT_S,
            max_body=max_bytes,
        )
    except (UpstreamTimeout, ConnectionError) as error:
        raise _no_answer(endpoint, instance, error, started) from None
    model_done = time.perf_counter()
    status, payload, answered = answer.status, answer.body, answer.headers
    content_type = answered.get("Content-Type", "application/octet-stream")
    attributes = answered.get(CUSTOM_ATTRIBUTES, "")
    problem = answer_header_problem(answered)
    model_us = int((model_done - started) * 1e6)
    if len(payload) > max_bytes:
        metrics.record(status=None, model_us=model_us, total_us=model_us)
        raise model_error(
            # It answered (OriginalStatusCode says how); the body is what SageMaker cannot
            # carry, so no "server error (0)", which reads as if nothing had answered.
            f"Received an invalid response from primary: its body is larger than the "
            f"{max_bytes}-byte limit of InvokeEndpoint's answer. {_where(name)}",
            original_status=status,
            original_message=None,
            log_stream_arn=_log_stream_arn(name, instance),
        )
    if status >= 300:
        metrics.record(status=status, model_us=model_us, total_us=model_us)
        raise _status_error(name, instance, status, payload)
    try:
        session = session_table(endpoint).observe(instance, answered)
    except SessionHeaderError as bad:
        problem = problem or str(bad)
    if problem is not None:
        metrics.record(status=None, model_us=model_us, total_us=model_us)
        raise _answer_error(name, instance, status, problem)
    result = InvokeResult(payload, content_type, instance.variant, attributes, session)
    total_us = int((time.perf_counter() - arrived) * 1e6)
    metrics.record(status=status, model_us=model_us, total_us=total_us)
    return result


@dataclass
class StreamAnswer:
    """A container's 2xx answer being streamed back as it arrives."""

    content_type: str
    variant: str
    custom_attributes: str
    chunks: AsyncIterator[bytes]


class StreamInterrupted(Exception):
    """The container stopped answering mid-stream (becomes a ModelStreamError event).

    ``error_code`` is SageMaker's: ModelInvocationTimeExceeded or StreamBroken.
    """

    def __init__(self, message: str, error_code: str) -> None:
        super().__init__(message)
        self.error_code = error_code


@contextlib.asynccontextmanager
async def open_stream(
    endpoint: Endpoint,
    body: bytes,
    headers: Mapping[str, str],
    *,
    target_variant: str | None = None,
) -> AsyncIterator[StreamAnswer]:
    """InvokeEndpointWithResponseStream's container side: ``/invocations`` answered in chunks.

    Errors before the first byte raise AwsError like :func:`invoke`; later ones make the
    ``chunks`` iterator raise :class:`StreamInterrupted`. The invocation timeout applies to
    each wait for data, so a long stream that keeps producing is never cut off.
    """
    instance = route_session(endpoint, headers, target_variant) or endpoint.choose(target_variant)
    name = endpoint.spec.name
    timeout_s = endpoint.spec.invocation_timeout_s
    metrics = endpoint.metrics.variant(instance.variant)
    started = time.perf_counter()
    try:
        answer = await endpoint.upstream.to(instance.address).open_stream(
            "POST", "/invocations", headers, body, timeout_s=timeout_s,
            connect_timeout_s=CONNECT_TIMEOUT_S,
        )  # fmt: skip
    except (UpstreamTimeout, ConnectionError) as error:
        raise _no_answer(endpoint, instance, error, started) from None
    status: int | None = answer.status
    try:
        if answer.status >= 300:
            try:
                payload = await answer.read(invoke_rules().max_body_bytes, timeout_s)
            except (UpstreamTimeout, ConnectionError):
                payload = b""
            raise _status_error(name, instance, answer.status, payload)
        problem = answer_header_problem(answer.headers)
        if problem is not None:
            status = None
            raise _answer_error(name, instance, answer.status, problem)

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal status
            try:
                async for chunk in answer.chunks(timeout_s):
                    yield chunk
            except (UpstreamTimeout, ConnectionError) as error:
                status = None
                timed_out = isinstance(error, UpstreamTimeout)
                raise StreamInterrupted(
                    f"the response stream from container primary "
                    f"{'timed out' if timed_out else 'broke'} ({error.__class__.__name__}). "
                    f"{_where(name)}",
                    "ModelInvocationTimeExceeded" if timed_out else "StreamBroken",
                ) from None

        yield StreamAnswer(
            content_type=answer.headers.get("Content-Type", "application/octet-stream"),
            variant=instance.variant,
            custom_attributes=answer.headers.get(CUSTOM_ATTRIBUTES, ""),
            chunks=chunks(),
        )
    finally:
        answer.release()
        elapsed_us = int((time.perf_counter() - started) * 1e6)
        metrics.record(status=status, model_us=elapsed_us, total_us=elapsed_us)
