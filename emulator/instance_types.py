"""SageMaker ML instance types: the CPU, memory and accelerator figures the emulator enforces.

A container served as ``ml.m5.large`` gets that type's vCPUs and memory as Docker limits, so a
model that would run out of memory on the real instance runs out of memory here too. Figures
are AWS's published instance specifications.
"""

from __future__ import annotations

from dataclasses import dataclass

from smlocal.emulator.errors import ConfigError

__all__ = ["INSTANCE_TYPES", "InstanceType", "lookup_instance_type"]


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_gib: float
    gpus: int = 0
    arch: str = "amd64"

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * 1024**3)


def _types(*specs: InstanceType) -> dict[str, InstanceType]:
    return {spec.name: spec for spec in specs}


INSTANCE_TYPES: dict[str, InstanceType] = _types(
    InstanceType("ml.t2.medium", 2, 4),
    InstanceType("ml.t2.large", 2, 8),
    InstanceType("ml.t2.xlarge", 4, 16),
    InstanceType("ml.m5.large", 2, 8),
    InstanceType("ml.m5.xlarge", 4, 16),
    InstanceType("ml.m5.2xlarge", 8, 32),
    InstanceType("ml.m5.4xlarge", 16, 64),
    InstanceType("ml.m6i.large", 2, 8),
    InstanceType("ml.m6i.xlarge", 4, 16),
    InstanceType("ml.c5.large", 2, 4),
    InstanceType("ml.c5.xlarge", 4, 8),
    InstanceType("ml.c5.2xlarge", 8, 16),
    InstanceType("ml.c5.4xlarge", 16, 32),
    InstanceType("ml.c6i.large", 2, 4),
    InstanceType("ml.c6i.xlarge", 4, 8),
    InstanceType("ml.r5.large", 2, 16),
    InstanceType("ml.r5.xlarge", 4, 32),
    InstanceType("ml.m6g.large", 2, 8, arch="arm64"),
    InstanceType("ml.m6g.xlarge", 4, 16, arch="arm64"),
    InstanceType("ml.c6g.large", 2, 4, arch="arm64"),
    InstanceType("ml.c7g.large", 2, 4, arch="arm64"),
    InstanceType("ml.g4dn.xlarge", 4, 16, gpus=1),
    InstanceType("ml.g4dn.2xlarge", 8, 32, gpus=1),
    InstanceType("ml.g5.xlarge", 4, 16, gpus=1),
    InstanceType("ml.g5.2xlarge", 8, 32, gpus=1),
    InstanceType("ml.g6.xlarge", 4, 16, gpus=1),
    InstanceType("ml.p3.2xlarge", 8, 61, gpus=1),
    InstanceType("ml.inf2.xlarge", 4, 16),
)


def lookup_instance_type(name: str) -> InstanceType:
    try:
        return INSTANCE_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(INSTANCE_TYPES))
        raise ConfigError(f"unknown instance type {name!r}; smlocal knows: {known}") from None
