"""Request bodies for a load test: one file, or a JSON-lines file of many.

A ``.jsonl`` / ``.ndjson`` file holds one request per line. A line is either the body itself
(any JSON value; sent as its JSON text) or an *envelope*: an object whose keys are ``body``
plus any of ``content_type``, ``custom_attributes``, ``target_variant``, ``accept`` — so one
file can mix normal requests with, say, ``"custom_attributes": "status=500"`` ones. A string
``body`` is sent as-is (e.g. CSV rows). Any other file is sent whole as one body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Payload", "load_payloads"]

_ENVELOPE_KEYS = frozenset(
    {"body", "content_type", "custom_attributes", "target_variant", "accept"}
)
_JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Payload:
    body: bytes
    content_type: str
    custom_attributes: str | None = None
    target_variant: str | None = None
    accept: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.content_type}
        if self.accept:
            headers["Accept"] = self.accept
        if self.custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = self.custom_attributes
        if self.target_variant:
            headers["X-Amzn-SageMaker-Target-Variant"] = self.target_variant
        return headers


def _from_line(value: object, content_type: str, target_variant: str | None) -> Payload:
    if isinstance(value, dict) and "body" in value and set(value) <= _ENVELOPE_KEYS:
        body = value["body"]
        return Payload(
            body=body.encode() if isinstance(body, str) else json.dumps(body).encode(),
            content_type=str(value.get("content_type") or content_type),
            custom_attributes=value.get("custom_attributes"),
            target_variant=value.get("target_variant") or target_variant,
            accept=value.get("accept"),
        )
    return Payload(json.dumps(value).encode(), content_type, target_variant=target_variant)


def load_payloads(
    path: Path, content_type: str = "application/json", target_variant: str | None = None
) -> list[Payload]:
    """Every request in ``path`` (ValueError naming the line when a JSON line is broken)."""
    if path.suffix.lower() not in _JSONL_SUFFIXES:
        return [Payload(path.read_bytes(), content_type, target_variant=target_variant)]
    payloads = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            raise ValueError(f"{path}:{number}: not JSON: {error}") from None
        payloads.append(_from_line(value, content_type, target_variant))
    if not payloads:
        raise ValueError(f"{path}: no payloads")
    return payloads
