"""Captured records of a time window, from a local directory or an S3 prefix, as a table.

Capture files lie under ``.../yyyy/mm/dd/hh/<name>.jsonl`` (reference §E.2); the hour folders
choose the files of the window ``[start, end)`` and each record's ``eventMetadata.
inferenceTime`` the records. A record's ``captureData.endpointInput`` / ``endpointOutput``
(``--capture-data input|output|both``) is decoded by its ``encoding``: ``CSV`` (one row per
line), ``JSON`` (:func:`~smlocal.monitor.table.json_rows`), ``BASE64`` (then CSV or JSON by
``observedContentType``, or as ``dataset_format`` says). With ``both``, the output's values
come first and the input's after them, the label-first order of SageMaker's CSV training data.

The files come from a :class:`~smlocal.monitor.sources.CaptureSource` (a directory or an S3
prefix); a window without records is a :class:`MonitorInputError`.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from smlocal.monitor.errors import MonitorInputError
from smlocal.monitor.sources import CaptureSource
from smlocal.monitor.table import Cell, Table, json_rows, table_from_rows

__all__ = ["CaptureWindow", "WindowData", "parse_time", "read_window"]

log = logging.getLogger(__name__)

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


def _in_window(hour: datetime, window: CaptureWindow) -> bool:
    if window.start is not None and hour + timedelta(hours=1) <= window.start:
        return False
    return not (window.end is not None and hour >= window.end)


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
        try:
            return json_rows(json.loads(data))
        except json.JSONDecodeError:
            if "\n" not in data.strip():
                raise
            # JSON Lines (application/jsonlines): one document per line.
            return [row for line in data.splitlines() if line.strip()
                    for row in json_rows(json.loads(line))]  # fmt: skip
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
    source = CaptureSource(window.source)
    rows: list[list[Cell]] = []
    records = used_files = skipped = 0
    endpoints: set[str] = set()
    for file in source.files():
        if not _in_window(file.hour, window):
            continue
        rel, body = file.rel, source.read(file)
        used_files += 1
        match = _ENDPOINT_PATH.search(f"{window.source.rstrip('/')}/{rel}")
        if match:
            endpoints.add(match.group(1))
        for line in body.decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            try:
                got = _record_rows(json.loads(line), window)
            except (ValueError, binascii.Error, csv.Error, RecursionError) as error:
                log.warning("skipped a capture record in %s: %s", rel, error)
                skipped += 1
                continue
            if got is None:
                skipped += 1
            elif got:
                records += 1
                rows.extend(got)
    if len(endpoints) > 1:  # one report, its alerts and metrics are for one endpoint
        names = ", ".join(sorted(endpoints))
        raise MonitorInputError(
            f"--capture {window.source} holds the capture of {len(endpoints)} endpoints "
            f"({names}): pass one endpoint's prefix, e.g. "
            f"{window.source.rstrip('/')}/{min(endpoints)}"
        )
    endpoint = next(iter(endpoints), None)
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
