"""Per-variant invocation metrics, named and measured like SageMaker's CloudWatch metrics.

Invocations, Invocation4XXErrors / Invocation5XXErrors (the container's answer), ModelLatency
(time inside the container) and OverheadLatency (everything else) in MICROseconds, as AWS
reports them. Rendered as Prometheus text for ``GET /metrics`` and as a summary when an
endpoint stops. Latency quantiles come from a bounded window of recent requests, kept so that
recording one stays a store and a scrape costs one C-level sort per changed window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["EndpointMetrics", "LatencyWindow", "VariantMetrics", "summary_lines"]

_WINDOW = 10_000
_CUTS = 1000  # the quantiles are cut points of the window into 1000 equal parts
_QUANTILES = (0.5, 0.9, 0.99)
# Half the bytes of int64, so a scrape's sort takes half the time. numpy >= 2 refuses
# (OverflowError) a Python int its array cannot hold, which lets add() widen the ring on the
# first such sample; older numpy wraps it silently, so there the ring is int64 from the start.
_NARROW: type[np.signedinteger[Any]] = (
    np.int32 if int(np.__version__.split(".")[0]) >= 2 else np.int64
)


@dataclass(eq=False)
class LatencyWindow:
    """Count and sum of all samples, quantiles over the most recent ones (microseconds).

    The recent samples live in a fixed numpy ring (sample ``i`` at ``i % capacity``): an add is
    one C-level store, tens of ns over the deque it replaced. A scrape sorts the ring once (C,
    ~20 µs for 10k int32 samples; ``statistics.quantiles`` took ~1 ms a call, six calls a
    variant) and keeps the sorted copy until the next add, so every quantile reads that one.
    """

    count: int = 0
    total_us: int = 0
    capacity: int = _WINDOW
    _ring: npt.NDArray[np.signedinteger[Any]] = field(init=False, repr=False)
    _sorted: npt.NDArray[np.signedinteger[Any]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # np.empty costs what deque(maxlen=...) did and touches no page until a sample lands.
        self._ring = np.empty(self.capacity, dtype=_NARROW)

    def add(self, microseconds: int) -> None:
        index = self.count % self.capacity
        try:
            self._ring[index] = microseconds
        except OverflowError:  # beyond int32 (35 min in µs, 24 days in ms): widen, once
            self._ring = self._ring.astype(np.int64)
            self._ring[index] = microseconds
        self.count += 1
        self.total_us += microseconds
        self._sorted = None

    def quantile(self, q: float) -> float:
        """``statistics.quantiles(window, n=1000, method="inclusive")``'s cut nearest ``q``.

        The same cut, computed by the same integer formula on the same two order statistics,
        so the float is bit for bit the one the statistics module returns.
        """
        size = min(self.count, self.capacity)
        if size == 0:
            return 0.0
        if size == 1:
            return float(self._ring[0])
        ordered = self._sorted
        if ordered is None:
            ordered = self._sorted = np.sort(self._ring[:size])
        cut = min(_CUTS - 1, max(1, round(q * _CUTS)))  # cut i of 1 .. 999
        j, delta = divmod(cut * (size - 1), _CUTS)
        low, high = int(ordered[j]), int(ordered[j + 1])
        return (low * (_CUTS - delta) + high * delta) / _CUTS


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
        found = self.variants.get(name)
        if found is None:  # not setdefault: a VariantMetrics is two 40 KB rings to allocate
            found = self.variants[name] = VariantMetrics()
        return found

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
