"""``smlocal transform IMAGE``: one batch transform job, as a user would script it.

A client of the local service like ``smlocal serve`` (:func:`~smlocal.emulator.service.
quick_serve.service_for` finds the running service or starts one in this process): it makes a
Model for the image (tagged ``smlocal:transform``), a transform job from :class:`TransformAsk`
(local directories become absolute paths, smlocal's extension of ``S3Uri`` / ``S3OutputPath``),
reports progress (objects and records, from DescribeTransformJob's ``SmlocalProgress``) until the
job ends, and deletes its Model. Ctrl-C stops the job (StopTransformJob, then waits for
``Stopped``) before the interrupt goes on.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smlocal.emulator.errors import ConfigError, WorkInterrupted
from smlocal.emulator.service.client import ServiceError, sagemaker_client

__all__ = ["TransformAsk", "TransformOutcome", "check_image", "run_transform"]

TRANSFORM_TAG = "smlocal:transform"
_POLL_S = 0.25
_ENDED = ("Completed", "Failed", "Stopped")


@dataclass(frozen=True)
class TransformAsk:
    """What ``smlocal transform`` was asked: the model and the job's settings."""

    name: str
    image: str
    model: str | None
    input: str
    output: str
    content_type: str | None = None
    accept: str | None = None
    split_type: str = "Line"
    compression: str = "None"
    manifest: bool = False
    strategy: str | None = None
    max_payload_mb: int | None = None
    concurrency: int | None = None
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    assemble_with: str = "Line"
    input_filter: str | None = None
    output_filter: str | None = None
    join_input: bool = False
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: int | None = None
    retries: int | None = None

    def model_request(self) -> dict[str, Any]:
        container: dict[str, Any] = {"Image": self.image}
        if self.model:
            container["ModelDataUrl"] = _location(self.model, must_exist=True)
        return {
            "ModelName": self.name,
            "PrimaryContainer": container,
            "Tags": [{"Key": TRANSFORM_TAG, "Value": self.name}],
        }

    def job_request(self) -> dict[str, Any]:
        source = _location(self.input, must_exist=True)
        output = _location(self.output, must_exist=False)
        request: dict[str, Any] = {
            "TransformJobName": self.name,
            "ModelName": self.name,
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "ManifestFile" if self.manifest else "S3Prefix",
                        "S3Uri": source,
                    }
                },
                "SplitType": self.split_type,
                "CompressionType": self.compression,
                **({"ContentType": self.content_type} if self.content_type else {}),
            },
            "TransformOutput": {
                "S3OutputPath": output,
                "AssembleWith": self.assemble_with,
                **({"Accept": self.accept} if self.accept else {}),
            },
            "TransformResources": {
                "InstanceType": self.instance_type,
                "InstanceCount": self.instance_count,
            },
            "Tags": [{"Key": TRANSFORM_TAG, "Value": self.name}],
        }
        optional = {
            "BatchStrategy": self.strategy,
            "MaxPayloadInMB": self.max_payload_mb,
            "MaxConcurrentTransforms": self.concurrency,
            "Environment": self.env or None,
        }
        request.update({k: v for k, v in optional.items() if v is not None})
        client = {"InvocationsTimeoutInSeconds": self.timeout_s}
        client["InvocationsMaxRetries"] = self.retries
        if any(v is not None for v in client.values()):
            request["ModelClientConfig"] = {k: v for k, v in client.items() if v is not None}
        processing = {
            "InputFilter": self.input_filter,
            "OutputFilter": self.output_filter,
            "JoinSource": "Input" if self.join_input else None,
        }
        if any(v is not None for v in processing.values()):
            request["DataProcessing"] = {k: v for k, v in processing.items() if v is not None}
        return request


def _location(where: str, *, must_exist: bool) -> str:
    if where.startswith("s3://"):
        return where
    if "://" in where and not where.startswith("file://"):
        raise ConfigError(f"{where}: use s3://bucket/prefix or a local path")
    path = Path(where.removeprefix("file://")).expanduser()
    if must_exist and not path.exists():
        raise ConfigError(f"{where}: no such file or directory")
    return str(path.resolve())


def check_image(image: str) -> None:
    """A local image that is not in the engine is a usage error now, not a Failed job later
    (an ECR URI is the service's to resolve)."""
    if ".dkr.ecr." in image:
        return
    from smlocal.emulator.docker_backend import DockerBackend

    DockerBackend().image_info(image)


@dataclass(frozen=True)
class TransformOutcome:
    status: str  # Completed | Failed | Stopped
    failure_reason: str
    progress: dict[str, int]
    output: str


def describe_with_progress(url: str, name: str) -> dict[str, Any]:
    """DescribeTransformJob as the service answers it, ``SmlocalProgress`` included (boto3
    keeps only the members botocore models)."""
    request = urllib.request.Request(  # noqa: S310 - the service's own http URL
        url.rstrip("/") + "/",
        data=json.dumps({"TransformJobName": name}).encode(),
        headers={
            "X-Amz-Target": "SageMaker.DescribeTransformJob",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = json.loads(error.read() or b"{}")
        raise ServiceError(f"{body.get('__type')}: {body.get('message')}") from None
    return answer


def run_transform(
    url: str, ask: TransformAsk, on_progress: Callable[[dict[str, Any]], None]
) -> TransformOutcome:
    """Run the job on the service at ``url`` to its end; ``on_progress(described)`` on each
    poll. Ctrl-C stops the job first, then raises WorkInterrupted saying how it was left."""
    from botocore.exceptions import ClientError

    client = sagemaker_client(url)
    model, job = ask.model_request(), ask.job_request()
    try:
        client.create_model(**model)
    except ClientError as error:
        raise _refusal(error) from None
    try:
        try:
            client.create_transform_job(**job)
        except ClientError as error:
            raise _refusal(error) from None
        described = _follow(url, ask.name, client, on_progress)
    finally:
        # The service gone meanwhile has nothing left to delete.
        with contextlib.suppress(Exception):
            client.delete_model(ModelName=ask.name)
    return TransformOutcome(
        described["TransformJobStatus"],
        str(described.get("FailureReason", "")),
        dict(described.get("SmlocalProgress") or {}),
        job["TransformOutput"]["S3OutputPath"],
    )


def _follow(
    url: str, name: str, client: Any, on_progress: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    try:
        while True:
            described = describe_with_progress(url, name)
            on_progress(described)
            if described["TransformJobStatus"] in _ENDED:
                return described
            time.sleep(_POLL_S)
    except KeyboardInterrupt:
        status = "still stopping"
        try:
            client.stop_transform_job(TransformJobName=name)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                described = describe_with_progress(url, name)
                if described["TransformJobStatus"] in _ENDED:
                    status = str(described["TransformJobStatus"])
                    break
                time.sleep(_POLL_S)
        except (Exception, KeyboardInterrupt):  # a second Ctrl-C, or the service gone
            status = "left stopping"
        raise WorkInterrupted(
            f"interrupted: transform job {name} is {status}; objects it had finished keep "
            "their output"
        ) from None


def _refusal(error: Exception) -> Exception:
    response = getattr(error, "response", {}).get("Error", {})
    text = f"{response.get('Code')}: {response.get('Message')}"
    if response.get("Code") in ("ValidationException", "ResourceInUse"):
        return ConfigError(text)
    return ServiceError(text)
