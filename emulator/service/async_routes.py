"""The runtime API's async routes, in front of it: InvokeEndpointAsync, and the refusals.

``POST /endpoints/{name}/async-invocations`` is accepted into the queue and answered 202 with
the ``InferenceId`` and the output / failure locations; InvokeEndpoint on an async endpoint is
refused; ``GET /metrics`` gets the async metrics appended; every other request goes to the
runtime API untouched.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from smlocal.emulator.aws_errors import ACCOUNT_ID, AwsError, validation_error
from smlocal.emulator.runtime_api import ClientDisconnected, read_body
from smlocal.emulator.service.async_queue import INLINE_BODY_LIMIT

if TYPE_CHECKING:
    from smlocal.emulator.endpoint import Endpoint
    from smlocal.emulator.service.async_inference import AsyncInference

__all__ = ["AsyncRouting"]

_ASYNC_SUFFIX = "/async-invocations"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def _send(send: Send, status: int, headers: Mapping[str, str], body: bytes) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class AsyncRouting:
    """In front of the runtime API: InvokeEndpointAsync, and InvokeEndpoint refused on an async
    endpoint; every other request goes to ``runtime`` untouched."""

    def __init__(self, runtime: Any, service: AsyncInference) -> None:
        self.runtime = runtime
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] == "POST" and path.startswith("/endpoints/"):
            name, _, route = path[len("/endpoints/") :].partition("/")
            if route == _ASYNC_SUFFIX[1:]:
                await self._invoke_async(scope, receive, send, name)
                return
            if route in ("invocations", "invocations-response-stream"):
                endpoint = self.service.endpoints.get(name)
                if endpoint is not None and self.service.config_of(endpoint) is not None:
                    error = validation_error(
                        f"Endpoint {name} of account {ACCOUNT_ID} is an asynchronous inference "
                        "endpoint: call InvokeEndpointAsync."
                    )
                    await _send(send, error.status, error.headers(), error.body())
                    return
        if scope["type"] == "http" and scope["method"] == "GET" and path == "/metrics":
            await self._metrics(scope, receive, send)
            return
        await self.runtime(scope, receive, send)

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The runtime's /metrics text with the async metrics appended."""
        parts: list[bytes] = []
        start: dict[str, Any] = {}

        async def collect(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                parts.append(message.get("body", b""))

        await self.runtime(scope, receive, collect)
        body = b"".join(parts) + self.service.prometheus().encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200),
                    "headers": headers})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def _invoke_async(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        request_id = str(uuid.uuid4())
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await read_body(receive, headers, INLINE_BODY_LIMIT, request_id)
            endpoint: Endpoint = self.runtime.lookup(name)
            request = self.service.submit(endpoint, headers, body)
        except AwsError as error:
            await _send(send, error.status, error.headers(request_id), error.body())
            return
        except ClientDisconnected:
            return  # cut off mid-body: nothing queued
        answer = {
            "content-type": "application/json",
            "x-amzn-requestid": request_id,
            "x-amzn-sagemaker-outputlocation": request.output_location,
            "x-amzn-sagemaker-failurelocation": request.failure_location,
        }
        await _send(send, 202, answer, json.dumps({"InferenceId": request.inference_id}).encode())
