"""Data capture (``EndpointConfig.DataCaptureConfig``): the settings and the records.

What SageMaker writes (reference §E.2) and this module reproduces: one JSON object per line,
``captureData.endpointInput`` / ``endpointOutput`` (``observedContentType`` the raw header,
``mode`` INPUT / OUTPUT, ``data``, ``encoding``), ``eventMetadata`` (``eventId``,
``inferenceId`` when the caller sent one, ``inferenceTime`` ISO-8601 UTC to the second) and
``eventVersion`` "0"; objects under ``{DestinationS3Uri}/{endpoint}/{variant}/yyyy/mm/dd/hh/``
named ``{MM}-{SS}-{mmm}-{uuid}.jsonl``. A payload whose media type (parameters aside,
case-insensitive) is in ``CsvContentTypes`` is written as text with encoding CSV, in
``JsonContentTypes`` as text with encoding JSON, anything else (and text that is not UTF-8)
as BASE64; with no ``CaptureContentTypeHeader`` everything is BASE64, as botocore's
documentation of that member says.

This module is pure (no I/O); :mod:`~smlocal.emulator.capture_writer` buffers and writes.
"""

from __future__ import annotations

import base64
import datetime
import json
import math
import posixpath
import random
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CAPTURE_MODES",
    "EVENT_VERSION",
    "CaptureSpec",
    "Destination",
    "Exchange",
    "capture_key",
    "encode_payload",
    "hour_of",
    "parse_destination",
    "record_line",
]

EVENT_VERSION = "0"
# CaptureMode -> (capture the request, capture the response).
CAPTURE_MODES = {"Input": (True, False), "Output": (False, True), "InputAndOutput": (True, True)}


class CaptureSpec(BaseModel):
    """An endpoint's ``DataCaptureConfig`` as the core runs it (one per endpoint: AWS applies
    it to every variant)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    sampling_percentage: int = Field(ge=0, le=100)
    # s3://bucket/prefix, or (smlocal's extension) a local directory, plain or file://.
    destination: str = Field(min_length=1)
    kms_key_id: str | None = None
    capture_input: bool = True
    capture_output: bool = True
    csv_types: tuple[str, ...] = ()
    json_types: tuple[str, ...] = ()

    @classmethod
    def from_aws(cls, config: dict[str, Any]) -> CaptureSpec:
        modes = [str(o["CaptureMode"]) for o in config.get("CaptureOptions") or []]
        header = config.get("CaptureContentTypeHeader") or {}
        return cls(
            enabled=bool(config.get("EnableCapture", True)),
            sampling_percentage=int(config["InitialSamplingPercentage"]),
            destination=str(config["DestinationS3Uri"]),
            kms_key_id=config.get("KmsKeyId") or None,
            capture_input=any(CAPTURE_MODES[m][0] for m in modes),
            capture_output=any(CAPTURE_MODES[m][1] for m in modes),
            csv_types=tuple(header.get("CsvContentTypes") or ()),
            json_types=tuple(header.get("JsonContentTypes") or ()),
        )

    def as_aws(self) -> dict[str, Any]:
        """The ``DataCaptureConfig`` of a CreateEndpointConfig request (``smlocal serve``)."""
        mode = {(True, False): "Input", (False, True): "Output"}.get(
            (self.capture_input, self.capture_output), "InputAndOutput"
        )
        config: dict[str, Any] = {
            "EnableCapture": self.enabled,
            "InitialSamplingPercentage": self.sampling_percentage,
            "DestinationS3Uri": self.destination,
            "CaptureOptions": [{"CaptureMode": mode}],
        }
        if self.kms_key_id:
            config["KmsKeyId"] = self.kms_key_id
        header = {}
        if self.csv_types:
            header["CsvContentTypes"] = list(self.csv_types)
        if self.json_types:
            header["JsonContentTypes"] = list(self.json_types)
        if header:
            config["CaptureContentTypeHeader"] = header
        return config

    def summary(self) -> dict[str, Any]:
        """DescribeEndpoint's ``DataCaptureConfig`` (botocore's DataCaptureConfigSummary)."""
        shown: dict[str, Any] = {
            "EnableCapture": self.enabled,
            "CaptureStatus": "Started" if self.enabled else "Stopped",
            "CurrentSamplingPercentage": self.sampling_percentage,
            "DestinationS3Uri": self.destination,
        }
        if self.kms_key_id:
            shown["KmsKeyId"] = self.kms_key_id
        return shown

    @property
    def active(self) -> bool:
        """Whether any request can be captured at all."""
        return (
            self.enabled
            and self.sampling_percentage > 0
            and (self.capture_input or self.capture_output)
        )

    def sampled(self, draw: float | None = None) -> bool:
        """Whether this request is captured: each one independently with the percentage's
        probability (``draw``: a uniform number in [0, 1), for tests)."""
        if self.sampling_percentage >= 100:
            return True
        value = random.random() if draw is None else draw  # noqa: S311 - sampling, not secrets
        return value * 100 < self.sampling_percentage


@dataclass(frozen=True, slots=True)
class Exchange:
    """One answered request as the request path hands it over (no encoding done there)."""

    variant: str
    at: float  # epoch seconds when the request arrived
    input_type: str | None
    input_body: bytes
    output_type: str | None
    output_body: bytes
    inference_id: str | None = None


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def encode_payload(
    body: bytes, content_type: str | None, csv_types: tuple[str, ...], json_types: tuple[str, ...]
) -> tuple[str, str]:
    """``(encoding, data)`` for one captured payload."""
    media = _media_type(content_type or "")
    kind = None
    if media and media in {_media_type(t) for t in csv_types}:
        kind = "CSV"
    elif media and media in {_media_type(t) for t in json_types}:
        kind = "JSON"
    if kind is not None:
        try:
            return kind, body.decode("utf-8")
        except UnicodeDecodeError:
            pass  # not text after all: kept exactly, as base64
    return "BASE64", base64.b64encode(body).decode("ascii")


def _side(mode: str, body: bytes, content_type: str | None, spec: CaptureSpec) -> dict[str, Any]:
    encoding, data = encode_payload(body, content_type, spec.csv_types, spec.json_types)
    side: dict[str, Any] = {}
    if content_type is not None:
        side["observedContentType"] = content_type
    side.update(mode=mode, data=data, encoding=encoding)
    return side


def _utc(at: float) -> datetime.datetime:
    """``at`` in UTC, truncated (never rounded up) to the microsecond, so a record's
    inferenceTime, its hour folder and its file name agree on the second and the hour."""
    seconds = math.floor(at)
    micro = min(999_999, int((at - seconds) * 1_000_000))
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment + datetime.timedelta(microseconds=micro)


def record_line(exchange: Exchange, spec: CaptureSpec, event_id: str | None = None) -> str:
    """The JSONL line (no newline) SageMaker writes for ``exchange``."""
    data: dict[str, Any] = {}
    if spec.capture_input:
        data["endpointInput"] = _side("INPUT", exchange.input_body, exchange.input_type, spec)
    if spec.capture_output:
        data["endpointOutput"] = _side("OUTPUT", exchange.output_body, exchange.output_type, spec)
    metadata: dict[str, Any] = {"eventId": event_id or str(uuid.uuid4())}
    if exchange.inference_id:
        metadata["inferenceId"] = exchange.inference_id
    metadata["inferenceTime"] = _utc(exchange.at).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {"captureData": data, "eventMetadata": metadata, "eventVersion": EVENT_VERSION}
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def capture_key(
    prefix: str, endpoint: str, variant: str, first_at: float, file_id: str | None = None
) -> str:
    """Where a file whose first record arrived at ``first_at`` goes, below ``prefix``:
    ``{prefix}/{endpoint}/{variant}/yyyy/mm/dd/hh/{MM}-{SS}-{mmm}-{uuid}.jsonl``."""
    moment = _utc(first_at)
    hour = moment.strftime("%Y/%m/%d/%H")
    name = f"{moment:%M-%S}-{moment.microsecond // 1000:03d}-{file_id or uuid.uuid4()}.jsonl"
    return posixpath.join(prefix.strip("/"), endpoint, variant, hour, name).lstrip("/")


def hour_of(at: float) -> str:
    """The ``yyyy/mm/dd/hh`` a record of ``at`` belongs to (its file's folder)."""
    return _utc(at).strftime("%Y/%m/%d/%H")


@dataclass(frozen=True)
class Destination:
    """Where captured files go: an S3 bucket and key prefix, or a local directory."""

    bucket: str | None  # None: a local directory
    prefix: str  # the key prefix in the bucket, or the directory


def parse_destination(uri: str) -> Destination:
    """``s3://bucket[/prefix]``; a local directory as ``file:///dir`` or a plain path
    (smlocal's extension). ValueError for anything else (e.g. an ``https://`` URI)."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"DestinationS3Uri {uri!r} names no bucket")
        return Destination(bucket, prefix.strip("/"))
    if uri.startswith("file://"):
        return Destination(None, uri[len("file://") :] or "/")
    if "://" in uri:
        raise ValueError(
            f"DestinationS3Uri {uri!r}: smlocal writes capture to s3://bucket/prefix or to a "
            "local directory (a path or file://...)"
        )
    return Destination(None, uri)
