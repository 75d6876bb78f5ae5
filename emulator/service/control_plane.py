"""SageMaker's control plane on the wire: JSON 1.1, ``POST /``, ``X-Amz-Target: SageMaker.Op``.

A thin responses layer in moto's manner: parse the body, validate it against botocore's own
model (:mod:`~smlocal.emulator.service.validation`, AWS's aggregated messages), call the
:class:`~smlocal.emulator.service.hosting.HostingService` method for the operation, answer
its output as ``application/x-amz-json-1.1``. Every refusal is an AWS-shaped error
(``{"__type", "message"}``, botocore raises its modelled exception); an operation SageMaker
has but smlocal does not emulate gets ``UnknownOperationException`` naming the ones it does.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.service.hosting import HostingService
from smlocal.emulator.service.validation import input_members, validate_input

__all__ = ["OPERATIONS", "ControlPlane", "is_control_plane"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

# Operation name → HostingService method name.
OPERATIONS: Mapping[str, str] = {
    "CreateModel": "create_model",
    "DescribeModel": "describe_model",
    "DeleteModel": "delete_model",
    "ListModels": "list_models",
    "CreateEndpointConfig": "create_endpoint_config",
    "DescribeEndpointConfig": "describe_endpoint_config",
    "DeleteEndpointConfig": "delete_endpoint_config",
    "ListEndpointConfigs": "list_endpoint_configs",
    "CreateEndpoint": "create_endpoint",
    "DescribeEndpoint": "describe_endpoint",
    "UpdateEndpoint": "update_endpoint",
    "UpdateEndpointWeightsAndCapacities": "update_endpoint_weights_and_capacities",
    "DeleteEndpoint": "delete_endpoint",
    "ListEndpoints": "list_endpoints",
    "AddTags": "add_tags",
    "ListTags": "list_tags",
    "DeleteTags": "delete_tags",
    # Batch transform: TransformJobs' methods (emulator/service/transform_jobs.py).
    "CreateTransformJob": "create_transform_job",
    "DescribeTransformJob": "describe_transform_job",
    "StopTransformJob": "stop_transform_job",
    "ListTransformJobs": "list_transform_jobs",
}
_TRANSFORM_OPERATIONS = frozenset(op for op in OPERATIONS if "TransformJob" in op)
_TARGET_PREFIX = "SageMaker."
# Control-plane requests are small; SageMaker's own limit on a request body is far below this.
_MAX_BODY = 4 * 1024 * 1024
_CONTENT_TYPE = "application/x-amz-json-1.1"


def is_control_plane(scope: Scope) -> bool:
    """A JSON 1.1 call: ``POST /`` with an ``X-Amz-Target`` header."""
    if scope.get("type") != "http" or scope.get("method") != "POST" or scope.get("path") != "/":
        return False
    return any(name == b"x-amz-target" for name, _ in scope.get("headers", ()))


class ControlPlane:
    def __init__(self, hosting: HostingService, transforms: object | None = None) -> None:
        self.hosting = hosting
        self.transforms = transforms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        try:
            status, body = 200, await self._answer(scope, receive)
        except AwsError as error:
            status, body = error.status, error.body()
        except Exception:
            log.exception("control plane: unexpected error (request %s)", request_id)
            internal = AwsError("InternalFailure", "smlocal failed on this request; see its log.")
            status, body = internal.status, internal.body()
        headers = [
            (b"content-type", _CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-amzn-requestid", request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive) -> bytes:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        target = headers.get("x-amz-target", "")
        operation = target.removeprefix(_TARGET_PREFIX)
        if not target.startswith(_TARGET_PREFIX) or operation not in OPERATIONS:
            raise AwsError(
                "UnknownOperationException",
                f"smlocal does not emulate {target or 'that operation'}; it serves "
                f"SageMaker.{{{', '.join(OPERATIONS)}}}.",
            )
        params = _parse(await _read_body(receive))
        validate_input(operation, params)
        # Members the model does not have are ignored, not stored and echoed back.
        known = input_members(operation)
        params = {key: value for key, value in params.items() if key in known}
        owner = self.transforms if operation in _TRANSFORM_OPERATIONS else self.hosting
        handler: Handler = getattr(owner, OPERATIONS[operation])
        result = await handler(params)
        return json.dumps(result, separators=(",", ":")).encode()


async def _read_body(receive: Receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise AwsError("SerializationException", "The request body was cut off.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            raise AwsError("SerializationException", "The request body is too large.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _no_constant(name: str) -> Any:
    # NaN and Infinity are Python's JSON extensions, not JSON: AWS refuses them.
    raise ValueError(f"{name} is not a JSON number")


def _parse(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        params = json.loads(body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise AwsError("SerializationException", "The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise AwsError("SerializationException", "The request body must be a JSON object.")
    return params
