"""The control plane's side of serverless endpoints: what CreateEndpointConfig refuses, what
UpdateEndpointWeightsAndCapacities may change, what DescribeEndpoint shows.

The refusals are AWS's documented exclusions (reference §B: "GPUs, ... Multi-Model Endpoints,
VPC configuration, network isolation, data capture, ..."), the 1 GB memory steps and
"ProvisionedConcurrency should be less than or equal to MaxConcurrency". AWS's own wording for
these is not published, so each message says plainly what is refused and why (README,
conformance table). Ranges the botocore model states (MemorySizeInMB 1024-6144,
MaxConcurrency 1-200) are already refused by the model's validation, in AWS's words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.endpoint import Endpoint
from smlocal.emulator.serverless import ServerlessEndpoint
from smlocal.emulator.serverless_config import COLD_START_TIMEOUT_S, MEMORY_SIZES_MB, ServerlessSpec

__all__ = [
    "MAX_SERVERLESS_VARIANTS",
    "check_serverless_config",
    "serverless_fields",
    "serverless_summaries",
    "stage_serverless_update",
    "startup_window",
]

MAX_SERVERLESS_VARIANTS = 5
# Production-variant members that choose instances (GPU and accelerator settings among them).
_INSTANCE_MEMBERS = (
    "InstanceType",
    "InitialInstanceCount",
    "AcceleratorType",
    "InstancePools",
    "InferenceAmiVersion",
    "ManagedInstanceScaling",
    "CapacityReservationConfig",
)


def _refuse(problems: list[str]) -> None:
    if problems:
        raise AwsError("ValidationException", "; ".join(problems))


def check_serverless_config(
    config: Mapping[str, Any], model: Callable[[str], Mapping[str, Any] | None]
) -> None:
    """Raise ValidationException when ``config`` (CreateEndpointConfig's input) has a
    serverless variant SageMaker would refuse. ``model(name)``: the Model record, if any."""
    variants = config.get("ProductionVariants") or []
    serverless = [v for v in variants if v.get("ServerlessConfig")]
    if not serverless:
        return
    name = config.get("EndpointConfigName", "")
    problems: list[str] = []
    if len(serverless) != len(variants):
        problems.append(
            f"Endpoint configuration {name} mixes serverless and instance-based production "
            "variants; every variant of a serverless endpoint needs a ServerlessConfig."
        )
    if len(variants) > MAX_SERVERLESS_VARIANTS:
        problems.append(
            f"Endpoint configuration {name} has {len(variants)} production variants; a "
            f"serverless endpoint can have at most {MAX_SERVERLESS_VARIANTS}."
        )
    for member, what in (
        ("DataCaptureConfig", "data capture"),
        ("VpcConfig", "VPC configuration"),
        ("EnableNetworkIsolation", "network isolation"),
    ):
        if config.get(member):
            problems.append(f"Serverless endpoints do not support {what} ({member}).")
    for variant in serverless:
        label = f"Variant {variant.get('VariantName')}"
        given = [m for m in _INSTANCE_MEMBERS if variant.get(m) is not None]
        if given:
            problems.append(
                f"{label}: ServerlessConfig cannot be combined with {', '.join(given)} "
                "(a serverless variant's compute follows its MemorySizeInMB; no instances, GPUs "
                "or accelerators)."
            )
        settings = variant["ServerlessConfig"]
        memory = settings.get("MemorySizeInMB")
        if memory not in MEMORY_SIZES_MB:
            problems.append(
                f"{label}: MemorySizeInMB {memory} is not valid; valid values are in 1 GB "
                f"increments: {', '.join(f'{m} MB' for m in MEMORY_SIZES_MB)}."
            )
        problems += _concurrency_problems(label, settings)
        record = model(str(variant.get("ModelName", "")))
        if record is not None:
            problems += _model_problems(label, record)
    _refuse(problems)


def _concurrency_problems(label: str, settings: Mapping[str, Any]) -> list[str]:
    provisioned, maximum = settings.get("ProvisionedConcurrency"), settings.get("MaxConcurrency")
    if provisioned is not None and maximum is not None and provisioned > maximum:
        return [
            f"{label}: ProvisionedConcurrency {provisioned} must be less than or equal to "
            f"MaxConcurrency {maximum}."
        ]
    return []


def _model_problems(label: str, model: Mapping[str, Any]) -> list[str]:
    problems = []
    name = model.get("ModelName")
    containers = [model["PrimaryContainer"]] if model.get("PrimaryContainer") else []
    containers += list(model.get("Containers") or [])
    if any(c.get("Mode") == "MultiModel" for c in containers):
        problems.append(f"{label}: model {name} is multi-model; serverless endpoints are not.")
    if model.get("VpcConfig"):
        problems.append(f"{label}: model {name} has a VpcConfig; serverless endpoints have none.")
    if model.get("EnableNetworkIsolation"):
        problems.append(
            f"{label}: model {name} enables network isolation; serverless endpoints do not "
            "support it."
        )
    if len(containers) > 1:
        problems.append(
            f"{label}: model {name} is an inference pipeline; serverless endpoints are not."
        )
    return problems


def serverless_fields(variant: Mapping[str, Any]) -> dict[str, Any]:
    """The VariantSpec fields a production variant's ServerlessConfig gives (none if absent)."""
    settings = variant.get("ServerlessConfig")
    if not settings:
        return {}
    return {"serverless": ServerlessSpec.from_aws(dict(settings)).model_dump()}


def startup_window(variants: Iterable[Mapping[str, Any]], asked: int) -> int:
    """Serverless containers must answer /ping within 3 minutes (reference §B)."""
    return COLD_START_TIMEOUT_S if any(v.get("ServerlessConfig") for v in variants) else asked


def stage_serverless_update(live: Endpoint, changes: Iterable[Mapping[str, Any]]) -> bool:
    """Apply each change's ``ServerlessUpdateConfig`` to ``live`` (ValidationException when it
    cannot take it). Returns whether any did. Instance counts of a serverless variant refused."""
    updates: dict[str, ServerlessSpec] = {}
    problems: list[str] = []
    for change in changes:
        variant = live.spec.variant(change["VariantName"])
        label = f"Variant {change['VariantName']}"
        update = change.get("ServerlessUpdateConfig")
        if variant is None or (update is None and variant.serverless is None):
            continue
        if variant.serverless is None:
            problems.append(f"{label} is not serverless: it has no ServerlessConfig to update.")
            continue
        if "DesiredInstanceCount" in change:
            problems.append(f"{label} is serverless: DesiredInstanceCount does not apply.")
        if update is None:
            continue
        current = variant.serverless.as_aws()
        merged = {**current, **update}
        found = _concurrency_problems(label, merged)
        if found:
            problems += found
            continue
        updates[variant.name] = ServerlessSpec.from_aws(merged)
    _refuse(problems)
    if updates:
        assert isinstance(live, ServerlessEndpoint)
        live.apply_serverless(updates)
    return bool(updates)


def serverless_summaries(endpoint: Endpoint, variants: list[dict[str, Any]]) -> None:
    """DescribeEndpoint's ProductionVariants of a serverless endpoint: Current/Desired
    ServerlessConfig instead of instance counts."""
    for entry in variants:
        variant = endpoint.spec.variant(entry["VariantName"])
        if variant is None or variant.serverless is None:
            continue
        entry.pop("CurrentInstanceCount", None)
        entry.pop("DesiredInstanceCount", None)
        entry["CurrentServerlessConfig"] = variant.serverless.as_aws()
        entry["DesiredServerlessConfig"] = variant.serverless.as_aws()
