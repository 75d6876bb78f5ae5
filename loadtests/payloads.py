"""Request bodies for a load test: one file, a JSON-lines file of many, or a contract spec.

A ``.jsonl`` / ``.ndjson`` file holds one request per line. A line is either the body itself
(any JSON value; sent as its JSON text) or an *envelope*: an object whose keys are ``body``
plus any of ``content_type``, ``custom_attributes``, ``target_variant``, ``accept`` — so one
file can mix normal requests with, say, ``"custom_attributes": "status=500"`` ones. A string
``body`` is sent as-is (e.g. CSV rows). Any other file is sent whole as one body.

A contract spec (``.yaml``/``.yml``/``.toml``, the format documented in
``contracts/specfile.py``) gives its ``examples``: each one's ``body``, ``json`` or
``body_file`` (relative to the spec), ``content_type`` and ``accept``; Locust counts each
example in its own statistics row, named ``{path} [{example name}]``. Examples that expect a
non-2xx status (deliberately bad requests) are left out: a load test measures answers, and
find-max stops at the first error. The spec is read here, not through ``contracts``, because
loadtests depends on the emulator only (DESIGN.md); only the example fields are read, and
``smlocal contract-test`` remains the spec's validator.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Payload", "load_payloads", "load_spec_payloads"]

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
    # A spec example's name: Locust then counts its requests in a row of their own.
    name: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.content_type}
        if self.accept:
            headers["Accept"] = self.accept
        if self.custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = self.custom_attributes
        if self.target_variant:
            headers["X-Amzn-SageMaker-Target-Variant"] = self.target_variant
        return headers

    def container_headers(self) -> dict[str, str]:
        """The headers as the container gets them from the runtime API (``--direct``): the
        same ones, and ``Accept: */*`` when the request names none, as the runtime API adds."""
        headers = self.headers()
        headers.setdefault("Accept", "*/*")
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


_SPEC_SUFFIXES = (".yaml", ".yml", ".toml")
_BODY_KEYS = ("body", "json", "body_file")


def _read_spec(path: Path) -> dict[str, Any]:
    if path.suffix.lower() not in _SPEC_SUFFIXES:
        raise ValueError(f"spec {path}: expected a .yaml, .yml or .toml contract spec")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise ValueError(f"cannot read spec {path}: {reason}") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"spec {path} is not valid {path.suffix[1:].upper()}: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"spec {path}: the top level must be a mapping of fields")
    return data


def _expected_status(example: dict[str, Any], where: str) -> int:
    expect = example.get("expect") or {}
    if not isinstance(expect, dict):
        raise ValueError(f"{where}.expect: must be a mapping")
    status = expect.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool):
        raise ValueError(f"{where}.expect.status: must be an integer, got {status!r}")
    return status


def _example_body(example: dict[str, Any], where: str, base: Path) -> bytes:
    given = [key for key in _BODY_KEYS if example.get(key) is not None]
    if len(given) != 1:
        raise ValueError(f"{where}: give exactly one of body, json, body_file (got {given})")
    key = given[0]
    value = example[key]
    if key == "json":
        return json.dumps(value).encode()
    if not isinstance(value, str):
        raise ValueError(f"{where}.{key}: must be a string")
    if key == "body":
        return value.encode()
    try:
        return (base / value).read_bytes()
    except OSError as error:
        raise ValueError(f"{where}.body_file: cannot read {value}: {error.strerror}") from None


def load_spec_payloads(path: Path, target_variant: str | None = None) -> list[Payload]:
    """One payload per example of a contract spec that expects a 2xx answer.

    ValueError naming the spec and the field when the file cannot be read, is not a spec, or
    has no such example.
    """
    data = _read_spec(path)
    examples = data.get("examples") or []
    if not isinstance(examples, list):
        raise ValueError(f"spec {path}: examples must be a list")
    payloads = []
    for index, example in enumerate(examples):
        where = f"spec {path}: examples.{index}"
        if not isinstance(example, dict):
            raise ValueError(f"{where}: must be a mapping")
        content_type = example.get("content_type")
        if not isinstance(content_type, str) or not content_type.strip():
            raise ValueError(f"{where}.content_type: required (e.g. application/json)")
        accept = example.get("accept")
        if accept is not None and not isinstance(accept, str):
            raise ValueError(f"{where}.accept: must be a string")
        body = _example_body(example, where, path.parent)
        if not 200 <= _expected_status(example, where) < 300:
            continue  # a deliberately failing request: not load
        name = str(example.get("name") or f"example-{index}")
        payloads.append(
            Payload(body, content_type, target_variant=target_variant, accept=accept, name=name)
        )
    if not payloads:
        raise ValueError(
            f"spec {path}: no examples to send (a load test needs at least one example "
            "expecting a 2xx answer)"
        )
    return payloads
