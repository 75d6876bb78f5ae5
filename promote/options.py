"""From what the user typed to one :class:`~smlocal.promote.request.PromoteRequest`.

:class:`PromoteOptions` holds the flags exactly as given (``None`` = not given);
:func:`build_request` merges them with the project's profile and a load test's advice and
builds the request. The precedence, for every setting that more than one source can give:

    flag > profile ([profiles.NAME.promote]) > default

except for the autoscaling values a load test (``--scaling-from``) measured or derived:

    min, max instances:   flag > profile > load-test advice > default
    target invocations:   flag > load-test advice > profile > default

The bounds are the user's policy (cost, availability), so a profile's say wins over advice;
the target is a measurement of this image, so the load test's wins over a profile's guess.
Advice gives a bound only when the load test was told the traffic (``--peak-rps`` /
``--base-rps``); without it, its 1 is no advice. Where each value came from is kept in
``ScalingSettings.sources`` and shown by ``--dry-run`` and the progress output.
``--endpoint NAME`` takes every variant from the project config, so the single-variant flags
(IMAGE, ``--instance-type``, ``--instance-count``) are refused beside it rather than ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from smlocal.emulator.config import load_config
from smlocal.emulator.errors import ConfigError
from smlocal.emulator.spec import EndpointSpec, build_spec
from smlocal.promote.config import find_project_root, load_profile
from smlocal.promote.manifest import default_manifest_path
from smlocal.promote.naming import new_deployment_id
from smlocal.promote.request import (
    DEFAULT_TARGET_INVOCATIONS,
    DataCaptureSettings,
    PromoteRequest,
    ScalingSettings,
    async_settings,
    check_endpoint_name,
    parse_serverless,
    scaling_from_loadtest,
)

__all__ = ["PromoteOptions", "build_request"]

DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_WAIT_TIMEOUT_S = 1800.0
DEFAULT_LATENCY_P99_MS = 1000.0

T = TypeVar("T")


@dataclass(frozen=True)
class PromoteOptions:
    """``smlocal promote``'s flags as the user gave them; ``None`` means "not given"."""

    image: str | None = None
    model: str | None = None
    endpoint_name: str | None = None
    endpoint: str | None = None
    config: Path | None = None
    profile: str | None = None
    region: str | None = None
    instance_type: str | None = None
    instance_count: int | None = None
    serverless: str | None = None
    async_output: str | None = None
    variant_weight: float = 1.0
    min_instances: int | None = None
    max_instances: int | None = None
    target_invocations: float | None = None
    scaling_from: Path | None = None
    role_arn: str | None = None
    bucket: str | None = None
    repository: str | None = None
    data_capture: str | None = None
    alarm_email: str | None = None
    manifest: Path | None = None
    deployment_id: str | None = None
    endpoint_url: str | None = None
    registry_url: str | None = None
    skip_gate: bool = False
    contract_spec: Path | None = None
    gate: str | None = None
    eval_data: Path | None = None
    wait_timeout: float | None = None
    poll_interval: float = 15.0


def _first(*values: T | None, default: T) -> T:
    """The first value that was given, in precedence order, else ``default``."""
    return next((value for value in values if value is not None), default)


def _region(options: PromoteOptions, profile: dict[str, Any]) -> str:
    region = (
        options.region
        or profile.get("region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
    )
    if not region:
        raise ConfigError("no AWS region: pass --region, set it in the profile, or set AWS_REGION")
    return str(region)


def _spec_from_config(options: PromoteOptions) -> EndpointSpec:
    given = [
        flag
        for flag, value in (
            ("IMAGE", options.image),
            ("--instance-type", options.instance_type),
            ("--instance-count", options.instance_count),
        )
        if value is not None
    ]
    if given:
        raise ConfigError(
            f"{', '.join(given)}: not with --endpoint; set each variant in the project config"
        )
    spec = load_config(options.config, options.profile).endpoint(options.endpoint)
    if options.endpoint_name is not None:
        spec = build_spec(**{**spec.model_dump(), "name": options.endpoint_name})
    check_endpoint_name(spec.name)
    return spec


def _single_variant_spec(
    options: PromoteOptions, profile: dict[str, Any], instance_count: int
) -> EndpointSpec:
    if options.image is None or options.model is None or options.endpoint_name is None:
        raise ConfigError(
            "pass IMAGE, --model and --endpoint-name, or --endpoint NAME to promote an "
            "endpoint (all its variants) from the project config"
        )
    return build_spec(
        name=check_endpoint_name(options.endpoint_name),
        variants=[
            {
                "image": options.image,
                "model": options.model,
                "instance_type": _first(
                    options.instance_type,
                    profile.get("instance_type"),
                    default=DEFAULT_INSTANCE_TYPE,
                ),
                "instance_count": instance_count,
                "weight": options.variant_weight,
            }
        ],
    )


def _scaling(
    options: PromoteOptions, profile: dict[str, Any], instance_count: int
) -> ScalingSettings:
    advice = scaling_from_loadtest(options.scaling_from) if options.scaling_from else {}
    profiled = f"profile {options.profile}" if options.profile else "project config"
    tested = f"load test {options.scaling_from}"
    chosen: dict[str, float] = {}
    sources: dict[str, str] = {}
    orders = {
        "min_instances": (("--min", options.min_instances), (profiled, None), (tested, None)),
        "max_instances": (("--max", options.max_instances), (profiled, None), (tested, None)),
        "target_invocations": (
            ("--target-invocations", options.target_invocations),
            (tested, None),
            (profiled, None),
        ),
    }
    defaults = {
        "min_instances": float(instance_count),
        "max_instances": float(max(instance_count, 4)),
        "target_invocations": DEFAULT_TARGET_INVOCATIONS,
    }
    for key, order in orders.items():
        for source, flag in order:
            value = (
                flag
                if flag is not None or source.startswith("--")
                else (advice if source == tested else profile).get(key)
            )
            if value is not None:
                chosen[key], sources[key] = float(value), source
                break
        else:
            chosen[key], sources[key] = defaults[key], "default"
    return ScalingSettings(
        min_instances=int(chosen["min_instances"]),
        max_instances=int(chosen["max_instances"]),
        target_invocations=chosen["target_invocations"],
        sources=sources,
    )


def build_request(options: PromoteOptions) -> PromoteRequest:
    """Merge flags, advice, profile and defaults into the request (ConfigError if unusable)."""
    profile = load_profile(options.profile, config=options.config)

    def setting(flag: str | None, key: str) -> str | None:
        return str(_first(flag, profile.get(key), default="")) or None

    instance_count = int(_first(options.instance_count, profile.get("instance_count"), default=1))
    if options.endpoint is not None:
        spec = _spec_from_config(options)
        instance_count = min(v.instance_count for v in spec.variants)
        model = options.model or spec.variants[0].model or ""
    else:
        spec = _single_variant_spec(options, profile, instance_count)
        model = options.model or ""
    async_output = setting(options.async_output, "async_output")
    data_capture = setting(options.data_capture, "data_capture")
    deployment_id = options.deployment_id or new_deployment_id(spec.name)
    manifest = options.manifest or default_manifest_path(find_project_root(), deployment_id)
    return PromoteRequest(
        spec=spec,
        model=model,
        region=_region(options, profile),
        deployment_id=deployment_id,
        manifest_path=Path(manifest),
        serverless=parse_serverless(options.serverless) if options.serverless else None,
        scaling=_scaling(options, profile, instance_count),
        async_output=async_settings(async_output) if async_output else None,
        data_capture=DataCaptureSettings(data_capture) if data_capture else None,
        role_arn=setting(options.role_arn, "role_arn"),
        bucket=setting(options.bucket, "bucket"),
        repository=setting(options.repository, "repository"),
        alarm_email=setting(options.alarm_email, "alarm_email"),
        latency_p99_ms=float(profile.get("latency_p99_ms", DEFAULT_LATENCY_P99_MS)),
        endpoint_url=setting(options.endpoint_url, "endpoint_url"),
        registry_url=setting(options.registry_url, "registry_url"),
        skip_gate=options.skip_gate,
        contract_spec=options.contract_spec,
        quality_gate=options.gate,
        eval_data=options.eval_data,
        wait_timeout_s=float(
            _first(
                options.wait_timeout, profile.get("wait_timeout"), default=DEFAULT_WAIT_TIMEOUT_S
            )
        ),
        poll_interval_s=options.poll_interval,
        profile=options.profile,
    )
