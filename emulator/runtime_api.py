"""The SageMaker Runtime API, served locally: boto3, the AWS CLI, curl and Locust call it unchanged.

Routes (the paths botocore's ``sagemaker-runtime`` model uses, plus conveniences):

- ``POST /endpoints/{name}/invocations``       InvokeEndpoint
- ``POST /endpoints/{name}/invocations-response-stream``  InvokeEndpointWithResponseStream
- ``POST /endpoints/{name}/async-invocations`` InvokeEndpointAsync (not configured: ValidationError)
- ``GET /ping``, ``POST /invocations``          the first InService endpoint, for curl
                                                (:mod:`~smlocal.emulator.shortcuts`)
- ``GET /metrics``                              per-variant metrics, Prometheus text
- ``GET /smlocal/endpoints``                    status of every endpoint this server hosts

Routing is :mod:`~smlocal.emulator.runtime_routes` (any other path or method:
UnknownOperationException). Input is checked against botocore's model before anything reaches
a container; every refusal is an AWS-shaped error from :mod:`emulator.aws_errors`.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from smlocal.emulator.answer_headers import answer_header_rules
from smlocal.emulator.aws_errors import ACCOUNT_ID, AwsError, load_error_table, validation_error
from smlocal.emulator.endpoint import Endpoint, EndpointStatus
from smlocal.emulator.feature_headers import check_feature_headers
from smlocal.emulator.invocation import CUSTOM_ATTRIBUTES, invoke
from smlocal.emulator.invoke_answer import (
    TARGET_VARIANT,
    BodyReader,
    ClientDisconnected,
    InvokeAnswer,
    oversize_body,
)
from smlocal.emulator.multi_model import TARGET_MODEL, MultiModelEndpoint, check_target_model
from smlocal.emulator.request_rules import invoke_rules
from smlocal.emulator.runtime_routes import endpoint_operations, route
from smlocal.emulator.serverless import ServerlessEndpoint
from smlocal.emulator.serverless_config import MAX_PAYLOAD_BYTES as SERVERLESS_MAX_BYTES
from smlocal.emulator.shortcuts import first_in_service, ping_answer
from smlocal.emulator.stream_answer import StreamSink, answer_stream

__all__ = [
    "BodyReader",
    "ClientDisconnected",
    "InvokeAnswer",
    "RuntimeApi",
    "StreamSink",
    "create_app",
    "oversize_body",
    "read_body",
]

log = logging.getLogger(__name__)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def read_body(
    receive: Receive, headers: Mapping[str, str], limit: int, request_id: str
) -> bytes:
    """The request body, at most ``limit`` bytes (ValidationError "oversize body" beyond,
    before any of it is read when Content-Length says so); ClientDisconnected if it is cut off."""
    declared = headers.get("content-length")
    oversize = oversize_body(request_id)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise oversize
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected(request_id)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise oversize
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send(send: Send, status: int, headers: Mapping[str, str], body: bytes) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _AsgiStreamSink:
    """A stream's answer as ASGI messages (uvicorn frames them chunked)."""

    def __init__(self, send: Send) -> None:
        self.send = send

    async def start(self, headers: Mapping[str, str]) -> None:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await self.send({"type": "http.response.start", "status": 200, "headers": raw})

    async def part(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self) -> None:
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})


class RuntimeApi:
    """The ASGI app serving ``endpoints`` (a live mapping: endpoints may come and go).

    InvokeEndpoint, the hot path, is plain ASGI: Starlette's routing and middleware cost about
    a third of the proxy's CPU per request (measured with benchmarks/runtime_api.py).
    Every other route goes through Starlette.
    """

    def __init__(self, endpoints: Mapping[str, Endpoint]) -> None:
        self.endpoints = endpoints
        # Every table read from botocore's files is read now: lazily, the first error under
        # file-descriptor exhaustion could not be answered (issue 11, defect 7).
        load_error_table()
        answer_header_rules()
        endpoint_operations()
        self.rules = invoke_rules()
        self.stream_rules = invoke_rules("InvokeEndpointWithResponseStream")
        # Only routes :func:`runtime_routes.route` matched reach it: it never 404s or 405s.
        self.others = Starlette(
            routes=[
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/smlocal/endpoints", self.status, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.others(scope, receive, send)
            return
        raw = scope.get("raw_path")
        try:
            found = route(scope["method"], raw.decode("latin-1") if raw else scope["path"])
            if found.operation == "InvokeEndpoint" and found.endpoint_name is not None:
                await self.invoke_endpoint(scope, receive, send, found.endpoint_name)
            elif found.operation == "InvokeEndpointWithResponseStream" and found.endpoint_name:
                await self.invoke_stream(scope, receive, send, found.endpoint_name)
            elif found.operation == "InvokeEndpointAsync" and found.endpoint_name is not None:
                raise self.not_async(found.endpoint_name)
            elif found.operation == "Invocations":
                name = first_in_service(self.endpoints).spec.name
                await self.invoke_endpoint(scope, receive, send, name)
            elif found.operation == "Ping":
                status, headers, body = await ping_answer(first_in_service(self.endpoints))
                await _send(send, status, headers, body)
            else:
                await self.others(scope, receive, send)
        except AwsError as error:
            await _send(send, error.status, error.headers(), error.body())

    def takes(self, server: Any, headers: list[tuple[bytes, bytes]], name: str) -> bool:
        """The fast path's gate (:class:`~smlocal.emulator.fast_path.FastInvoke`): on a port of
        the runtime API alone, every plain InvokeEndpoint request is taken."""
        return True

    def lookup(self, name: str) -> Endpoint:
        self.rules.check_endpoint_name(name)
        endpoint = self.endpoints.get(name)
        if endpoint is None or endpoint.status == EndpointStatus.DELETED:
            raise validation_error(f"Endpoint {name} of account {ACCOUNT_ID} not found.")
        if endpoint.status != EndpointStatus.IN_SERVICE:
            raise validation_error(
                f"Endpoint {name} of account {ACCOUNT_ID} is in status {endpoint.status}; "
                "it can be invoked once it is InService."
            )
        return endpoint

    async def invoke_endpoint(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}

        async def body(limit: int, request_id: str) -> bytes:
            return await read_body(receive, headers, limit, request_id)

        answer = await self.answer_invoke(name, headers, body)
        if answer is not None:
            await _send(send, answer.status, answer.headers, answer.body)
            answer.sent()

    async def answer_invoke(
        self, name: str, headers: Mapping[str, str], read: BodyReader
    ) -> InvokeAnswer | None:
        """InvokeEndpoint's answer, whatever carries the request: the ASGI route above, or the
        protocol-level fast path (:mod:`~smlocal.emulator.fast_path`). ``read(limit,
        request_id)`` is the body (ValidationError beyond ``limit``; ClientDisconnected if it
        was cut off: then None, nobody to answer)."""
        request_id = str(uuid.uuid4())
        endpoint: Endpoint | None = None
        try:
            forwarded = self.rules.forwarded_headers(headers, endpoint_name=name)
            endpoint = self.lookup(name)
            check_feature_headers(endpoint.spec.name, forwarded)
            target = forwarded.pop(TARGET_VARIANT, None)
            target_model = forwarded.get(TARGET_MODEL)  # forwarded too: AWS passes it on
            check_target_model(endpoint, target_model, request_id)
            serverless = isinstance(endpoint, ServerlessEndpoint)
            limit = SERVERLESS_MAX_BYTES if serverless else self.rules.max_body_bytes
            body = await read(limit, request_id)
            # OverheadLatency runs from here, when SageMaker has the whole request: the
            # client's upload is not smlocal's overhead.
            received = time.perf_counter()
            call = functools.partial(
                invoke, endpoint, body, forwarded, target_variant=target, received_at=received
            )
            if isinstance(endpoint, ServerlessEndpoint):  # containers on demand
                result = await endpoint.serve(call, target)
            elif isinstance(endpoint, MultiModelEndpoint) and target_model is not None:
                result = await endpoint.serve_model(target_model, call, target)
            else:
                result = await call()
        except AwsError as error:
            if endpoint is not None and error.code != "ModelError":
                endpoint.metrics.rejected += 1
            return InvokeAnswer(error.status, error.headers(request_id), error.body())
        except ClientDisconnected:
            log.info("request %s: the client left mid-body; not forwarded", request_id)
            return None
        answer_headers = {
            "content-type": result.content_type,
            "x-amzn-invoked-production-variant": result.variant,
            CUSTOM_ATTRIBUTES: result.custom_attributes,
            "x-amzn-requestid": request_id,
            **result.session.headers(),  # stateful sessions: NewSessionId, ClosedSessionId
        }
        capture = endpoint.capture
        if capture is None:
            return InvokeAnswer(200, answer_headers, result.body)

        def offer() -> None:  # DataCaptureConfig: buffered, written off this path
            capture.offer_answer(result.variant, headers, body, result.content_type, result.body)

        return InvokeAnswer(200, answer_headers, result.body, offer)

    async def invoke_stream(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        """InvokeEndpointWithResponseStream: container chunks out as PayloadPart events."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}

        async def body(limit: int, request_id: str) -> bytes:
            return await read_body(receive, headers, limit, request_id)

        answer = await self.answer_stream(name, headers, body, _AsgiStreamSink(send))
        if answer is not None:
            await _send(send, answer.status, answer.headers, answer.body)

    async def answer_stream(
        self, name: str, headers: Mapping[str, str], read: BodyReader, sink: StreamSink
    ) -> InvokeAnswer | None:
        """InvokeEndpointWithResponseStream's answer, whatever carries it
        (:func:`~smlocal.emulator.stream_answer.answer_stream`)."""
        return await answer_stream(
            name, headers, read, sink, rules=self.stream_rules, lookup=self.lookup
        )

    def not_async(self, name: str) -> AwsError:
        """InvokeEndpointAsync here (the service's async routes take the async endpoints)."""
        endpoint = self.lookup(name)
        return validation_error(
            f"Endpoint {endpoint.spec.name} is not configured for asynchronous inference."
        )

    async def metrics(self, _: Request) -> Response:
        text = "".join(
            e.metrics.prometheus() + (e.capture.prometheus() if e.capture else "")
            for e in self.endpoints.values()
        )
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    async def status(self, _: Request) -> Response:
        return JSONResponse({"Endpoints": [e.describe() for e in self.endpoints.values()]})


def create_app(endpoints: Mapping[str, Endpoint]) -> RuntimeApi:
    """The runtime API for ``endpoints``."""
    return RuntimeApi(endpoints)
