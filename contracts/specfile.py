"""Contract spec files: what one model's container promises, in YAML or TOML.

A spec tells the suite what to send and what to expect, so checks judge the container against
its own promises instead of guessing. Every field is optional; without a spec the suite probes
JSON and CSV to learn what the container accepts. Format (YAML shown; TOML has the same keys)::

    version: 1                       # format version; only 1 exists
    name: sklearn-iris               # for reports
    instance_type: ml.m5.large       # default for --instance-type
    content_types: [application/json, text/csv]   # request types the container accepts
    accept_types: [application/json, text/csv]    # response types it can produce
    network_isolation: false         # true: must serve with no network (EnableNetworkIsolation)
    startup_timeout_s: 120           # health-check window for the run (60-3600)
    latency_budget_ms: 1000          # each example must answer within this (default 60000)
    concurrency: 8                   # concurrent requests that must all succeed
    env: {KEY: value}                # extra container environment
    examples:
      - name: one-row-json
        content_type: application/json
        accept: application/json     # optional
        json: {"instances": [[5.1, 3.5, 1.4, 0.2]]}   # or body: "text", or body_file: path
        expect:
          status: 200                # default 200
          content_type: application/json             # optional, media type only
          json: {...}                # exact JSON equality, or
          json_schema: {...}         # a JSON Schema the answer must match, or
          body: "text"               # exact text
    skip:
      - id: invocations.large-body
        reason: why this check does not apply to this model

``body_file`` is relative to the spec file. The JSON Schema of this format is
``contracts/spec.schema.json`` (regenerate with ``python -m smlocal.contracts.specfile``).
A spec that does not fit is a :class:`~emulator.errors.ConfigError` naming the field; so is a
file that is not UTF-8 or is empty (no fields at all: a wrong path or a truncated write is
never judged as a contract that promises nothing).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema

from smlocal.emulator.errors import ConfigError

__all__ = [
    "SCHEMA_PATH",
    "ContractSpec",
    "Example",
    "Expectation",
    "SkipEntry",
    "load_spec",
    "spec_digest",
]

SCHEMA_PATH = Path(__file__).with_name("spec.schema.json")
MediaType = str


class Expectation(BaseModel):
    """What an example's answer must be."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: int = Field(default=200, ge=100, le=599)
    content_type: MediaType | None = None
    json_: Any = Field(default=None, alias="json")
    json_schema: dict[str, Any] | None = None
    body: str | None = None

    @model_validator(mode="after")
    def _one_body_rule(self) -> Expectation:
        given = [n for n in ("json_", "json_schema", "body") if getattr(self, n) is not None]
        if len(given) > 1:
            names = ", ".join(n.rstrip("_") for n in given)
            raise ValueError(f"give at most one of json, json_schema, body (got {names})")
        return self


class Example(BaseModel):
    """One request the container must answer as expected."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    content_type: MediaType = Field(min_length=3)
    accept: MediaType | None = None
    body: str | None = None
    json_: Any = Field(default=None, alias="json")
    body_file: str | None = None
    expect: Expectation = Field(default_factory=Expectation)
    # Filled in by load_spec from body_file; not part of the format.
    file_bytes: SkipJsonSchema[bytes | None] = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="after")
    def _one_body(self) -> Example:
        given = [n for n in ("body", "json_", "body_file") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of body, json, body_file")
        return self

    def payload(self) -> bytes:
        if self.file_bytes is not None:
            return self.file_bytes
        if self.body is not None:
            return self.body.encode()
        return json.dumps(self.json_).encode()


class SkipEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class ContractSpec(BaseModel):
    """A model's contract: content types, examples, limits, and checks it opts out of."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    name: str | None = None
    instance_type: str | None = None
    content_types: tuple[MediaType, ...] = ()
    accept_types: tuple[MediaType, ...] = ()
    network_isolation: bool = False
    startup_timeout_s: float = Field(default=120, ge=60, le=3600)
    latency_budget_ms: float = Field(default=60_000, gt=0, le=60_000)
    concurrency: int = Field(default=8, ge=1, le=64)
    env: dict[str, str] = Field(default_factory=dict)
    examples: tuple[Example, ...] = ()
    skip: tuple[SkipEntry, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ContractSpec:
        names = [e.name for e in self.examples]
        if len(set(names)) != len(names):
            raise ValueError(f"examples: names must be unique, got {names}")
        if self.content_types:
            declared = {_media(t) for t in self.content_types}
            for index, example in enumerate(self.examples):
                if _media(example.content_type) not in declared:
                    raise ValueError(
                        f"examples.{index}.content_type: {example.content_type!r} is not in "
                        f"content_types {list(self.content_types)}"
                    )
        return self

    @property
    def declared_content_types(self) -> tuple[str, ...]:
        """Declared request types, or those of the examples when none are declared."""
        types = self.content_types or tuple(e.content_type for e in self.examples)
        return tuple(dict.fromkeys(_media(t) for t in types))

    def skip_reason(self, check_id: str) -> str | None:
        return next((s.reason for s in self.skip if s.id == check_id), None)


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "spec"
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _parse(path: Path, text: str) -> object:
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"spec {path} is not valid {path.suffix[1:].upper()}: {error}") from None


def load_spec(path: Path) -> ContractSpec:
    """Read and validate a spec file (``.yaml``/``.yml``/``.toml``); ConfigError on any fault."""
    if path.suffix.lower() not in (".yaml", ".yml", ".toml"):
        raise ConfigError(f"spec {path}: expected a .yaml, .yml or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read spec {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"spec {path} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}); save it as UTF-8"
        ) from None
    data = _parse(path, text)
    if data is None or data == {}:
        # An empty file is a mistake (a wrong path, a truncated write), never "no promises":
        # judged as one, it would record a pass for a contract nobody wrote. Run without
        # --spec to test without one.
        raise ConfigError(
            f"spec {path} is empty (no fields); give at least one field, e.g. `version: 1`, "
            "or leave out --spec to test without a spec"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"spec {path}: the top level must be a mapping of fields")
    try:
        spec = ContractSpec.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"invalid contract spec {path}: {_describe(error)}") from None
    return _load_body_files(spec, path.parent)


def _load_body_files(spec: ContractSpec, base: Path) -> ContractSpec:
    examples = []
    for index, example in enumerate(spec.examples):
        if example.body_file is None:
            examples.append(example)
            continue
        try:
            data = (base / example.body_file).read_bytes()
        except OSError as error:
            raise ConfigError(
                f"spec examples.{index}.body_file: cannot read {example.body_file}: "
                f"{error.strerror}"
            ) from None
        examples.append(example.model_copy(update={"file_bytes": data}))
    return spec.model_copy(update={"examples": tuple(examples)})


def spec_digest(spec: ContractSpec) -> str:
    """``sha256:<hex>`` of the spec's meaning (canonical JSON, body files included)."""
    data = spec.model_dump(mode="json", by_alias=True)
    for example, raw in zip(data["examples"], spec.examples, strict=True):
        if raw.file_bytes is not None:
            example["body_file_sha256"] = hashlib.sha256(raw.file_bytes).hexdigest()
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the spec format (what ``spec.schema.json`` holds)."""
    schema = ContractSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "smlocal contract spec"
    return schema


if __name__ == "__main__":
    # Regenerates contracts/spec.schema.json; a unit test keeps the two in step.
    SCHEMA_PATH.write_text(json.dumps(json_schema(), indent=2) + "\n")
    sys.stdout.write(f"wrote {SCHEMA_PATH}\n")
