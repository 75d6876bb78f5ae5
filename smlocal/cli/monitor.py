"""The ``smlocal monitor`` commands: ``baseline``, ``run``, ``schedule`` (on the main app).

Thin: parses options, calls :mod:`smlocal.monitor` (imported inside each command, so
``smlocal --help`` loads neither NumPy nor DataSketches nor boto3), prints. ``monitor run``
exits 0 when the window has no violations, 1 when it has, 2 when it could not run.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from smlocal.cli.output import ExitCode, err, out, reported

if TYPE_CHECKING:
    from smlocal.monitor.run import RunResult
    from smlocal.monitor.schedule import HourOutcome

__all__ = ["register"]


class _Format(StrEnum):
    csv = "csv"
    json = "json"


class _CaptureData(StrEnum):
    input = "input"
    output = "output"
    both = "both"


def _print_result(result: RunResult) -> None:
    from rich.table import Table

    by_feature: dict[str, list[str]] = {}
    for v in result.violations:
        by_feature.setdefault(v.feature_name, []).append(v.constraint_check_type)
    table = Table(title=f"monitor run: {escape(result.endpoint)}", title_justify="left")
    for column in ("feature", "type", "present", "missing", "drift", "violations"):
        table.add_column(column, no_wrap=column != "violations")
    names = [f.name for f in result.features]
    missing_features = [n for n in by_feature if n not in names]
    for f in result.features:
        drift = result.drift.get(f.name)
        checks = by_feature.get(f.name, [])
        style = "bold red" if checks else ""
        table.add_row(
            escape(f.name),
            f.inferred_type,
            str(f.num_present),
            str(f.num_missing),
            "" if drift is None else f"{drift:.3f}",
            f"[{style}]{escape(', '.join(checks))}[/]" if checks else "[green]none[/]",
        )
    for name in missing_features:
        table.add_row(escape(name), "", "", "", "", f"[bold red]{', '.join(by_feature[name])}[/]")
    out.print(table)
    verdict = (
        f"[bold red]{_count(len(result.violations))}[/]"
        if result.violations
        else "[green]no violations[/]"
    )
    out.print(
        f"{verdict} in {result.records} records ({result.rows} rows, {result.files} capture "
        f"files{f', {result.skipped} unreadable records skipped' if result.skipped else ''})"
    )
    out.print(
        f"wrote {escape(str(result.violations_file))} and {escape(str(result.statistics_file))}"
    )
    for plot in result.plots:
        out.print(f"drift plot: {escape(str(plot))}")
    if result.sns_message_id:
        out.print(f"SNS message {result.sns_message_id} published")
    if result.metrics_sent:
        out.print(f"{result.metrics_sent} CloudWatch metrics put")


def _report_hour(outcome: HourOutcome) -> None:
    label = f"{outcome.hour:%Y-%m-%dT%H}:00Z"
    if outcome.result is None:
        err.print(f"[red]{label}: could not run:[/] {escape(outcome.error or '')}")
    elif outcome.result.violations:
        kinds = sorted({v.constraint_check_type for v in outcome.result.violations})
        out.print(
            f"[bold red]{label}: {_count(len(outcome.result.violations))}[/] "
            f"({', '.join(kinds)}) in {outcome.result.records} records -> "
            f"{escape(str(outcome.out))}"
        )
    else:
        out.print(f"[green]{label}: no violations[/] in {outcome.result.records} records")


def register(app: typer.Typer) -> None:
    """Add ``smlocal monitor baseline``, ``run`` and ``schedule`` to ``app``."""
    group = typer.Typer(
        help=(
            "Model Monitor-compatible data quality checks: baseline a training dataset, then "
            "check captured endpoint traffic against it (the files SageMaker's analyzer reads "
            "and writes).\n\n"
            "Example: `smlocal monitor baseline --dataset train.csv --out baseline/` then "
            "`smlocal monitor run --capture s3://bucket/capture/my-endpoint --baseline "
            "baseline/ --out report/` (exit 1 when there are violations)."
        ),
        no_args_is_help=True,
    )

    @group.command("baseline")
    def baseline(
        dataset: Annotated[
            Path,
            typer.Option(help="Training data: CSV, or flat JSON / JSON Lines (.json, .jsonl)."),
        ],
        out_dir: Annotated[
            Path, typer.Option("--out", help="Directory for statistics.json and constraints.json.")
        ],
        header: Annotated[
            bool, typer.Option(help="The CSV's first line names the columns (else _c0, _c1, ...).")
        ] = False,
        dataset_format: Annotated[
            _Format | None, typer.Option(help="Override the format the file name suggests.")
        ] = None,
    ) -> None:
        """Write statistics.json and constraints.json for a dataset, in Model Monitor's schema.

        Types (Integral / Fractional / String), completeness, non-negativity, string domains,
        KLL distributions in 10 buckets and the analyzer's suggested monitoring_config.
        Exit 0 written, 2 the dataset could not be read.
        """
        with reported():
            from smlocal.monitor import run_baseline

            err.print(f"profiling {escape(str(dataset))} ...")
            result = run_baseline(
                dataset,
                out_dir,
                header=header,
                dataset_format=dataset_format.value if dataset_format else None,
            )
            types = ", ".join(f"{f.name}: {f.inferred_type}" for f in result.features[:12])
            more = len(result.features) - 12
            out.print(
                f"{result.rows} rows, {len(result.features)} features "
                f"({escape(types)}{f', +{more} more' if more > 0 else ''})"
            )
            out.print(
                f"wrote {escape(str(result.statistics))} and {escape(str(result.constraints))}"
            )

    @group.command("run")
    def run(
        capture: Annotated[
            str,
            typer.Option(
                help="Captured traffic: a local directory or s3://BUCKET/PREFIX holding "
                ".../yyyy/mm/dd/hh/*.jsonl (the destination, an endpoint's or a variant's folder)."
            ),
        ],
        baseline_dir: Annotated[
            Path,
            typer.Option(
                "--baseline",
                help="Directory with constraints.json (and statistics.json for drift).",
            ),
        ],
        out_dir: Annotated[
            Path,
            typer.Option(
                "--out", help="Directory for constraint_violations.json, statistics.json, PNGs."
            ),
        ],
        start: Annotated[
            str | None,
            typer.Option(
                help="Window start, ISO-8601 UTC (e.g. 2026-12-02T05:00:00Z). Default: all."
            ),
        ] = None,
        end: Annotated[
            str | None, typer.Option(help="Window end (exclusive), ISO-8601 UTC. Default: all.")
        ] = None,
        capture_data: Annotated[
            _CaptureData,
            typer.Option(help="Which side of each record: input, output, or both (output first)."),
        ] = _CaptureData.input,
        dataset_format: Annotated[
            _Format | None,
            typer.Option(help="Parse payloads as csv or json whatever their encoding says."),
        ] = None,
        sns_topic: Annotated[
            str | None, typer.Option(help="SNS topic ARN to publish to when there are violations.")
        ] = None,
        cloudwatch: Annotated[
            bool,
            typer.Option(
                help="Put feature_data_/feature_non_null_/feature_baseline_drift_ metrics in "
                "/aws/sagemaker/Endpoints/data-metric."
            ),
        ] = False,
        endpoint_name: Annotated[
            str | None,
            typer.Option(
                help="EndpointName for metrics and alerts (default: from the capture path)."
            ),
        ] = None,
        schedule_name: Annotated[
            str, typer.Option(help="ScheduleName dimension of the metrics.")
        ] = "smlocal-monitor",
    ) -> None:
        """Check a window of captured traffic against a baseline; write constraint_violations.json.

        Checks: data_type_check, completeness_check, baseline_drift_check,
        missing_column_check, extra_column_check, categorical_values_check.
        Exit 0 no violations, 1 violations found, 2 could not run (bad baseline, no records).

        Example: `smlocal monitor run --capture s3://bucket/datacapture/my-endpoint --baseline
        baseline/ --out report/ --start 2026-12-02T05 --end 2026-12-02T06 --cloudwatch`
        """
        with reported():
            from smlocal.monitor import CaptureWindow, MonitorRun, parse_time, run_monitor

            window = CaptureWindow(
                source=capture,
                start=parse_time(start, "--start") if start else None,
                end=parse_time(end, "--end") if end else None,
                capture_data=capture_data.value,
                dataset_format=dataset_format.value if dataset_format else None,
            )
            if window.start and window.end and window.end <= window.start:
                from smlocal.monitor import MonitorInputError

                raise MonitorInputError("--end must be after --start")
            err.print(f"reading captured records from {escape(capture)} ...")
            result = run_monitor(
                MonitorRun(
                    window=window,
                    baseline=baseline_dir,
                    out=out_dir,
                    sns_topic=sns_topic,
                    cloudwatch=cloudwatch,
                    endpoint_name=endpoint_name,
                    schedule_name=schedule_name,
                )
            )
            _print_result(result)
            if result.violations:
                raise typer.Exit(int(ExitCode.FAILED))

    @group.command("schedule")
    def schedule(
        capture: Annotated[
            str, typer.Option(help="Captured traffic: a local directory or s3://BUCKET/PREFIX.")
        ],
        baseline_dir: Annotated[
            Path, typer.Option("--baseline", help="Directory with constraints.json (+ statistics).")
        ],
        out_dir: Annotated[
            Path,
            typer.Option(
                "--out",
                help="Reports go to OUT/yyyy/mm/dd/hh/; what was done to OUT/schedule.json.",
            ),
        ],
        every: Annotated[str, typer.Option(help="Time between rounds: 1h, 15m, 90s.")] = "1h",
        once: Annotated[
            bool,
            typer.Option(
                help="One round, then exit (for cron or CI): 1 if any hour had violations."
            ),
        ] = False,
        since: Annotated[
            str | None, typer.Option(help="Ignore capture hours before this ISO-8601 UTC time.")
        ] = None,
        capture_data: Annotated[
            _CaptureData, typer.Option(help="input, output, or both (output first).")
        ] = _CaptureData.input,
        dataset_format: Annotated[
            _Format | None, typer.Option(help="Parse payloads as csv or json.")
        ] = None,
        sns_topic: Annotated[
            str | None, typer.Option(help="SNS topic ARN for hours with violations.")
        ] = None,
        cloudwatch: Annotated[bool, typer.Option(help="Put the data metrics per hour.")] = False,
        endpoint_name: Annotated[str | None, typer.Option(help="EndpointName dimension.")] = None,
        schedule_name: Annotated[
            str, typer.Option(help="ScheduleName dimension of the metrics.")
        ] = "smlocal-monitor",
    ) -> None:
        """Run `monitor run` on each completed hour of capture not yet reported (a local
        stand-in for an hourly monitoring schedule).

        Hours are complete 2 minutes after they end; each gets its own report directory, and
        OUT/schedule.json remembers them, so a restarted schedule or a missed cron run catches
        up without repeating an hour. Without --once it runs a round every --every until Ctrl-C
        (exit 130). With --once: exit 0 no violations in the new hours, 1 some, 2 an hour or
        the inputs could not be used.
        """
        with reported():
            from smlocal.monitor import CaptureWindow, MonitorRun, parse_time
            from smlocal.monitor.schedule import parse_every, run_schedule

            interval = parse_every(every)
            template = MonitorRun(
                window=CaptureWindow(
                    capture,
                    capture_data=capture_data.value,
                    dataset_format=dataset_format.value if dataset_format else None,
                ),
                baseline=baseline_dir,
                out=out_dir,
                sns_topic=sns_topic,
                cloudwatch=cloudwatch,
                endpoint_name=endpoint_name,
                schedule_name=schedule_name,
            )

            if not once:
                err.print(f"monitoring {escape(capture)} every {every} (Ctrl-C stops) ...")
            outcomes = run_schedule(
                template,
                every=interval,
                once=once,
                since=parse_time(since, "--since") if since else None,
                on_hour=_report_hour,
            )
            if not outcomes:
                out.print("no new completed hour of capture")
            if any(o.result is None for o in outcomes):
                raise typer.Exit(int(ExitCode.USAGE))
            if any(o.result is not None and o.result.violations for o in outcomes):
                raise typer.Exit(int(ExitCode.FAILED))

    app.add_typer(group, name="monitor")


def _count(violations: int) -> str:
    return f"{violations} violation" + ("" if violations == 1 else "s")
