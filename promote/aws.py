"""boto3 clients for promote and cleanup, and how their errors read.

Endpoints: boto3 itself honours ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``; an
explicit ``endpoint_url`` (``--endpoint-url``) is a shortcut that sends every service there.
Credentials come from boto3's usual chain and are never logged or printed by smlocal.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sts import STSClient

__all__ = ["AWS_ERRORS", "Clients", "describe_error", "error_code"]

# What a step may raise from AWS; the runner turns these into StepFailedError.
AWS_ERRORS = (ClientError, BotoCoreError)


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def describe_error(error: BaseException) -> str:
    """``Code: message`` as AWS sent it (no request ids, no credentials)."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        operation = error.operation_name
        return f"{operation} → {info.get('Code', 'Error')}: {info.get('Message', '')}".rstrip()
    return str(error)


class Clients:
    """One boto3 session and a lazily created client per service, all in one region."""

    def __init__(self, region: str, endpoint_url: str | None = None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        # endpoint_url=None lets botocore resolve AWS_ENDPOINT_URL(_<SERVICE>) itself.
        self._session = boto3.session.Session(region_name=region)
        # Standard retry mode backs off on throttling; the attempt count is left to botocore
        # (3, or AWS_MAX_ATTEMPTS / max_attempts in the AWS config) so users can tune it.
        self._config = Config(
            retries={"mode": "standard"},
            user_agent_extra="smlocal-promote",
        )

    @functools.cached_property
    def sts(self) -> STSClient:
        return self._session.client("sts", endpoint_url=self.endpoint_url, config=self._config)

    @functools.cached_property
    def ecr(self) -> ECRClient:
        return self._session.client("ecr", endpoint_url=self.endpoint_url, config=self._config)

    @functools.cached_property
    def s3(self) -> S3Client:
        return self._session.client("s3", endpoint_url=self.endpoint_url, config=self._config)

    @functools.cached_property
    def iam(self) -> IAMClient:
        return self._session.client("iam", endpoint_url=self.endpoint_url, config=self._config)

    @functools.cached_property
    def sagemaker(self) -> SageMakerClient:
        return self._session.client(
            "sagemaker", endpoint_url=self.endpoint_url, config=self._config
        )

    @functools.cached_property
    def autoscaling(self) -> ApplicationAutoScalingClient:
        return self._session.client(
            "application-autoscaling", endpoint_url=self.endpoint_url, config=self._config
        )

    @functools.cached_property
    def cloudwatch(self) -> CloudWatchClient:
        return self._session.client(
            "cloudwatch", endpoint_url=self.endpoint_url, config=self._config
        )

    @functools.cached_property
    def sns(self) -> SNSClient:
        return self._session.client("sns", endpoint_url=self.endpoint_url, config=self._config)
