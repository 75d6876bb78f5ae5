"""The one table of AWS-shaped errors the emulator answers with.

Status codes and error members come from botocore's own service models for
``sagemaker-runtime`` and ``sagemaker`` (so botocore raises its modelled exceptions, e.g.
``client.exceptions.ModelError``); messages follow the wording real SageMaker uses. Every
component that answers a client with an AWS error builds it here, so the runtime API and the
control plane answer alike: the body carries ``__type`` (what botocore's JSON 1.1 parser reads
for the control plane) and ``message``/``Message``, the ``x-amzn-errortype`` header carries the
code for the runtime's rest-json parser.
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any

import botocore.session

__all__ = [
    "ACCOUNT_ID",
    "REGION",
    "AwsError",
    "error_status",
    "load_error_table",
    "model_error",
    "service_unavailable",
    "unknown_operation",
    "validation_error",
]

# The emulator's stand-ins for the caller's account and region, used where real SageMaker puts
# them into messages and ARNs.
ACCOUNT_ID = "000000000000"
REGION = "us-east-1"

# Errors real SageMaker returns that the botocore models do not list: throttling, the generic
# JSON-protocol ValidationException the control plane uses for "not found" and "already
# exists" (reference §A.1/§A.3), the generic 500/unknown-operation answers, and the common
# HTTP-level errors.
_EXTRA_STATUS = {
    "ThrottlingException": 400,
    "ValidationException": 400,
    "UnknownOperationException": 400,
    "SerializationException": 400,
    "InternalFailure": 500,
    # AWS's common errors for problems at the HTTP level (the API port's own answers).
    "MalformedHttpRequestException": 400,
    "RequestTimeoutException": 408,
}


@functools.cache
def _modelled_statuses() -> dict[str, int]:
    session = botocore.session.get_session()
    statuses = dict(_EXTRA_STATUS)
    # The control plane's modelled errors (ResourceNotFound, ResourceInUse, ...) carry no
    # httpStatusCode: JSON 1.1's default, 400. The runtime model's statuses win on a clash.
    for service in ("sagemaker", "sagemaker-runtime"):
        model = session.get_service_model(service)
        for shape_name in model.shape_names:
            shape = model.shape_for(shape_name)
            error = shape.metadata.get("error")
            if shape.metadata.get("exception") or error:
                statuses[shape.name] = int((error or {}).get("httpStatusCode", 400))
    return statuses


def load_error_table() -> None:
    """Read botocore's models now (at service start), not on the first error under load."""
    _modelled_statuses()


def error_status(code: str) -> int:
    """The HTTP status SageMaker Runtime uses for error ``code`` (KeyError if unknown)."""
    return _modelled_statuses()[code]


class AwsError(Exception):
    """An error answered to the client in AWS's rest-json shape."""

    def __init__(
        self,
        code: str,
        message: str,
        members: dict[str, Any] | None = None,
        *,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        if status is None and code not in _modelled_statuses():
            # A typo here would surface as a KeyError at send time: say what is wrong now.
            raise ValueError(f"{code!r} is no error code of botocore's models or _EXTRA_STATUS")
        self.code = code
        self.message = message
        self.members = members or {}
        # Only where one code has two statuses by protocol (see unknown_operation).
        self._status = status

    @property
    def status(self) -> int:
        return self._status if self._status is not None else error_status(self.code)

    def body(self) -> bytes:
        # botocore reads "message"/"Message" for the text and the modelled members by name.
        payload: dict[str, Any] = {
            "__type": self.code,
            "message": self.message,
            "Message": self.message,
            **self.members,
        }
        return json.dumps(payload).encode()

    def headers(self, request_id: str | None = None) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "x-amzn-errortype": self.code,
            "x-amzn-requestid": request_id or str(uuid.uuid4()),
        }


def validation_error(message: str) -> AwsError:
    return AwsError("ValidationError", message)


# AWS's common errors: "UnknownOperationException: The action or operation requested is
# invalid. Verify that the action is typed correctly. HTTP Status Code: 404". A JSON 1.1 call
# naming an unknown X-Amz-Target gets it with 400 (the table's status); a REST path or method
# no operation has, with 404.
UNKNOWN_PATH_STATUS = 404


def unknown_operation(method: str, path: str, served: str) -> AwsError:
    """No operation has this method and path: AWS's UnknownOperationException, 404."""
    return AwsError(
        "UnknownOperationException",
        f"The action or operation requested is invalid. Verify that the action is typed "
        f"correctly. smlocal serves no {method} {path}; it serves {served}.",
        status=UNKNOWN_PATH_STATUS,
    )


def service_unavailable(message: str) -> AwsError:
    """ServiceUnavailable (503): the runtime model's own error."""
    return AwsError("ServiceUnavailable", message)


def model_error(
    message: str,
    *,
    original_status: int | None,
    original_message: str | None,
    log_stream_arn: str,
) -> AwsError:
    members: dict[str, Any] = {"LogStreamArn": log_stream_arn}
    if original_status is not None:
        members["OriginalStatusCode"] = original_status
    if original_message is not None:
        members["OriginalMessage"] = original_message
    return AwsError("ModelError", message, members)
