"""The SageMaker Runtime API, served locally: boto3, the AWS CLI, curl and Locust call it unchanged.

Routes (the paths botocore's ``sagemaker-runtime`` model uses, plus conveniences):

- ``POST /endpoints/{name}/invocations``       InvokeEndpoint
- ``POST /endpoints/{name}/async-invocations`` InvokeEndpointAsync (not configured: ValidationError)
- ``GET /ping``, ``POST /invocations``          straight to the endpoint's container, for curl
- ``GET /metrics``                              per-variant metrics, Prometheus text
- ``GET /smlocal/endpoints``                    status of every endpoint this server hosts

Input is checked against botocore's model before anything reaches a container; every refusal is
an AWS-shaped error from :mod:`emulator.aws_errors`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from emulator.aws_errors import ACCOUNT_ID, AwsError, validation_error
from emulator.endpoint import Endpoint, EndpointStatus
from emulator.invocation import CUSTOM_ATTRIBUTES, invoke
from emulator.request_rules import invoke_rules

__all__ = ["create_app"]

TARGET_VARIANT = "x-amzn-sagemaker-target-variant"
# Headers the runtime API understands but does not pass to the container.
_NOT_FORWARDED = {TARGET_VARIANT}


def _aws_error_response(error: AwsError, request_id: str) -> Response:
    return Response(error.body(), status_code=error.status, headers=error.headers(request_id))


async def _read_body(request: Request, limit: int, request_id: str) -> bytes:
    declared = request.headers.get("content-length")
    oversize = validation_error(f"Request {request_id} has oversize body.")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise oversize
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise oversize
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(endpoints: Mapping[str, Endpoint]) -> Starlette:
    """The ASGI app serving ``endpoints`` (a live mapping: endpoints may come and go)."""
    rules = invoke_rules()

    def lookup(name: str) -> Endpoint:
        rules.check_endpoint_name(name)
        endpoint = endpoints.get(name)
        if endpoint is None or endpoint.status in (EndpointStatus.DELETED,):
            raise validation_error(f"Endpoint {name} of account {ACCOUNT_ID} not found.")
        if endpoint.status != EndpointStatus.IN_SERVICE:
            raise validation_error(
                f"Endpoint {name} of account {ACCOUNT_ID} is in status {endpoint.status}; "
                "it can be invoked once it is InService."
            )
        return endpoint

    async def invoke_endpoint(request: Request) -> Response:
        received = time.perf_counter()
        request_id = str(uuid.uuid4())
        endpoint: Endpoint | None = None
        try:
            endpoint = lookup(request.path_params["name"])
            forwarded = rules.forwarded_headers(request.headers)
            target = forwarded.pop(TARGET_VARIANT, None)
            body = await _read_body(request, rules.max_body_bytes, request_id)
            result = await invoke(
                endpoint, body, forwarded, target_variant=target, received_at=received
            )
        except AwsError as error:
            if endpoint is not None and error.code != "ModelError":
                endpoint.metrics.rejected += 1
            return _aws_error_response(error, request_id)
        return Response(
            result.body,
            headers={
                "content-type": result.content_type,
                "x-amzn-invoked-production-variant": result.variant,
                CUSTOM_ATTRIBUTES: result.custom_attributes,
                "x-amzn-requestid": request_id,
            },
        )

    async def invoke_async(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            endpoint = lookup(request.path_params["name"])
            raise validation_error(
                f"Endpoint {endpoint.spec.name} is not configured for asynchronous inference."
            )
        except AwsError as error:
            return _aws_error_response(error, request_id)

    def default_endpoint() -> Endpoint | None:
        live = [e for e in endpoints.values() if e.status == EndpointStatus.IN_SERVICE]
        return live[0] if live else None

    async def passthrough(request: Request) -> Response:
        """/ping and /invocations exactly as the container answers them (for curl)."""
        endpoint = default_endpoint()
        if endpoint is None:
            return PlainTextResponse("no endpoint is InService\n", status_code=503)
        try:
            instance = endpoint.choose(None)
        except AwsError as error:
            return PlainTextResponse(f"{error.message}\n", status_code=503)
        url = f"http://{instance.address[0]}:{instance.address[1]}{request.url.path}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        body = await request.body()
        try:
            async with endpoint.http.request(
                request.method,
                url,
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

    async def metrics(_: Request) -> Response:
        text = "".join(e.metrics.prometheus() for e in endpoints.values())
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    async def status(_: Request) -> Response:
        return JSONResponse({"Endpoints": [e.describe() for e in endpoints.values()]})

    return Starlette(
        routes=[
            Route("/endpoints/{name}/invocations", invoke_endpoint, methods=["POST"]),
            Route("/endpoints/{name}/async-invocations", invoke_async, methods=["POST"]),
            Route("/ping", passthrough, methods=["GET"]),
            Route("/invocations", passthrough, methods=["POST"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/smlocal/endpoints", status, methods=["GET"]),
        ]
    )
