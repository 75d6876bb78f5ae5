"""Per-variant invocation metrics, named and measured like SageMaker's CloudWatch metrics.

Invocations, Invocation4XXErrors / Invocation5XXErrors (the container's answer), ModelLatency
(time inside the container) and OverheadLatency (everything else) in MICROseconds, as AWS
reports them. Rendered as Prometheus text for ``GET /metrics`` and as a summary when an
endpoint stops. Latency quantiles come from a bounded window of recent requests.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["EndpointMetrics", "LatencyWindow", "VariantMetrics", "summary_lines"]

_WINDOW = 10_000
_QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class LatencyWindow:
    """Count and sum of all samples, quantiles over the most recent ones (microseconds)."""

    count: int = 0
    total_us: int = 0
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=_WINDOW))

    def add(self, microseconds: int) -> None:
        self.count += 1
        self.total_us += microseconds
        self.recent.append(microseconds)

    def quantile(self, q: float) -> float:
        if not self.recent:
            return 0.0
        if len(self.recent) == 1:
            return float(self.recent[0])
        cuts = statistics.quantiles(self.recent, n=1000, method="inclusive")
        return cuts[min(len(cuts) - 1, max(0, round(q * 1000) - 1))]


@dataclass
class VariantMetrics:
    invocations: int = 0
    invocation_4xx_errors: int = 0
    invocation_5xx_errors: int = 0
    model_errors: int = 0
    model_latency: LatencyWindow = field(default_factory=LatencyWindow)
    overhead_latency: LatencyWindow = field(default_factory=LatencyWindow)

    def record(self, *, status: int | None, model_us: int, total_us: int) -> None:
        """One request that reached the container; ``status`` None means no answer."""
        self.invocations += 1
        if status is None or status >= 500:
            self.invocation_5xx_errors += 1
        elif status >= 400:
            self.invocation_4xx_errors += 1
        if status is None or status >= 400:
            self.model_errors += 1
        self.model_latency.add(model_us)
        self.overhead_latency.add(max(0, total_us - model_us))


def summary_lines(
    metric: str,
    help_text: str,
    endpoint: str,
    windows: Iterable[tuple[str, LatencyWindow]],
) -> list[str]:
    """A Prometheus summary (``_sum`` and ``_count``) of per-variant windows."""
    lines = [f"# HELP {metric} {help_text}", f"# TYPE {metric} summary"]
    for variant, window in windows:
        labels = f'endpoint="{endpoint}",variant="{variant}"'
        lines.append(f"{metric}_sum{{{labels}}} {window.total_us}")
        lines.append(f"{metric}_count{{{labels}}} {window.count}")
    return lines


@dataclass
class EndpointMetrics:
    endpoint: str
    variants: dict[str, VariantMetrics] = field(default_factory=dict)
    # Requests refused before reaching any container (ValidationError and friends).
    rejected: int = 0

    def variant(self, name: str) -> VariantMetrics:
        return self.variants.setdefault(name, VariantMetrics())

    def prometheus(self) -> str:
        lines: list[str] = []
        counters = (
            ("invocations", "Invocations", "requests that reached a container"),
            ("invocation_4xx_errors", "Invocation4XXErrors", "container answered 4xx"),
            (
                "invocation_5xx_errors",
                "Invocation5XXErrors",
                "container answered 5xx or not at all",
            ),
            ("model_errors", "InvocationModelErrors", "requests answered with ModelError"),
        )
        for attr, aws_name, help_text in counters:
            metric = f"smlocal_{attr}_total"
            lines += [f"# HELP {metric} {aws_name}: {help_text}", f"# TYPE {metric} counter"]
            for variant, values in sorted(self.variants.items()):
                labels = f'endpoint="{self.endpoint}",variant="{variant}"'
                lines.append(f"{metric}{{{labels}}} {getattr(values, attr)}")
        for attr, aws_name in (
            ("model_latency", "ModelLatency"),
            ("overhead_latency", "OverheadLatency"),
        ):
            metric = f"smlocal_{attr}_microseconds"
            lines += [f"# HELP {metric} {aws_name} in microseconds", f"# TYPE {metric} summary"]
            for variant, values in sorted(self.variants.items()):
                window: LatencyWindow = getattr(values, attr)
                labels = f'endpoint="{self.endpoint}",variant="{variant}"'
                for q in _QUANTILES:
                    lines.append(f'{metric}{{{labels},quantile="{q}"}} {window.quantile(q):.0f}')
                lines.append(f"{metric}_sum{{{labels}}} {window.total_us}")
                lines.append(f"{metric}_count{{{labels}}} {window.count}")
        metric = "smlocal_rejected_requests_total"
        lines += [
            f"# HELP {metric} requests refused before reaching a container",
            f"# TYPE {metric} counter",
            f'{metric}{{endpoint="{self.endpoint}"}} {self.rejected}',
        ]
        return "\n".join(lines) + "\n"
