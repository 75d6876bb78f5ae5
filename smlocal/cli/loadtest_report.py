"""What ``smlocal loadtest`` prints: the steps table, the path and CPU paragraph, the advice,
and the ``--compare-instances`` ratio. The wording of the CPU figures is
:mod:`smlocal.loadtests.cpu_text`'s; this module only lays them out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from smlocal.cli.output import err, out

if TYPE_CHECKING:
    from smlocal.loadtests.report import RunInfo
    from smlocal.loadtests.session import LoadTestOutcome

__all__ = ["print_comparison", "print_outcome"]


def _figure(value: float | None, form: str) -> str:
    return format(value, form) if value is not None else "-"


def _print_step_cpu(outcome: LoadTestOutcome, *, direct: bool) -> None:
    """Each step's CPU (a table of its own: the steps table already fills 80 columns)."""
    from rich.table import Table

    table = Table(title="CPU per step (runtime API / container)", title_justify="left")
    for column in ("users", "req/s", "API µs/req", "API cores", "ctr µs/req", "ctr cores"):
        table.add_column(column, justify="right")
    for step, cpu in zip(outcome.steps, outcome.cpu, strict=False):
        if cpu is None:
            continue
        # --direct: the runtime API is not in the path, so per request it has no figure.
        api_us = None if direct else cpu.runtime_api_us_per_request
        table.add_row(
            str(step.users),
            f"{step.rps:.1f}",
            _figure(api_us, ".0f"),
            _figure(cpu.runtime_api_cores, ".2f"),
            _figure(cpu.container_us_per_request, ".0f"),
            _figure(cpu.container_cores, ".2f"),
        )
    out.print(table)


def print_outcome(outcome: LoadTestOutcome, info: RunInfo) -> None:
    from rich.table import Table

    from smlocal.loadtests.cpu_text import cpu_lines

    table = Table(title="steps (Locust statistics)", title_justify="left")
    for column in ("users", "requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="right")
    table.add_column("errors")
    for s in outcome.steps:
        table.add_row(
            str(s.users),
            str(s.requests),
            str(s.failures),
            f"{s.rps:.1f}",
            *(f"{v:g}" if v is not None else "-" for v in (s.p50_ms, s.p95_ms, s.p99_ms)),
            ", ".join(f"{k}: {n}" for k, n in sorted(s.errors.items())),
        )
    out.print(table)
    if len(outcome.steps) > 1 and any(c is not None for c in outcome.cpu):
        _print_step_cpu(outcome, direct=bool(info.direct_urls))
    search, advice = outcome.search, outcome.advice
    if search is not None:
        out.print(f"stopped: {escape(search.stop_reason)}")
    if advice is not None:
        out.print(f"MAX_RPS (one instance): [bold]{advice.max_rps:.1f}[/]")
        out.print(
            f"SageMakerVariantInvocationsPerInstance target: [bold]"
            f"{advice.target_invocations_per_instance:g}[/] "
            f"(= {advice.max_rps:.1f} x {advice.safety_factor:g} x 60)"
        )
        out.print(f"instances: min {advice.min_instances}, max {advice.max_instances}")
        if advice.cost_per_hour_usd is not None:
            low, high = advice.cost_per_hour_usd
            out.print(
                f"cost/hour ({advice.instance_type}): ${low:.3f} - ${high:.3f} "
                f"[dim]({escape(advice.price_note)})[/]"
            )
    elif search is not None:
        out.print("[yellow]no step kept the bound; no MAX_RPS[/]")
    # Whose figures these are: the path requests took, then whose CPU ran out.
    if info.direct_urls:
        out.print(
            f"[bold]direct[/] to the container: {escape(', '.join(info.direct_urls))} "
            "(no runtime API in the path: what SageMaker's front end sees)"
        )
    else:
        out.print(f"through the runtime API at {escape(info.url)}")
    if outcome.shown_cpu is not None:
        for line in cpu_lines(
            outcome.shown_cpu, direct=bool(info.direct_urls), kind=info.target_kind
        ):
            out.print(escape(line))
    if outcome.generator_cpu_warning:
        err.print(
            "[yellow]warning:[/] Locust ran out of CPU — figures may measure the load "
            "generator; add --workers"
        )
    out.print(f"summary: {outcome.summary_path}")


def print_comparison(outcomes: list[LoadTestOutcome], count: int, report: Path) -> None:
    import json
    import os

    one, many = (o.steps[0].rps if o.steps[0].requests else None for o in outcomes)
    ratio = many / one if one and many else None
    result = {
        "instances": [1, count],
        "users": outcomes[0].steps[0].users,
        "requests_per_second": [one, many],
        "speedup": ratio,
        "host_cpus": os.cpu_count(),
    }
    (report / "compare-instances.json").write_text(json.dumps(result, indent=2) + "\n")
    if ratio is None:
        out.print("[yellow]no request completed on one of the runs; no comparison[/]")
        return
    out.print(
        f"{count} instances: {many:.1f} req/s vs 1 instance: {one:.1f} req/s "
        f"= [bold]{ratio:.2f}x[/] (ideal {count}x; this host has {os.cpu_count()} CPUs "
        "shared by the containers, the emulator and Locust)"
    )
