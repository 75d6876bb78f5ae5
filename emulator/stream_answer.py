"""InvokeEndpointWithResponseStream's answer, whatever carries it to the client.

The runtime API's ASGI route and the protocol-level fast path
(:mod:`~smlocal.emulator.fast_path`) both run :func:`answer_stream`, so validation, limits,
errors, variants, sessions, serverless reservations and capture are one code: the carrier
only supplies the body (a :data:`~smlocal.emulator.runtime_api.BodyReader`) and a
:class:`StreamSink` that puts the 200 head and each event on the wire.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Protocol

from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.endpoint import Endpoint
from smlocal.emulator.eventstream import exception_message, payload_part
from smlocal.emulator.feature_headers import check_feature_headers
from smlocal.emulator.invocation import CUSTOM_ATTRIBUTES, StreamInterrupted, open_stream
from smlocal.emulator.invoke_answer import (
    TARGET_VARIANT,
    BodyReader,
    ClientDisconnected,
    InvokeAnswer,
)
from smlocal.emulator.multi_model import check_target_model
from smlocal.emulator.request_rules import InvokeRules
from smlocal.emulator.serverless import ServerlessEndpoint
from smlocal.emulator.serverless_config import MAX_PAYLOAD_BYTES as SERVERLESS_MAX_BYTES

__all__ = ["StreamSink", "answer_stream"]

log = logging.getLogger(__name__)


class StreamSink(Protocol):
    """Where a stream's answer goes once it is a 200: its head, then events, then the end."""

    async def start(self, headers: Mapping[str, str]) -> None: ...

    async def part(self, data: bytes) -> None: ...

    async def end(self) -> None: ...


async def answer_stream(
    name: str,
    headers: Mapping[str, str],
    read: BodyReader,
    sink: StreamSink,
    *,
    rules: InvokeRules,
    lookup: Callable[[str], Endpoint],
) -> InvokeAnswer | None:
    """Stream the container's chunks to ``sink`` as PayloadPart events. Returns the error
    answer when the request fails before the head is sent; None once the stream was sent,
    or when the client left mid-body (nobody to answer)."""
    request_id = str(uuid.uuid4())
    started = False
    try:
        forwarded = rules.forwarded_headers(headers, endpoint_name=name)
        endpoint = lookup(name)
        check_feature_headers(endpoint.spec.name, forwarded)
        target = forwarded.pop(TARGET_VARIANT, None)
        check_target_model(endpoint, None, request_id)  # no TargetModel in this operation
        serverless = isinstance(endpoint, ServerlessEndpoint)
        limit = SERVERLESS_MAX_BYTES if serverless else rules.max_body_bytes
        body = await read(limit, request_id)
        async with contextlib.AsyncExitStack() as held:
            if isinstance(endpoint, ServerlessEndpoint):  # a container of its own
                await held.enter_async_context(endpoint.reserve(target))
            answer = await held.enter_async_context(
                open_stream(endpoint, body, forwarded, target_variant=target)
            )
            started = True
            await sink.start(
                {
                    "content-type": "application/vnd.amazon.eventstream",
                    "x-amzn-sagemaker-content-type": answer.content_type,
                    "x-amzn-invoked-production-variant": answer.variant,
                    CUSTOM_ATTRIBUTES: answer.custom_attributes,
                    "x-amzn-requestid": request_id,
                }
            )
            kept = endpoint.capture and endpoint.capture.stream(
                answer.variant, headers, body, answer.content_type
            )
            try:
                async for chunk in answer.chunks:
                    if kept:
                        kept.add(chunk)
                    await sink.part(payload_part(chunk))
            except StreamInterrupted as broken:
                kept = None
                await sink.part(
                    exception_message("ModelStreamError", str(broken), broken.error_code)
                )
            await sink.end()
            if kept:
                kept.finish()
    except AwsError as error:
        if started:  # the head is out: no second answer; the carrier drops the connection
            raise
        return InvokeAnswer(error.status, error.headers(request_id), error.body())
    except ClientDisconnected:
        log.info("request %s: the client left mid-body; not forwarded", request_id)
    return None
