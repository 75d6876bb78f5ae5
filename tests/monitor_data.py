"""Capture files as SageMaker writes them (reference §E.2), for the monitor tests.

``write_capture`` lays records out as ``{root}/{endpoint}/{variant}/yyyy/mm/dd/hh/
{MM}-{SS}-{mmm}-{uuid}.jsonl``, each line ``{"captureData": {"endpointInput": ...,
"endpointOutput": ...}, "eventMetadata": {"eventId", "inferenceTime"}, "eventVersion": "0"}``
with the payload CSV, JSON (as a string) or BASE64 encoded.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["capture_key", "capture_lines", "write_capture"]


def _part(payload: str, encoding: str, mode: str, content_type: str) -> dict[str, str]:
    data = base64.b64encode(payload.encode()).decode() if encoding == "BASE64" else payload
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def capture_lines(
    inputs: Sequence[Any], outputs: Sequence[Any] | None, hour: datetime, *,
    encoding: str = "CSV",
) -> str:  # fmt: skip
    """JSONL text: one record per input row (a list of values, or a dict for JSON)."""
    lines = []
    for i, row in enumerate(inputs):
        when = hour + timedelta(seconds=i % 3600)
        if encoding == "CSV" or (encoding == "BASE64" and not isinstance(row, dict)):
            payload, ctype = ",".join(str(v) for v in row), "text/csv"
        else:
            payload, ctype = json.dumps(row), "application/json"
        record: dict[str, Any] = {
            "captureData": {"endpointInput": _part(payload, encoding, "INPUT", ctype)},
            "eventMetadata": {
                "eventId": str(uuid.uuid4()),
                "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "eventVersion": "0",
        }
        if outputs is not None:
            out = outputs[i]
            out_payload = json.dumps(out) if isinstance(out, dict) else str(out)
            out_type = "application/json" if isinstance(out, dict) else "text/csv; charset=utf-8"
            out_encoding = "JSON" if isinstance(out, dict) else "CSV"
            record["captureData"]["endpointOutput"] = _part(
                out_payload, out_encoding, "OUTPUT", out_type
            )
        lines.append(json.dumps(record, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def capture_key(endpoint: str, hour: datetime, variant: str = "AllTraffic") -> str:
    return (
        f"{endpoint}/{variant}/{hour:%Y/%m/%d/%H}/"
        f"{hour:%M-%S}-{hour.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    )


def write_capture(
    root: Path, endpoint: str, inputs: Sequence[Any], hour: datetime, *,
    outputs: Sequence[Any] | None = None, encoding: str = "CSV",
) -> Path:  # fmt: skip
    path = root / capture_key(endpoint, hour)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(capture_lines(inputs, outputs, hour, encoding=encoding))
    return path
