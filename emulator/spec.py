"""``EndpointSpec``: the single description of an endpoint that every command reads.

The CLI (and later config files and the control plane) build one; the emulator, contract
tests, load tests and promote all consume it. Validation here mirrors SageMaker's own
CreateEndpointConfig / CreateModel limits, so a spec the emulator accepts is one SageMaker
would accept too; a violation is a :class:`ConfigError` naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from smlocal.emulator.capture import CaptureSpec
from smlocal.emulator.errors import ConfigError
from smlocal.emulator.instance_types import InstanceType, lookup_instance_type
from smlocal.emulator.multi_model_config import MultiModelSpec
from smlocal.emulator.serverless_config import ServerlessSpec

__all__ = [
    "DEFAULT_INSTANCE_TYPE",
    "DEFAULT_STARTUP_TIMEOUT_S",
    "EndpointSpec",
    "VariantSpec",
    "build_spec",
]

DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_STARTUP_TIMEOUT_S = 480
# CreateModel's limits on ContainerDefinition.Environment.
_ENV_ENTRY_MAX_BYTES = 1024
_ENV_TOTAL_MAX_BYTES = 32 * 1024
_ENV_KEY = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_MAX_VARIANTS = 10

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=f"^{_NAME.pattern}$")]


class VariantSpec(BaseModel):
    """One production variant: a container image, its model and where it runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name = "AllTraffic"
    image: str = Field(min_length=1)
    model: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    instance_type: str = DEFAULT_INSTANCE_TYPE
    # 0 only on an asynchronous endpoint (scaled to zero; requests wait in its queue).
    instance_count: int = Field(default=1, ge=0, le=20)
    weight: float = Field(default=1.0, ge=0.0)
    # CreateModel's EnableNetworkIsolation: the container gets no outbound network.
    network_isolation: bool = False
    # ServerlessConfig: on-demand containers instead of instance_type x instance_count.
    serverless: ServerlessSpec | None = None
    # Model Mode MultiModel: ``model`` is a prefix of many models, chosen per request.
    multi_model: MultiModelSpec | None = None

    @field_validator("instance_type")
    @classmethod
    def _known_instance_type(cls, value: str) -> str:
        try:
            lookup_instance_type(value)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("env")
    @classmethod
    def _environment_limits(cls, env: dict[str, str]) -> dict[str, str]:
        total = 0
        for key, value in env.items():
            if not _ENV_KEY.fullmatch(key):
                raise ValueError(f"environment name {key!r} is not a valid variable name")
            for what, text in (("name", key), ("value", value)):
                if len(text.encode()) > _ENV_ENTRY_MAX_BYTES:
                    raise ValueError(
                        f"environment {what} of {key!r} is over SageMaker's "
                        f"{_ENV_ENTRY_MAX_BYTES}-byte limit"
                    )
            total += len(key.encode()) + len(value.encode())
        if total > _ENV_TOTAL_MAX_BYTES:
            raise ValueError(
                f"environment is {total} bytes in all; SageMaker allows {_ENV_TOTAL_MAX_BYTES}"
            )
        return env

    @property
    def instance(self) -> InstanceType:
        return lookup_instance_type(self.instance_type)


class EndpointSpec(BaseModel):
    """An endpoint: a name, 1-10 production variants and how it is started."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    variants: tuple[VariantSpec, ...] = Field(min_length=1, max_length=_MAX_VARIANTS)
    startup_timeout_s: float = Field(default=DEFAULT_STARTUP_TIMEOUT_S, ge=60, le=3600)
    invocation_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    # AsyncInferenceConfig: requests queue, so a variant may be scaled to zero instances.
    asynchronous: bool = False
    # DataCaptureConfig: requests and answers recorded as SageMaker's capture files.
    capture: CaptureSpec | None = None

    @model_validator(mode="after")
    def _variants_consistent(self) -> EndpointSpec:
        if not self.asynchronous:
            empty = [i for i, v in enumerate(self.variants) if v.instance_count == 0]
            if empty:
                where = ", ".join(f"variants.{i}.instance_count" for i in empty)
                raise ValueError(
                    f"{where}: 0 instances; only an asynchronous endpoint can scale to zero "
                    "(a real-time one would refuse every request)"
                )
        names = [variant.name for variant in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if sum(variant.weight for variant in self.variants) <= 0:
            raise ValueError("at least one variant needs a weight above 0")
        return self

    def variant(self, name: str) -> VariantSpec | None:
        return next((v for v in self.variants if v.name == name), None)


def _describe(error: ValidationError) -> str:
    parts = []
    items = error.errors()
    for item in items:
        # A list whose items failed also reports "too short"; the item errors say it better.
        nested = any(len(o["loc"]) > len(item["loc"]) for o in items if o is not item)
        if item["type"] == "too_short" and nested:
            continue
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["loc"][-1:] == ("instance_type",):
            parts.append(message)  # says which type and what to use: no field path needed
            continue
        where = ".".join(str(p) for p in item["loc"]) or "spec"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def build_spec(**fields: object) -> EndpointSpec:
    """Validate ``fields`` into an EndpointSpec, or raise ConfigError naming each bad field."""
    try:
        return EndpointSpec.model_validate(fields)
    except ValidationError as error:
        described = _describe(error)
        if described.startswith("unknown instance type") and ";" not in described:
            raise ConfigError(described) from None
        raise ConfigError(f"invalid endpoint spec: {described}") from None
