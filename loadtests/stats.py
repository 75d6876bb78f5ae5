"""Read Locust's own CSV statistics: every number a report quotes comes from these files.

``{prefix}_final_stats.csv``     one row per request name plus ``Aggregated`` (counts,
                                Requests/s, percentiles in ms)
``{prefix}_final_failures.csv``  one row per error kind with its occurrences

Both are written by Locust's own CSV formatter (``locust.stats.StatsCSV``) once the run has
stopped (see the locustfile): Locust's periodic ``{prefix}_stats.csv`` is refreshed once a
second and not at exit, so it can lack the last second of requests.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from smlocal.loadtests.errors import parse_kind

__all__ = ["StepStats", "read_errors", "read_step"]


@dataclass(frozen=True)
class StepStats:
    """Locust's Aggregated row for one run (one step of --find-max)."""

    users: int
    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    average_ms: float
    errors: dict[str, int] = field(default_factory=dict)
    csv_prefix: str = ""

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def _number(cell: str) -> float | None:
    # Locust writes "N/A" for percentiles of an empty entry.
    try:
        return float(cell)
    except ValueError:
        return None


def read_errors(prefix: Path) -> dict[str, int]:
    """Occurrences by error kind from ``{prefix}_final_failures.csv`` (empty if none)."""
    path = Path(f"{prefix}_final_failures.csv")
    if not path.exists():
        return {}
    counts: dict[str, int] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            kind = parse_kind(row["Error"])
            counts[kind] = counts.get(kind, 0) + int(row["Occurrences"])
    return counts


def read_step(prefix: Path, users: int) -> StepStats:
    """The Aggregated row of ``{prefix}_final_stats.csv`` (OSError if Locust wrote none)."""
    with Path(f"{prefix}_final_stats.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]
    if not rows:
        raise ValueError(f"{prefix}_final_stats.csv has no Aggregated row")
    row = rows[0]
    return StepStats(
        users=users,
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        rps=float(row["Requests/s"]),
        p50_ms=_number(row["50%"]),
        p95_ms=_number(row["95%"]),
        p99_ms=_number(row["99%"]),
        average_ms=float(row["Average Response Time"]),
        errors=read_errors(prefix),
        csv_prefix=str(prefix),
    )
