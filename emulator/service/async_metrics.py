"""The async endpoints' metrics, in the runtime API's Prometheus text (AWS's names).

Per endpoint: ApproximateBacklogSize, ApproximateBacklogSizePerInstance,
ApproximateAgeOfOldestRequest, HasBacklogWithoutCapacity; per endpoint and variant, the
counters (InvocationsProcesssed, in AWS's spelling, ...) and latency windows (TimeInBacklog,
TotalProcessingTime, ModelLatency).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from smlocal.emulator.endpoint import Endpoint, EndpointStatus
from smlocal.emulator.metrics import LatencyWindow

__all__ = ["COUNTERS", "WINDOWS", "VariantCounters", "render"]


@dataclass
class VariantCounters:
    processed: int = 0
    failures: int = 0
    expired: int = 0
    download_failures: int = 0
    upload_failures: int = 0
    notification_failures: int = 0
    time_in_backlog_ms: LatencyWindow = field(default_factory=LatencyWindow)
    total_processing_ms: LatencyWindow = field(default_factory=LatencyWindow)
    model_latency_us: LatencyWindow = field(default_factory=LatencyWindow)


COUNTERS = (
    ("processed", "InvocationsProcesssed"),
    ("failures", "InvocationFailures"),
    ("expired", "ExpiredRequests"),
    ("download_failures", "RequestDownloadFailures"),
    ("upload_failures", "ResponseUploadFailures"),
    ("notification_failures", "NotificationFailures"),
)
WINDOWS = (
    ("time_in_backlog_ms", "TimeInBacklog", "milliseconds"),
    ("total_processing_ms", "TotalProcessingTime", "milliseconds"),
    ("model_latency_us", "ModelLatency", "microseconds"),
)


def render(
    now: float,
    backlog: Mapping[str, tuple[int, float]],
    names: list[str],
    endpoints: Mapping[str, Endpoint],
    counters: Mapping[tuple[str, str], VariantCounters],
) -> str:
    """The Prometheus text: ``backlog`` (endpoint → size, oldest arrival) for ``names``."""
    lines: list[str] = []
    if not names and not counters:
        return ""
    per_endpoint = (
        ("approximate_backlog_size", "ApproximateBacklogSize"),
        ("approximate_backlog_size_per_instance", "ApproximateBacklogSizePerInstance"),
        ("approximate_age_of_oldest_request_seconds", "ApproximateAgeOfOldestRequest"),
        ("has_backlog_without_capacity", "HasBacklogWithoutCapacity"),
    )
    values: dict[str, list[tuple[str, float]]] = {m: [] for m, _ in per_endpoint}
    for name in names:
        size, oldest = backlog.get(name, (0, now))
        endpoint = endpoints.get(name)
        instances = 0
        if endpoint is not None and endpoint.status == EndpointStatus.IN_SERVICE:
            instances = sum(len(endpoint.healthy(v.name)) for v in endpoint.spec.variants)
        values["approximate_backlog_size"].append((name, size))
        values["approximate_backlog_size_per_instance"].append(
            (name, size / instances if instances else float(size))
        )
        values["approximate_age_of_oldest_request_seconds"].append(
            (name, max(0.0, now - oldest) if size else 0.0)
        )
        values["has_backlog_without_capacity"].append(
            (name, 1.0 if size and not instances else 0.0)
        )
    for metric, aws_name in per_endpoint:
        full = f"smlocal_async_{metric}"
        lines += [f"# HELP {full} {aws_name}", f"# TYPE {full} gauge"]
        for name, value in values[metric]:
            lines.append(f'{full}{{endpoint="{name}"}} {value:g}')
    for attr, aws_name in COUNTERS:
        full = f"smlocal_async_{aws_name}_total"
        lines += [f"# HELP {full} {aws_name}", f"# TYPE {full} counter"]
        for (name, variant), variant_counters in sorted(counters.items()):
            labels = f'endpoint="{name}",variant="{variant}"'
            lines.append(f"{full}{{{labels}}} {getattr(variant_counters, attr)}")
    for attr, aws_name, unit in WINDOWS:
        full = f"smlocal_async_{aws_name}_{unit}"
        lines += [f"# HELP {full} {aws_name} in {unit}", f"# TYPE {full} summary"]
        for (name, variant), variant_counters in sorted(counters.items()):
            window: LatencyWindow = getattr(variant_counters, attr)
            labels = f'endpoint="{name}",variant="{variant}"'
            for q in (0.5, 0.9, 0.99):
                lines.append(f'{full}{{{labels},quantile="{q}"}} {window.quantile(q):.0f}')
            lines.append(f"{full}_sum{{{labels}}} {window.total_us}")
            lines.append(f"{full}_count{{{labels}}} {window.count}")
    return "\n".join(lines) + "\n"
