"""Encoding of AWS event-stream messages, the framing InvokeEndpointWithResponseStream uses.

Each message: total length, headers length, prelude CRC32, headers (name, type 7 = string,
value), payload, message CRC32 — the format botocore's ``botocore.eventstream`` decodes. Only
the encoder lives here; botocore's own decoder is what tests check it against.
"""

from __future__ import annotations

import json
import struct
import zlib

__all__ = ["exception_message", "payload_part"]

_STRING = 7


def _headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def _message(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = _headers(headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", zlib.crc32(prelude))
    body = head + encoded + payload
    return body + struct.pack(">I", zlib.crc32(body))


def payload_part(data: bytes) -> bytes:
    """One ``PayloadPart`` event carrying ``data``."""
    return _message(
        {
            ":event-type": "PayloadPart",
            ":content-type": "application/octet-stream",
            ":message-type": "event",
        },
        data,
    )


def exception_message(kind: str, message: str, error_code: str | None = None) -> bytes:
    """A modelled stream error (``ModelStreamError`` or ``InternalStreamFailure``)."""
    payload: dict[str, str] = {"Message": message}
    if error_code is not None:
        payload["ErrorCode"] = error_code
    return _message(
        {
            ":exception-type": kind,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps(payload).encode(),
    )
