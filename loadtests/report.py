"""The files a load test leaves: ``loadtest-summary.json`` and ``loadtest.png``.

Every figure in the summary is copied from Locust's CSV statistics (:mod:`loadtests.stats`);
the only derived numbers are the advice (AWS's formula applied to MAX_RPS). The summary is
``smlocal promote``'s autoscaling input; its fields are documented in loadtests/README.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from smlocal.loadtests.advice import SCALE_IN_COOLDOWN_S, SCALE_OUT_COOLDOWN_S, ScalingAdvice
from smlocal.loadtests.cpu import CpuUsage
from smlocal.loadtests.stats import StepStats

__all__ = ["SUMMARY_FILE", "SUMMARY_SCHEMA", "RunInfo", "plot_steps", "write_summary"]

SUMMARY_FILE = "loadtest-summary.json"
SUMMARY_SCHEMA = "smlocal.loadtest-summary/1"


@dataclass(frozen=True)
class RunInfo:
    """What was tested and how (target, mode, generator)."""

    endpoint_name: str
    target_kind: str  # "local", "image" or "aws"
    url: str
    mode: str  # "find-max" or "fixed"
    instance_type: str
    instance_count: int
    workers: int
    target_variant: str | None = None
    # --direct: Locust called these containers' /invocations, not the runtime API at ``url``.
    direct_urls: tuple[str, ...] = ()


def _step_json(step: StepStats, report_dir: Path, cpu: CpuUsage | None) -> dict[str, Any]:
    fields = asdict(step)
    fields["cpu"] = cpu.as_json() if cpu is not None else None
    prefix = Path(fields.pop("csv_prefix"))
    fields["stats_csv"] = str(Path(f"{prefix}_final_stats.csv").relative_to(report_dir))
    fields["failures_csv"] = str(Path(f"{prefix}_final_failures.csv").relative_to(report_dir))
    fields["html"] = str(Path(f"{prefix}_report.html").relative_to(report_dir))
    return fields


def write_summary(
    report_dir: Path,
    info: RunInfo,
    steps: Sequence[StepStats],
    *,
    advice: ScalingAdvice | None,
    find_max: dict[str, Any] | None,
    generator_cpu_warning: bool,
    files: dict[str, str],
    cpu: Sequence[CpuUsage | None] = (),
    shown_cpu: CpuUsage | None = None,
) -> Path:
    """Write ``loadtest-summary.json`` in ``report_dir`` and return its path. ``cpu``: each
    step's CPU use (in step order); ``shown_cpu``: the reported step's (find-max's MAX_RPS
    step, or the one fixed-load step)."""
    step_cpu = list(cpu) + [None] * (len(steps) - len(cpu))
    errors: dict[str, int] = {}
    for step in steps:
        for kind, count in step.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    summary: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "endpoint_name": info.endpoint_name,
        "target": {"kind": info.target_kind, "url": info.url, "variant": info.target_variant},
        # --direct: Locust called the containers themselves (the runtime API was not in the path).
        "direct": {"urls": list(info.direct_urls)} if info.direct_urls else None,
        "cpu": shown_cpu.as_json() if shown_cpu is not None else None,
        "mode": info.mode,
        "instance_type": info.instance_type,
        "instance_count": info.instance_count,
        "max_rps": advice.max_rps if advice else None,
        "metric": "SageMakerVariantInvocationsPerInstance",
        "safety_factor": advice.safety_factor if advice else None,
        "target_invocations_per_instance": (
            advice.target_invocations_per_instance if advice else None
        ),
        "min_instances": advice.min_instances if advice else None,
        "max_instances": advice.max_instances if advice else None,
        "peak_rps": advice.peak_rps if advice else None,
        "base_rps": advice.base_rps if advice else None,
        "scale_in_cooldown_s": SCALE_IN_COOLDOWN_S,
        "scale_out_cooldown_s": SCALE_OUT_COOLDOWN_S,
        "price_per_instance_hour_usd": advice.price_per_instance_hour_usd if advice else None,
        "cost_per_hour_usd": (
            dict(zip(("min", "max"), advice.cost_per_hour_usd, strict=True))
            if advice and advice.cost_per_hour_usd
            else None
        ),
        "price_source": advice.price_note if advice else None,
        "find_max": find_max,
        "totals": {
            "requests": sum(s.requests for s in steps),
            "failures": sum(s.failures for s in steps),
        },
        "errors": errors,
        "steps": [
            _step_json(step, report_dir, usage)
            for step, usage in zip(steps, step_cpu, strict=False)
        ],
        "generator": {"workers": info.workers, "cpu_warning": generator_cpu_warning},
        "files": files,
    }
    path = report_dir / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def plot_steps(
    steps: Sequence[StepStats], path: Path, *, bound_ms: float | None, best: StepStats | None
) -> Path:
    """PNG of each step, in the order run: Requests/s as bars (right axis), p50/p95/p99
    latency as lines (left axis), the p95 bound, and the MAX_RPS step marked and named in the
    title. Steps sit side by side, labelled by their user count (a repeated step says so), so
    one step or two at the same count read as plainly as eight."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the plot is a file
    from matplotlib import pyplot as plt

    positions = list(range(len(steps)))
    labels = [
        f"{s.users}" + (" (again)" if i and steps[i - 1].users == s.users else "")
        for i, s in enumerate(steps)
    ]
    figure, rps_axis = plt.subplots(figsize=(8, 4.8), dpi=100)
    bars = rps_axis.bar(positions, [s.rps for s in steps], width=0.5, color="#c9d6e8",
                        label="requests/s")  # fmt: skip
    if best is not None and best in steps:
        bars[steps.index(best)].set_color("#7fa6d9")
    rps_axis.set_ylabel("requests/s")
    rps_axis.set_xticks(positions, labels)
    rps_axis.set_xlim(-0.6, len(steps) - 0.4)
    rps_axis.set_xlabel("users in the step (in the order run)")
    latency_axis = rps_axis.twinx()
    for label, values, style in (
        ("p50 ms", [s.p50_ms for s in steps], ":"),
        ("p95 ms", [s.p95_ms for s in steps], "-"),
        ("p99 ms", [s.p99_ms for s in steps], "--"),
    ):
        latency_axis.plot(positions, [v if v is not None else float("nan") for v in values],
                          linestyle=style, marker="o", label=label)  # fmt: skip
    if bound_ms is not None:
        latency_axis.axhline(bound_ms, color="red", linestyle="-.", linewidth=1,
                             label=f"p95 bound {bound_ms:g} ms")  # fmt: skip
    latency_axis.set_ylabel("latency (ms)")
    latency_axis.set_ylim(bottom=0)
    rps_axis.set_ylim(bottom=0)
    title = "latency and throughput per step (Locust statistics)"
    if best is not None:
        who = f"{best.users} user" + ("s" if best.users != 1 else "")
        title += f"\nMAX_RPS {best.rps:.1f} requests/s at {who} (dark bar)"
    rps_axis.set_title(title, fontsize="medium")
    handles = rps_axis.get_legend_handles_labels()[0] + latency_axis.get_legend_handles_labels()[0]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize="small",
                  frameon=False)  # fmt: skip
    figure.tight_layout(rect=(0, 0.07, 1, 1))  # room for the legend below the axes
    figure.savefig(path)
    plt.close(figure)
    return path
