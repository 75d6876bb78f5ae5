"""``monitor run``: one monitoring execution over a window of captured traffic.

:func:`run_monitor` reads the baseline (:func:`~smlocal.monitor.files.read_baseline`) and the
window's records (:mod:`capture`), profiles each column as the baseline typed it, evaluates the
checks (:mod:`checks`), and writes what a Model Monitor execution writes into ``out``:
``statistics.json`` of the window and ``constraint_violations.json`` — plus a PNG per drifting
feature (:mod:`report`). With a topic it publishes the violations to SNS, with ``cloudwatch``
it puts the data metrics (:mod:`alerts`). Violations are a result, not an error; what stops
the run is a :class:`~smlocal.monitor.errors.MonitorInputError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from smlocal.monitor import alerts
from smlocal.monitor.capture import CaptureWindow, read_window
from smlocal.monitor.checks import evaluate
from smlocal.monitor.errors import MonitorInputError
from smlocal.monitor.files import (
    STATISTICS_FILE,
    VIOLATIONS_FILE,
    Violation,
    dump,
    read_baseline,
    statistics_body,
    violations_body,
)
from smlocal.monitor.profile import ColumnProfile, FeatureStats, profile_column
from smlocal.monitor.report import drift_plot

__all__ = ["DEFAULT_SCHEDULE_NAME", "MonitorRun", "RunResult", "run_monitor"]

DEFAULT_SCHEDULE_NAME = "smlocal-monitor"


@dataclass(frozen=True)
class MonitorRun:
    window: CaptureWindow
    baseline: Path
    out: Path
    sns_topic: str | None = None
    cloudwatch: bool = False
    endpoint_name: str | None = None
    schedule_name: str = DEFAULT_SCHEDULE_NAME


@dataclass
class RunResult:
    violations: list[Violation]
    features: list[FeatureStats]
    drift: dict[str, float]
    thresholds: dict[str, float]
    records: int
    rows: int
    files: int
    skipped: int
    endpoint: str
    violations_file: Path
    statistics_file: Path
    plots: list[Path] = field(default_factory=list)
    sns_message_id: str | None = None
    metrics_sent: int = 0


def run_monitor(run: MonitorRun) -> RunResult:
    baseline = read_baseline(run.baseline)
    data = read_window(run.window)
    types = {f.name: f.inferred_type for f in baseline.features}
    profiles: dict[str, ColumnProfile] = {
        name: profile_column(name, data.table.columns[name], types.get(name))
        for name in data.table.names
    }
    evaluation = evaluate(baseline, profiles, data.table.names)
    features = [p.stats for p in profiles.values()]
    try:
        run.out.mkdir(parents=True, exist_ok=True)
        stats_path, violations_path = run.out / STATISTICS_FILE, run.out / VIOLATIONS_FILE
        dump(stats_path, statistics_body(data.table.rows, features))
        dump(violations_path, violations_body(evaluation.violations))
    except OSError as error:
        raise MonitorInputError(f"--out {run.out}: {error.strerror or error}") from None
    endpoint = run.endpoint_name or data.endpoint or "local"
    thresholds: dict[str, float] = {}
    plots = []
    constraints = {f.name: f for f in baseline.features}
    for v in evaluation.violations:
        if v.constraint_check_type != "baseline_drift_check":
            continue
        cfg = constraints[v.feature_name].config
        current = profiles[v.feature_name].stats
        threshold = (
            cfg.comparison_threshold if current.is_numeric else cfg.categorical_comparison_threshold
        )
        thresholds[v.feature_name] = threshold
        plots.append(
            drift_plot(
                run.out,
                baseline.statistics[v.feature_name],
                current,
                distance=evaluation.drift[v.feature_name],
                threshold=threshold,
                method=cfg.comparison_method,
            )
        )
    result = RunResult(
        violations=evaluation.violations,
        features=features,
        drift=evaluation.drift,
        thresholds=thresholds,
        records=data.records,
        rows=data.table.rows,
        files=data.files,
        skipped=data.skipped,
        endpoint=endpoint,
        violations_file=violations_path,
        statistics_file=stats_path,
        plots=plots,
    )
    window = {
        "start": run.window.start.isoformat() if run.window.start else None,
        "end": run.window.end.isoformat() if run.window.end else None,
    }
    if run.sns_topic and evaluation.violations:
        result.sns_message_id = alerts.publish_violations(
            run.sns_topic,
            endpoint=endpoint,
            window=window,
            violations=evaluation.violations,
            report=str(violations_path),
        )
    if run.cloudwatch and baseline.config.emit_metrics:
        at = run.window.end or datetime.now(UTC)
        metrics = alerts.metric_data(
            features, evaluation.completeness, evaluation.drift,
            endpoint=endpoint, schedule=run.schedule_name, at=at,
        )  # fmt: skip
        result.metrics_sent = alerts.put_metrics(metrics)
    return result
