"""The one table of AWS-shaped errors the emulator answers with.

Status codes and error members come from botocore's own service model for
``sagemaker-runtime`` (so botocore raises its modelled exceptions, e.g.
``client.exceptions.ModelError``); messages follow the wording real SageMaker uses. Every
component that answers a client with an AWS error builds it here, so the runtime API and any
control-plane route answer alike.
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
    "model_error",
    "validation_error",
]

# The emulator's stand-ins for the caller's account and region, used where real SageMaker puts
# them into messages and ARNs.
ACCOUNT_ID = "000000000000"
REGION = "us-east-1"

# Errors real SageMaker Runtime returns that the botocore model does not list for InvokeEndpoint.
_EXTRA_STATUS = {"ThrottlingException": 400}


@functools.cache
def _modelled_statuses() -> dict[str, int]:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    statuses = dict(_EXTRA_STATUS)
    for op_name in model.operation_names:
        for shape in model.operation_model(op_name).error_shapes:
            status = shape.metadata.get("error", {}).get("httpStatusCode")
            if status is not None:
                statuses[shape.name] = int(status)
    return statuses


def error_status(code: str) -> int:
    """The HTTP status SageMaker Runtime uses for error ``code`` (KeyError if unknown)."""
    return _modelled_statuses()[code]


class AwsError(Exception):
    """An error answered to the client in AWS's rest-json shape."""

    def __init__(self, code: str, message: str, members: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.members = members or {}

    @property
    def status(self) -> int:
        return error_status(self.code)

    def body(self) -> bytes:
        # botocore reads "message"/"Message" for the text and the modelled members by name.
        payload: dict[str, Any] = {"Message": self.message, **self.members}
        return json.dumps(payload).encode()

    def headers(self, request_id: str | None = None) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "x-amzn-errortype": self.code,
            "x-amzn-requestid": request_id or str(uuid.uuid4()),
        }


def validation_error(message: str) -> AwsError:
    return AwsError("ValidationError", message)


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
