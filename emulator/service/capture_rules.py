"""``DataCaptureConfig`` on the local service: from an EndpointConfig to the spec, and back
into DescribeEndpoint.

botocore's model has already checked the config's members at CreateEndpointConfig (required
members, 0-100, CaptureMode's enum, content-type patterns); here the destination is checked
at CreateEndpoint / UpdateEndpoint (``s3://`` or a local directory; a ValidationException
for other schemes) and the summary DescribeEndpoint shows is built from what is deployed.
Serverless variants refuse data capture in :mod:`.serverless_rules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.capture import CaptureSpec, parse_destination

__all__ = ["capture_spec", "capture_summary"]


def capture_spec(config: Mapping[str, Any]) -> CaptureSpec | None:
    """The endpoint config's data capture, as the core runs it (None: none configured)."""
    found = config.get("DataCaptureConfig")
    if not found:
        return None
    try:
        parse_destination(str(found["DestinationS3Uri"]))
        return CaptureSpec.from_aws(dict(found))
    except (ValueError, KeyError) as error:
        raise AwsError("ValidationException", f"DataCaptureConfig: {error}") from None


def capture_summary(deployed_spec: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """DescribeEndpoint's ``DataCaptureConfig`` for the deployed spec (a JSON dump)."""
    capture = (deployed_spec or {}).get("capture")
    if not capture:
        return None
    return CaptureSpec.model_validate(capture).summary()
