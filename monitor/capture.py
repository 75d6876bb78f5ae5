"""Captured records of a time window, from a local directory or an S3 prefix, as a table.

Capture files lie under ``.../yyyy/mm/dd/hh/<name>.jsonl`` (reference §E.2); the hour folders
choose the files of the window ``[start, end)`` and each record's ``eventMetadata.
inferenceTime`` the records. A record's ``captureData.endpointInput`` / ``endpointOutput``
(``--capture-data input|output|both``) is decoded by its ``encoding``: ``CSV`` (one row per
line), ``JSON`` (:func:`~smlocal.monitor.table.json_rows`), ``BASE64`` (then CSV or JSON by
``observedContentType``, or as ``dataset_format`` says). With ``both``, the output's values
come first and the input's after them, the label-first order of SageMaker's CSV training data.

S3 goes through boto3 (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` reach moto or another
S3); its errors, like a missing directory, are a :class:`MonitorInputError`.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from smlocal.monitor.errors import MonitorInputError
from smlocal.monitor.table import Cell, Table, json_rows, table_from_rows

__all__ = ["CaptureWindow", "WindowData", "parse_time", "read_window"]

log = logging.getLogger(__name__)

_HOUR_PATH = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+\.jsonl$")
_ENDPOINT_PATH = re.compile(r"(?:^|/)([^/]+)/([^/]+)/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+\.jsonl$")
_INDEX: dict[str, tuple[str, ...]] = {
    "input": ("endpointInput",),
    "output": ("endpointOutput",),
    "both": ("endpointOutput", "endpointInput"),
}


@dataclass(frozen=True)
class CaptureWindow:
    source: str
    start: datetime | None = None
    end: datetime | None = None
    capture_data: str = "input"
    dataset_format: str | None = None


@dataclass(frozen=True)
class WindowData:
    table: Table
    records: int
    files: int
    skipped: int  # lines that were not capture records, or payloads that could not be decoded
    endpoint: str | None  # from the {endpoint}/{variant}/yyyy/... layout, when it is there


def parse_time(text: str, flag: str) -> datetime:
    """ISO-8601 (``2026-12-02T05:00:00Z``, ``2026-12-02T05``, a date); naive means UTC."""
    raw = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}", raw):
        raw += ":00"
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise MonitorInputError(
            f"{flag} {text!r}: not an ISO-8601 time (e.g. 2026-12-02T05:00:00Z)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _hour_of(path: str) -> datetime | None:
    match = _HOUR_PATH.search(path)
    if not match:
        return None
    y, mo, d, h = (int(g) for g in match.groups())
    try:
        return datetime(y, mo, d, h, tzinfo=UTC)
    except ValueError:
        return None


def _in_window(hour: datetime, window: CaptureWindow) -> bool:
    if window.start is not None and hour + timedelta(hours=1) <= window.start:
        return False
    return not (window.end is not None and hour >= window.end)


def _local_files(root: Path) -> Iterator[tuple[str, bytes]]:
    if not root.is_dir():
        raise MonitorInputError(f"--capture {root}: no such directory")
    for path in sorted(root.rglob("*.jsonl")):
        rel = path.relative_to(root).as_posix()
        yield rel, path.read_bytes()


def _s3_files(uri: str) -> Iterator[tuple[str, bytes]]:
    import boto3
    import botocore.exceptions

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise MonitorInputError(f"--capture {uri}: no bucket (s3://BUCKET/PREFIX)")
    s3 = boto3.client("s3")
    try:
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl"))
        for key in sorted(keys):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            yield key[len(prefix) :] if key.startswith(prefix) else key, body
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise MonitorInputError(f"--capture {uri}: S3 said: {error}") from None


def _decode(part: dict[str, Any], window: CaptureWindow) -> list[list[Cell]]:
    data = part.get("data")
    if not isinstance(data, str):
        raise ValueError("no data")
    encoding = str(part.get("encoding", "")).upper()
    content_type = str(part.get("observedContentType", "")).lower()
    if encoding == "BASE64":
        data = base64.b64decode(data, validate=True).decode("utf-8")
        encoding = "JSON" if "json" in content_type else "CSV" if "csv" in content_type else ""
    fmt = (window.dataset_format or encoding).upper()
    if fmt == "CSV":
        return [[(None, v) for v in row] for row in csv.reader(data.splitlines()) if row]
    if fmt == "JSON":
        return json_rows(json.loads(data))
    raise ValueError(f"content type {content_type!r} is neither CSV nor JSON")


def _record_rows(record: Any, window: CaptureWindow) -> list[list[Cell]] | None:
    if not isinstance(record, dict) or not isinstance(record.get("captureData"), dict):
        return None
    meta = record.get("eventMetadata") or {}
    when = meta.get("inferenceTime") if isinstance(meta, dict) else None
    if isinstance(when, str) and (window.start or window.end):
        try:
            at = parse_time(when, "inferenceTime")
        except MonitorInputError:
            return None
        if (window.start and at < window.start) or (window.end and at >= window.end):
            return []
    parts = [record["captureData"].get(k) for k in _INDEX[window.capture_data]]
    decoded = [_decode(p, window) for p in parts if isinstance(p, dict)]
    if not decoded:
        return None
    if len(decoded) == 1:
        return decoded[0]
    first, second = decoded
    if len(first) != len(second):
        raise ValueError("the input and the output hold different numbers of rows")
    # Positional cells are numbered across both parts, the output's first: _c0 is the label.
    return [[*a, *b] for a, b in zip(first, second, strict=True)]


def read_window(window: CaptureWindow) -> WindowData:
    """Every captured record of the window, as rows of one table."""
    files = (
        _s3_files(window.source)
        if window.source.startswith("s3://")
        else _local_files(Path(window.source))
    )
    rows: list[list[Cell]] = []
    records = used_files = skipped = 0
    endpoint: str | None = None
    for rel, body in files:
        hour = _hour_of(rel)
        if hour is None or not _in_window(hour, window):
            continue
        used_files += 1
        match = _ENDPOINT_PATH.search(f"{window.source.rstrip('/')}/{rel}")
        endpoint = endpoint or (match.group(1) if match else None)
        for line in body.decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            try:
                got = _record_rows(json.loads(line), window)
            except (ValueError, binascii.Error, UnicodeDecodeError) as error:
                log.warning("skipped a capture record in %s: %s", rel, error)
                skipped += 1
                continue
            if got is None:
                skipped += 1
            elif got:
                records += 1
                rows.extend(got)
    if not rows:
        raise MonitorInputError(
            f"--capture {window.source}: no captured records in the window "
            f"({_describe(window)}; {used_files} capture files in it, {skipped} unreadable records)"
        )
    return WindowData(
        table_from_rows(rows, where=window.source), records, used_files, skipped, endpoint
    )


def _describe(window: CaptureWindow) -> str:
    start = window.start.isoformat() if window.start else "the first record"
    end = window.end.isoformat() if window.end else "the last"
    return f"from {start} to {end}"
