"""One ``smlocal loadtest`` run end to end: Locust steps, advice, summary, plot, HTML report.

Layout of the report directory::

    loadtest-summary.json   the summary (autoscaling input for `smlocal promote`)
    loadtest.png            latency and throughput against users
    report.html             Locust's HTML report (find-max: of the MAX_RPS step)
    steps/NN-uU_*.csv       Locust's CSV statistics of each step (stats, failures, history)
    steps/NN-uU_report.html Locust's HTML report of each step; *_locust.log its log
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from smlocal.loadtests.advice import ScalingAdvice, advise
from smlocal.loadtests.cpu import CpuProbe, CpuUsage
from smlocal.loadtests.findmax import FindMaxResult, FindMaxSettings, find_max
from smlocal.loadtests.report import RunInfo, plot_steps, write_summary
from smlocal.loadtests.runner import LocustTarget, Snapshot, generator_overloaded, run_locust
from smlocal.loadtests.stats import StepStats

__all__ = ["LoadTestOptions", "LoadTestOutcome", "run_loadtest"]

Progress = Callable[[str, Snapshot], None]


@dataclass(frozen=True)
class LoadTestOptions:
    report_dir: Path
    users: int = 1
    spawn_rate: float | None = None
    duration_s: float = 30.0
    find_max: FindMaxSettings | None = None
    safety_factor: float = 0.5
    peak_rps: float | None = None
    base_rps: float | None = None
    price_per_hour: float | None = None


@dataclass(frozen=True)
class LoadTestOutcome:
    summary_path: Path
    steps: tuple[StepStats, ...]
    search: FindMaxResult | None
    advice: ScalingAdvice | None
    generator_cpu_warning: bool
    # Per step, in order (None: not measured); ``shown_cpu`` is the reported step's.
    cpu: tuple[CpuUsage | None, ...] = ()
    shown_cpu: CpuUsage | None = None


def _per_instance(step: StepStats, instances: int) -> StepStats:
    # An endpoint of N instances behind round-robin: one instance carries 1/N of the load.
    return step if instances == 1 else replace(step, rps=step.rps / instances)


def run_loadtest(
    target: LocustTarget,
    info: RunInfo,
    options: LoadTestOptions,
    on_progress: Progress | None = None,
    *,
    cpu: CpuProbe | None = None,
) -> LoadTestOutcome:
    """Run the test; with ``cpu``, each step's CPU use (runtime API, containers, machine) is
    measured over that step and written beside Locust's figures."""
    steps_dir = options.report_dir / "steps"
    steps_dir.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 1000))
    usage: dict[str, CpuUsage | None] = {}

    def run_step(users: int, duration_s: float, spawn_rate: float | None = None) -> StepStats:
        number = next(counter)
        label = f"step {number:02d}: {users} users, {duration_s:g} s"
        prefix = steps_dir / f"{number:02d}-u{users}"
        window = cpu.start() if cpu is not None else None

        def progress(snapshot: Snapshot) -> None:
            if window is not None and int(snapshot.get("requests") or 0) > 0:
                window.mark_active()
            if on_progress is not None:
                on_progress(label, snapshot)

        step = run_locust(
            target, users, duration_s, prefix, spawn_rate=spawn_rate, on_progress=progress
        )
        usage[step.csv_prefix] = window.finish(step.requests, step.rps) if window else None
        return step

    search: FindMaxResult | None = None
    advice: ScalingAdvice | None = None
    if options.find_max is not None:
        settings = options.find_max
        search = find_max(lambda users: run_step(users, settings.step_s), settings)
        steps = search.steps
        if search.best is not None:
            advice = advise(
                _per_instance(search.best, info.instance_count).rps,
                info.instance_type,
                safety_factor=options.safety_factor,
                peak_rps=options.peak_rps,
                base_rps=options.base_rps,
                price_override=options.price_per_hour,
            )
        shown = search.best or steps[-1]
    else:
        shown = run_step(options.users, options.duration_s, options.spawn_rate)
        steps = (shown,)
    report_dir = options.report_dir
    shutil.copyfile(f"{shown.csv_prefix}_report.html", report_dir / "report.html")
    plot_steps(
        steps,
        report_dir / "loadtest.png",
        bound_ms=search.latency_bound_ms if search else None,
        best=search.best if search else None,
    )
    cpu_warning = any(generator_overloaded(Path(s.csv_prefix)) for s in steps)
    find_max_json: dict[str, Any] | None = None
    if search is not None:
        find_max_json = {
            "settings": asdict(options.find_max) if options.find_max else None,
            "baseline_p95_ms": search.baseline_p95_ms,
            "latency_bound_ms": search.latency_bound_ms,
            "stop_reason": search.stop_reason,
            "max_rps_step_users": search.best.users if search.best else None,
            "measured_max_rps": search.max_rps,
        }
    per_step = tuple(usage.get(s.csv_prefix) for s in steps)
    shown_cpu = usage.get(shown.csv_prefix)
    summary = write_summary(
        report_dir,
        info,
        steps,
        advice=advice,
        find_max=find_max_json,
        generator_cpu_warning=cpu_warning,
        cpu=per_step,
        shown_cpu=shown_cpu,
        files={
            "summary": "loadtest-summary.json",
            "plot": "loadtest.png",
            "html": "report.html",
            "steps": "steps/",
        },
    )
    return LoadTestOutcome(summary, tuple(steps), search, advice, cpu_warning, per_step, shown_cpu)
