"""A production variant's ``ServerlessConfig`` as the core runs it, and the limits around it.

Facts (reference §B): MemorySizeInMB is 1024-6144 in 1 GB steps, MaxConcurrency 1-200,
ProvisionedConcurrency 1-200 and at most MaxConcurrency; a container must answer /ping within
3 minutes and /invocations within 1 minute; payloads are at most 4 MB each way.

Choices where AWS says no more than "compute resources proportional to the memory you select"
or nothing at all (each one constant here, listed in the README's conformance table):
:data:`MB_PER_VCPU` (one vCPU per 2048 MB, so 1024 MB gets 0.5 vCPU and 6144 MB gets 3) and
:data:`DEFAULT_IDLE_S` (an endpoint scales to zero after 300 s without a request; the
service setting ``smlocal server --serverless-idle-s``, read from :data:`IDLE_ENV`).
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "COLD_START_TIMEOUT_S",
    "DEFAULT_IDLE_S",
    "IDLE_ENV",
    "MAX_PAYLOAD_BYTES",
    "MB_PER_VCPU",
    "MEMORY_SIZES_MB",
    "ServerlessSpec",
    "idle_seconds",
]

MEMORY_SIZES_MB = (1024, 2048, 3072, 4096, 5120, 6144)
MB_PER_VCPU = 2048
COLD_START_TIMEOUT_S = 180
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
DEFAULT_IDLE_S = 300.0
IDLE_ENV = "SMLOCAL_SERVERLESS_IDLE_S"


class ServerlessSpec(BaseModel):
    """``ProductionVariantServerlessConfig``: memory, and how many requests at once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    memory_mb: int = Field(ge=1024, le=6144)
    max_concurrency: int = Field(ge=1, le=200)
    provisioned_concurrency: int | None = Field(default=None, ge=1, le=200)

    @model_validator(mode="after")
    def _consistent(self) -> ServerlessSpec:
        if self.memory_mb not in MEMORY_SIZES_MB:
            sizes = ", ".join(map(str, MEMORY_SIZES_MB))
            raise ValueError(f"MemorySizeInMB {self.memory_mb} is not one of {sizes}")
        if (self.provisioned_concurrency or 0) > self.max_concurrency:
            raise ValueError(
                f"ProvisionedConcurrency {self.provisioned_concurrency} is greater than "
                f"MaxConcurrency {self.max_concurrency}"
            )
        return self

    @property
    def vcpus(self) -> float:
        return self.memory_mb / MB_PER_VCPU

    @property
    def warm(self) -> int:
        """Containers kept running while idle (ProvisionedConcurrency)."""
        return self.provisioned_concurrency or 0

    def as_aws(self) -> dict[str, int]:
        """As DescribeEndpoint's Current/DesiredServerlessConfig shows it."""
        shown = {"MemorySizeInMB": self.memory_mb, "MaxConcurrency": self.max_concurrency}
        if self.provisioned_concurrency is not None:
            shown["ProvisionedConcurrency"] = self.provisioned_concurrency
        return shown

    @classmethod
    def from_aws(cls, config: dict[str, int]) -> ServerlessSpec:
        return cls(
            memory_mb=config["MemorySizeInMB"],
            max_concurrency=config["MaxConcurrency"],
            provisioned_concurrency=config.get("ProvisionedConcurrency"),
        )


def idle_seconds() -> float:
    """The idle time before a serverless endpoint scales to zero (the service setting)."""
    value = os.environ.get(IDLE_ENV)
    return float(value) if value else DEFAULT_IDLE_S
