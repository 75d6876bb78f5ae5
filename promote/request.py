"""What the user asked promote to do: one value, validated before any AWS call.

:func:`validate_request` checks a :class:`PromoteRequest` built from flags (already merged
with the profile) and raises :class:`~emulator.errors.ConfigError` for anything SageMaker
would reject: endpoint name rules, 1-10 variants (serverless: at most 5), serverless memory in
1024-6144 MB in steps of 1024, MaxConcurrency 1-200, sane autoscaling bounds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from smlocal.emulator.errors import ConfigError
from smlocal.emulator.spec import EndpointSpec

__all__ = [
    "DEFAULT_TARGET_INVOCATIONS",
    "AsyncSettings",
    "DataCaptureSettings",
    "PromoteRequest",
    "ScalingSettings",
    "ServerlessSettings",
    "async_settings",
    "check_endpoint_name",
    "parse_serverless",
    "scaling_from_loadtest",
    "validate_request",
]

SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
MAX_CONCURRENCY = (1, 200)
MAX_SERVERLESS_VARIANTS = 5
DEFAULT_TARGET_INVOCATIONS = 70.0
# AWS's own examples: scale in slowly (600 s), scale out faster (300 s).
SCALE_IN_COOLDOWN_S = 600
SCALE_OUT_COOLDOWN_S = 300
_ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")
_REGISTRY = re.compile(r"[A-Za-z0-9.-]+(:\d{1,5})?")


@dataclass(frozen=True)
class ServerlessSettings:
    memory_mb: int
    max_concurrency: int


@dataclass(frozen=True)
class ScalingSettings:
    """Target tracking on SageMakerVariantInvocationsPerInstance (invocations/minute/instance)."""

    min_instances: int = 1
    max_instances: int = 4
    target_invocations: float = DEFAULT_TARGET_INVOCATIONS
    scale_in_cooldown_s: int = SCALE_IN_COOLDOWN_S
    scale_out_cooldown_s: int = SCALE_OUT_COOLDOWN_S
    # Where each of min/max/target came from ("--min", "profile prod", "load test FILE",
    # "default"), for --dry-run and the progress output.
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def describe(self) -> str:
        def source(key: str) -> str:
            return f" ({self.sources[key]})" if key in self.sources else ""

        return (
            f"autoscaling: min {self.min_instances}{source('min_instances')}, "
            f"max {self.max_instances}{source('max_instances')}, "
            f"target {self.target_invocations:g} invocations/instance/min"
            f"{source('target_invocations')}"
        )


@dataclass(frozen=True)
class AsyncSettings:
    output_path: str
    failure_path: str


@dataclass(frozen=True)
class DataCaptureSettings:
    destination: str
    sampling_percent: int = 100


@dataclass(frozen=True)
class PromoteRequest:
    """Everything promote needs; names of AWS resources derive from it (see ``naming``)."""

    spec: EndpointSpec
    model: str
    """``--model``: the model of every variant that does not name its own."""
    region: str
    deployment_id: str
    manifest_path: Path
    serverless: ServerlessSettings | None = None
    scaling: ScalingSettings = field(default_factory=ScalingSettings)
    async_output: AsyncSettings | None = None
    data_capture: DataCaptureSettings | None = None
    role_arn: str | None = None
    bucket: str | None = None
    repository: str | None = None
    alarm_email: str | None = None
    latency_p99_ms: float = 1000.0
    endpoint_url: str | None = None
    registry_url: str | None = None
    skip_gate: bool = False
    contract_spec: Path | None = None
    quality_gate: str | None = None
    eval_data: Path | None = None
    wait_timeout_s: float = 1800.0
    poll_interval_s: float = 15.0
    profile: str | None = None

    @property
    def variant(self) -> str:
        return self.spec.variants[0].name


def check_endpoint_name(name: str) -> str:
    """SageMaker's rule for endpoint names, said in words (the spec's pattern says it too)."""
    if len(name) > 63 or not _ENDPOINT_NAME.fullmatch(name):
        raise ConfigError(
            f"endpoint name {name!r} is invalid: SageMaker allows 1-63 letters, digits and "
            "hyphens, starting and ending with a letter or digit"
        )
    return name


def parse_serverless(text: str) -> ServerlessSettings:
    """``MEMORY:MAXCONC`` (e.g. ``2048:10``), checked against SageMaker's allowed values."""
    memory, sep, concurrency = text.partition(":")
    try:
        settings = ServerlessSettings(int(memory), int(concurrency) if sep else 1)
    except ValueError:
        raise ConfigError(
            f"--serverless expects MEMORY:MAXCONC, e.g. 2048:10; got {text!r}"
        ) from None
    if settings.memory_mb not in SERVERLESS_MEMORY_MB:
        raise ConfigError(
            f"serverless memory {settings.memory_mb} MB is not allowed; SageMaker accepts "
            f"{', '.join(map(str, SERVERLESS_MEMORY_MB))} MB"
        )
    low, high = MAX_CONCURRENCY
    if not low <= settings.max_concurrency <= high:
        raise ConfigError(
            f"serverless MaxConcurrency {settings.max_concurrency} is outside {low}-{high}"
        )
    return settings


def scaling_from_loadtest(path: Path) -> dict[str, float]:
    """Read ``smlocal loadtest``'s advice: ``target_invocations_per_instance`` (+ min/max)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"--scaling-from {path}: cannot read it as JSON ({error})") from None
    if not isinstance(data, dict) or "target_invocations_per_instance" not in data:
        raise ConfigError(f"--scaling-from {path}: no 'target_invocations_per_instance' field")
    advice: dict[str, float] = {
        "target_invocations": float(data["target_invocations_per_instance"])
    }
    # Instance bounds are advice only when the load test knew the traffic they are for: a
    # max computed without --peak-rps (or a min without --base-rps) is a placeholder of 1.
    for key, rate in (("min_instances", "base_rps"), ("max_instances", "peak_rps")):
        if data.get(key) is not None and (rate not in data or data[rate] is not None):
            advice[key] = int(data[key])
    return advice


def validate_request(request: PromoteRequest) -> None:
    """Everything checkable without AWS; raise ConfigError naming what SageMaker would reject.

    The spec itself (endpoint and variant name rules, at most 10 variants, instance types) was
    validated by :func:`emulator.spec.build_spec` when it was built.
    """
    check_endpoint_name(request.spec.name)
    spec, serverless = request.spec, request.serverless
    missing = [v.name for v in spec.variants if not (v.model or request.model)]
    if missing:
        raise ConfigError(
            f"variant(s) {', '.join(missing)} have no model: give each variant a model or "
            "pass --model"
        )
    if serverless is not None:
        parse_serverless(f"{serverless.memory_mb}:{serverless.max_concurrency}")
        if len(spec.variants) > MAX_SERVERLESS_VARIANTS:
            raise ConfigError(
                f"a serverless endpoint config allows at most {MAX_SERVERLESS_VARIANTS} "
                f"variants; got {len(spec.variants)}"
            )
    scaling = request.scaling
    if scaling.min_instances < 1:
        raise ConfigError("--min must be at least 1 (scaling out from zero needs step scaling)")
    if scaling.max_instances < scaling.min_instances:
        raise ConfigError(f"--max {scaling.max_instances} is below --min {scaling.min_instances}")
    if scaling.target_invocations <= 0:
        raise ConfigError("the target invocations per instance must be above 0")
    if request.async_output is not None:
        _check_s3_uri("--async-output", request.async_output.output_path)
    if request.data_capture is not None:
        _check_s3_uri("--data-capture", request.data_capture.destination)
    if request.registry_url is not None and not _REGISTRY.fullmatch(request.registry_url):
        raise ConfigError(f"--registry-url expects HOST:PORT, got {request.registry_url!r}")
    if (request.quality_gate is None) != (request.eval_data is None):
        raise ConfigError("--gate and --eval-data go together")
    if request.role_arn is not None and not request.role_arn.startswith("arn:"):
        raise ConfigError(f"--role-arn expects an IAM role ARN, got {request.role_arn!r}")


def async_settings(uri: str) -> AsyncSettings:
    """``--async-output s3://b/p``: responses under ``p/output``, failures under ``p/failure``."""
    base = uri.rstrip("/")
    return AsyncSettings(output_path=f"{base}/output", failure_path=f"{base}/failure")


def _check_s3_uri(flag: str, uri: str) -> None:
    if not _S3_URI.fullmatch(uri):
        raise ConfigError(f"{flag} expects s3://bucket/prefix, got {uri!r}")
