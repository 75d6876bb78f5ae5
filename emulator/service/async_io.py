"""The AWS side of asynchronous requests: S3 objects and SNS messages, in AWS's shapes.

What a worker of :mod:`.async_inference` reads and writes outside the container: the input
object, the output or failure object, whether one already exists (a request recovered after a
SIGKILL is not run twice), and the InferenceResult / TestNotification messages of reference
§C.3. Everything here blocks (boto3) and runs in the workers' threads; clients are made once
per service from the service's own environment (``AWS_ENDPOINT_URL_S3`` ...: real AWS or moto).
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from smlocal.emulator.aws_errors import REGION
from smlocal.emulator.service.async_queue import QueuedRequest, split_s3

__all__ = [
    "NOTIFICATION_RESPONSE_LIMIT",
    "RESPONSE_BODY_FIELD",
    "AwsIo",
    "Outcome",
    "inference_result",
]

log = logging.getLogger(__name__)

# The success message's answer field when IncludeInferenceResponseIn names the topic
# (the field name is UNCONFIRMED), and the largest answer it carries.
RESPONSE_BODY_FIELD = "responseBody"
NOTIFICATION_RESPONSE_LIMIT = 128_000


@dataclass(frozen=True)
class Outcome:
    """How one request ended: the object to write and what the notification says."""

    ok: bool
    body: bytes
    content_type: str
    reason: str = ""
    kind: str = "success"  # success | failed | expired


def _iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def inference_result(
    request: QueuedRequest, outcome: Outcome, *, include_response: bool
) -> dict[str, Any]:
    """AWS's InferenceResult message (reference §C.3); with ``include_response`` (the topic is
    in IncludeInferenceResponseIn) the answer too, when it is at most 128 KB."""
    message: dict[str, Any] = {
        "awsRegion": REGION,
        "eventTime": _iso(time.time()),
        "receivedTime": _iso(request.received_at),
        "invocationStatus": "Completed" if outcome.ok else "Failed",
        "requestParameters": {
            "contentType": request.content_type,
            "endpointName": request.endpoint,
            "inputLocation": request.input_location,
        },
    }
    if outcome.ok:
        message["responseParameters"] = {
            "contentType": outcome.content_type,
            "outputLocation": request.output_location,
        }
    else:
        message["failureReason"] = outcome.reason
        message["failureLocation"] = request.failure_location
    message.update(
        inferenceId=request.inference_id,
        eventVersion="1.0",
        eventSource="aws:sagemaker",
        eventName="InferenceResult",
    )
    if include_response and outcome.body and len(outcome.body) <= NOTIFICATION_RESPONSE_LIMIT:
        try:
            message[RESPONSE_BODY_FIELD] = {"content": outcome.body.decode(), "encoding": "UTF8"}
        except UnicodeDecodeError:
            content = base64.b64encode(outcome.body).decode()
            message[RESPONSE_BODY_FIELD] = {"content": content, "encoding": "BASE64"}
    return message


TEST_NOTIFICATION = {
    "eventVersion": "1.0",
    "eventSource": "aws:sagemaker",
    "eventName": "TestNotification",
}


class AwsIo:
    """S3 and SNS through one client per service (``clients(service)`` makes it)."""

    def __init__(self, clients: Callable[[str], Any] | None = None) -> None:
        self._clients = clients or _boto3_client
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._cache:
                self._cache[service] = self._clients(service)
            return self._cache[service]

    def download(self, location: str) -> bytes:
        bucket, key = split_s3(location)
        return bytes(self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())

    def upload(self, location: str, body: bytes, content_type: str) -> None:
        bucket, key = split_s3(location)
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def exists(self, location: str) -> bool:
        bucket, key = split_s3(location)
        try:
            self.client("s3").head_object(Bucket=bucket, Key=key)
        except Exception as error:
            code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def existing_outcome(self, request: QueuedRequest) -> str | None:
        """``output`` / ``failed`` when that object of the request is in S3 already."""
        if self.exists(request.output_location):
            return "output"
        if self.exists(request.failure_location):
            return "failed"
        return None

    def publish(self, topic: str, message: Mapping[str, Any]) -> None:
        self.client("sns").publish(TopicArn=topic, Message=json.dumps(message))

    def publish_quietly(self, topic: str, message: Mapping[str, Any]) -> None:
        try:
            self.publish(topic, message)
        except Exception as error:
            log.warning("cannot send the test notification to %s: %s", topic, error)


def _boto3_client(service: str) -> Any:
    import importlib

    from botocore.config import Config

    boto3: Any = importlib.import_module("boto3")
    # A fresh session, so the service's environment (AWS_ENDPOINT_URL_S3 ...) counts.
    return boto3.session.Session().client(service, config=Config(max_pool_connections=32))
