"""The SageMaker Runtime API, served locally: boto3, the AWS CLI, curl and Locust call it unchanged.

Routes (the paths botocore's ``sagemaker-runtime`` model uses, plus conveniences):

- ``POST /endpoints/{name}/invocations``       InvokeEndpoint
- ``POST /endpoints/{name}/invocations-response-stream``  InvokeEndpointWithResponseStream
- ``POST /endpoints/{name}/async-invocations`` InvokeEndpointAsync (not configured: ValidationError)
- ``GET /ping``, ``POST /invocations``          straight to the endpoint's container, for curl
- ``GET /metrics``                              per-variant metrics, Prometheus text
- ``GET /smlocal/endpoints``                    status of every endpoint this server hosts

Input is checked against botocore's model before anything reaches a container; every refusal is
an AWS-shaped error from :mod:`emulator.aws_errors`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from smlocal.emulator.aws_errors import ACCOUNT_ID, AwsError, validation_error
from smlocal.emulator.endpoint import Endpoint, EndpointStatus
from smlocal.emulator.eventstream import exception_message, payload_part
from smlocal.emulator.invocation import CUSTOM_ATTRIBUTES, StreamInterrupted, invoke, open_stream
from smlocal.emulator.multi_model import TARGET_MODEL, MultiModelEndpoint, check_target_model
from smlocal.emulator.request_rules import invoke_rules
from smlocal.emulator.serverless import ServerlessEndpoint
from smlocal.emulator.serverless_config import MAX_PAYLOAD_BYTES as SERVERLESS_MAX_BYTES

__all__ = ["ClientDisconnected", "RuntimeApi", "create_app", "read_body"]

log = logging.getLogger(__name__)

TARGET_VARIANT = "x-amzn-sagemaker-target-variant"
STREAM_SUFFIX = "/invocations-response-stream"
# Headers the runtime API understands but does not pass to the container.
_NOT_FORWARDED = {TARGET_VARIANT}


def _aws_error_response(error: AwsError, request_id: str) -> Response:
    return Response(error.body(), status_code=error.status, headers=error.headers(request_id))


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ClientDisconnected(Exception):
    """The client went away before its request body was complete: nothing is to be done
    with the part that came (a truncated body is never forwarded), and nobody to answer."""


async def read_body(
    receive: Receive, headers: Mapping[str, str], limit: int, request_id: str
) -> bytes:
    """The request body, at most ``limit`` bytes (ValidationError "oversize body" beyond,
    before any of it is read when Content-Length says so); ClientDisconnected if it is cut off."""
    declared = headers.get("content-length")
    oversize = validation_error(f"Request {request_id} has oversize body.")
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


class RuntimeApi:
    """The ASGI app serving ``endpoints`` (a live mapping: endpoints may come and go).

    InvokeEndpoint, the hot path, is plain ASGI: Starlette's routing and middleware cost about
    a third of the proxy's CPU per request (measured with benchmarks/runtime_api.py).
    Every other route goes through Starlette.
    """

    def __init__(self, endpoints: Mapping[str, Endpoint]) -> None:
        self.endpoints = endpoints
        self.rules = invoke_rules()
        self.stream_rules = invoke_rules("InvokeEndpointWithResponseStream")
        self.others = Starlette(
            routes=[
                Route("/endpoints/{name}/async-invocations", self.invoke_async, methods=["POST"]),
                Route("/ping", self.passthrough, methods=["GET"]),
                Route("/invocations", self.passthrough, methods=["POST"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/smlocal/endpoints", self.status, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and path.startswith("/endpoints/")
            and path.endswith("/invocations")
        ):
            name = path[len("/endpoints/") : -len("/invocations")]
            if "/" not in name:
                await self.invoke_endpoint(scope, receive, send, name)
                return
        if scope["type"] == "http" and scope["method"] == "POST" and path.endswith(STREAM_SUFFIX):
            name = path[len("/endpoints/") : -len(STREAM_SUFFIX)]
            if path.startswith("/endpoints/") and "/" not in name:
                await self.invoke_stream(scope, receive, send, name)
                return
        await self.others(scope, receive, send)

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
        received = time.perf_counter()
        request_id = str(uuid.uuid4())
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        endpoint: Endpoint | None = None
        try:
            endpoint = self.lookup(name)
            forwarded = self.rules.forwarded_headers(headers)
            target = forwarded.pop(TARGET_VARIANT, None)
            target_model = forwarded.get(TARGET_MODEL)  # forwarded too: AWS passes it on
            check_target_model(endpoint, target_model, request_id)
            serverless = isinstance(endpoint, ServerlessEndpoint)
            limit = SERVERLESS_MAX_BYTES if serverless else self.rules.max_body_bytes
            body = await read_body(receive, headers, limit, request_id)
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
            await _send(send, error.status, error.headers(request_id), error.body())
            return
        except ClientDisconnected:
            log.info("request %s: the client left mid-body; not forwarded", request_id)
            return
        answer_headers = {
            "content-type": result.content_type,
            "x-amzn-invoked-production-variant": result.variant,
            CUSTOM_ATTRIBUTES: result.custom_attributes,
            "x-amzn-requestid": request_id,
        }
        await _send(send, 200, answer_headers, result.body)
        if endpoint.capture is not None:  # DataCaptureConfig: buffered, written off this path
            endpoint.capture.offer_answer(
                result.variant, headers, body, result.content_type, result.body
            )

    async def invoke_stream(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        """InvokeEndpointWithResponseStream: container chunks out as PayloadPart events."""
        request_id = str(uuid.uuid4())
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            endpoint = self.lookup(name)
            forwarded = self.stream_rules.forwarded_headers(headers)
            target = forwarded.pop(TARGET_VARIANT, None)
            check_target_model(endpoint, None, request_id)  # no TargetModel in this operation
            serverless = isinstance(endpoint, ServerlessEndpoint)
            limit = SERVERLESS_MAX_BYTES if serverless else self.stream_rules.max_body_bytes
            body = await read_body(receive, headers, limit, request_id)
            async with contextlib.AsyncExitStack() as held:
                if isinstance(endpoint, ServerlessEndpoint):  # a container of its own
                    await held.enter_async_context(endpoint.reserve(target))
                answer = await held.enter_async_context(
                    open_stream(endpoint, body, forwarded, target_variant=target)
                )
                start_headers = {
                    "content-type": "application/vnd.amazon.eventstream",
                    "x-amzn-sagemaker-content-type": answer.content_type,
                    "x-amzn-invoked-production-variant": answer.variant,
                    CUSTOM_ATTRIBUTES: answer.custom_attributes,
                    "x-amzn-requestid": request_id,
                }
                raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in start_headers.items()]
                await send({"type": "http.response.start", "status": 200, "headers": raw})
                kept = endpoint.capture and endpoint.capture.stream(
                    answer.variant, headers, body, answer.content_type
                )
                try:
                    async for chunk in answer.chunks:
                        if kept:
                            kept.add(chunk)
                        event = payload_part(chunk)
                        await send({"type": "http.response.body", "body": event, "more_body": True})
                except StreamInterrupted as broken:
                    kept = None
                    failure = exception_message("ModelStreamError", str(broken), broken.error_code)
                    await send({"type": "http.response.body", "body": failure, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                if kept:
                    kept.finish()
        except AwsError as error:
            await _send(send, error.status, error.headers(request_id), error.body())
        except ClientDisconnected:
            log.info("request %s: the client left mid-body; not forwarded", request_id)

    async def invoke_async(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            endpoint = self.lookup(request.path_params["name"])
            raise validation_error(
                f"Endpoint {endpoint.spec.name} is not configured for asynchronous inference."
            )
        except AwsError as error:
            return _aws_error_response(error, request_id)

    async def passthrough(self, request: Request) -> Response:
        """/ping and /invocations exactly as the container answers them (for curl)."""
        live = [e for e in self.endpoints.values() if e.status == EndpointStatus.IN_SERVICE]
        if not live:
            return PlainTextResponse("no endpoint is InService\n", status_code=503)
        endpoint = live[0]
        try:
            instance = endpoint.choose(None)
        except AwsError as error:
            return PlainTextResponse(f"{error.message}\n", status_code=503)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        body = await request.body()
        try:
            async with endpoint.http.request(
                request.method,
                instance.url(request.url.path),
                data=body or None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=endpoint.spec.invocation_timeout_s),
            ) as answer:
                payload = await answer.read()
                content_type = answer.headers.get("Content-Type")
                kept = {"content-type": content_type} if content_type else {}
                return Response(payload, status_code=answer.status, headers=kept)
        except (TimeoutError, aiohttp.ClientError) as error:
            return PlainTextResponse(
                f"container did not answer: {error.__class__.__name__}\n", status_code=502
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
