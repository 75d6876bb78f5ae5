"""SageMaker ML instance types: the CPU, memory and accelerator figures the emulator enforces.

A container served as ``ml.m5.large`` gets that type's vCPUs and memory as Docker limits, so a
model that would run out of memory on the real instance runs out of memory here too.

The figures live in ``instance_types.json`` beside this module: one row per SageMaker real-time
hosting type (every ``ProductionVariantInstanceType`` value in botocore's sagemaker model), with
the date they were taken (``TABLE_AS_OF``) and where they came from (``TABLE_SOURCES``): AWS's
published EC2 instance-type specifications, since an ``ml.<family>.<size>`` type runs on the EC2
``<family>.<size>`` hardware. NVIDIA GPUs are ``gpus``; AWS Inferentia/Trainium chips and Habana
Gaudi cards are ``accelerators`` (a container reaches them through other devices than the
NVIDIA runtime's).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from smlocal.emulator.errors import ConfigError

__all__ = [
    "INSTANCE_TYPES",
    "TABLE_AS_OF",
    "TABLE_SOURCES",
    "InstanceType",
    "lookup_instance_type",
]

_TABLE_FILE = "instance_types.json"
_PREFIX = "ml."
# difflib is quadratic in the input's length; nothing longer is a plausible typo of a type name.
_MAX_MATCHED_CHARS = 64
_MAX_SHOWN_CHARS = 80


@dataclass(frozen=True)
class InstanceType:
    """One SageMaker instance type; device memory figures are totals over all devices."""

    name: str
    vcpus: int
    memory_gib: float
    gpus: int = 0
    arch: str = "amd64"
    gpu_memory_gib: float = 0.0
    # AWS Inferentia / Trainium chips, Habana Gaudi cards: not GPUs.
    accelerators: int = 0
    accelerator_memory_gib: float = 0.0
    # the device model of the GPUs or accelerators, e.g. "NVIDIA A10G", "AWS Inferentia2"
    accelerator: str = ""

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * 1024**3)

    @property
    def family(self) -> str:
        """``ml.g5`` for ``ml.g5.12xlarge``."""
        return self.name.rpartition(".")[0]

    def describe(self) -> str:
        """One line a user reads: ``ml.g5.12xlarge: 48 vCPU, 192 GiB, 4 x NVIDIA A10G (96 GiB)``."""
        text = f"{self.name}: {self.vcpus} vCPU, {self.memory_gib:g} GiB"
        if self.gpus:
            text += f", {self.gpus} x {self.accelerator} GPU ({self.gpu_memory_gib:g} GiB)"
        if self.accelerators:
            text += (
                f", {self.accelerators} x {self.accelerator} ({self.accelerator_memory_gib:g} GiB)"
            )
        if self.arch != "amd64":
            text += f", {self.arch}"
        return text


def _load_table() -> tuple[dict[str, InstanceType], str, tuple[str, ...]]:
    raw: dict[str, Any] = json.loads(
        resources.files(__package__ or "smlocal.emulator").joinpath(_TABLE_FILE).read_text()
    )
    columns: list[str] = raw["columns"]
    types: dict[str, InstanceType] = {}
    for row in raw["rows"]:
        fields = dict(zip(columns, row, strict=True))
        spec = InstanceType(
            name=str(fields["name"]),
            vcpus=int(fields["vcpus"]),
            memory_gib=float(fields["memory_gib"]),
            gpus=int(fields["gpus"]),
            arch=str(fields["arch"]),
            gpu_memory_gib=float(fields["gpu_memory_gib"]),
            accelerators=int(fields["accelerators"]),
            accelerator_memory_gib=float(fields["accelerator_memory_gib"]),
            accelerator=str(fields["accelerator"]),
        )
        if spec.name in types:
            raise RuntimeError(f"{_TABLE_FILE} lists {spec.name} twice")
        types[spec.name] = spec
    return types, str(raw["as_of"]), tuple(str(source) for source in raw["sources"])


INSTANCE_TYPES: dict[str, InstanceType]
TABLE_AS_OF: str
TABLE_SOURCES: tuple[str, ...]
INSTANCE_TYPES, TABLE_AS_OF, TABLE_SOURCES = _load_table()


def lookup_instance_type(name: str) -> InstanceType:
    """The type called ``name``, or a ConfigError that names the closest known types."""
    try:
        return INSTANCE_TYPES[name]
    except KeyError:
        raise ConfigError(_unknown_type_message(name)) from None


def _unknown_type_message(name: str) -> str:
    shown = name if len(name) <= _MAX_SHOWN_CHARS else name[:_MAX_SHOWN_CHARS] + "..."
    head = f"unknown instance type {shown!r}"
    cleaned = name.strip().lower()
    candidate = cleaned if cleaned.startswith(_PREFIX) else _PREFIX + cleaned
    if cleaned in INSTANCE_TYPES:
        return f"{head}: did you mean {cleaned}?"
    if candidate in INSTANCE_TYPES:
        return f"{head}: SageMaker instance types start with 'ml.'; did you mean {candidate}?"
    sizes = _sizes_of(candidate)
    if sizes:
        return f"{head}: {candidate} is a family; name one of its sizes: {', '.join(sizes)}"
    guesses = _closest(candidate)
    sizes = _sizes_of(candidate.rpartition(".")[0])
    if guesses:
        text = f"{head}: did you mean {_or_list(guesses)}?"
        if sizes and not set(sizes) <= set(guesses):
            text += f" ({candidate.rpartition('.')[0]} comes in {', '.join(sizes)})"
        return text
    if sizes:
        return f"{head}: {candidate.rpartition('.')[0]} comes in {', '.join(sizes)}"
    return (
        f"{head}: SageMaker hosting instance types look like ml.<family>.<size>, e.g. "
        f"ml.m5.large, ml.c7g.large, ml.g5.xlarge ({len(INSTANCE_TYPES)} types are known)"
    )


def _closest(candidate: str) -> list[str]:
    if len(candidate) > _MAX_MATCHED_CHARS:
        return []
    return difflib.get_close_matches(candidate, INSTANCE_TYPES, n=3, cutoff=0.75)


def _sizes_of(family: str) -> list[str]:
    return [name for name, spec in INSTANCE_TYPES.items() if spec.family == family]


def _or_list(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]
