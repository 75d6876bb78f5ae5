"""The `smlocal` commands for the contract capability (registered on the main typer app).

``smlocal contract-test`` exit codes: 0 every error-severity check passed (a pass is recorded
in the ledger for a complete run); 1 at least one error-severity check failed; 2 the suite
could not run as asked (bad flag or spec, missing image or model, no Docker engine); 130
Ctrl-C or SIGTERM stopped it (after every container it started was removed).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from smlocal.cli.output import ExitCode, fail, reported

if TYPE_CHECKING:
    from rich.console import Console

    from smlocal.contracts.cleanup import SuiteInterrupted
    from smlocal.contracts.model import CheckInfo, CheckResult, SuiteReport

__all__ = ["register"]

_VERDICT_STYLE = {
    "passed": "green",
    "failed": "bold red",
    "not_applicable": "dim",
    "skipped": "dim",
}


def _ids(values: list[str] | None) -> frozenset[str]:
    return frozenset(part.strip() for value in values or [] for part in value.split(",") if part)


class _ConsoleProgress:
    """One line per check as it finishes, with a spinner while it runs (stderr)."""

    def __init__(self, console: Console) -> None:
        from rich.status import Status

        self.console = console
        self.status: Status | None = Status("", console=console)

    def started(self, check: CheckInfo) -> None:
        if self.status is not None:
            self.status.update(f"[bold]{check.id}[/] {check.title} …")
            self.status.start()

    def finished(self, result: CheckResult) -> None:
        from rich.markup import escape

        if self.status is not None:
            self.status.stop()
        verdict = str(result.status)
        label = verdict if verdict != "failed" else f"failed ({result.severity})"
        style = _VERDICT_STYLE[verdict] if result.is_error or verdict != "failed" else "yellow"
        self.console.print(
            f"[{style}]{label:>22}[/] {result.check.id:<38} [dim]{result.duration_s:6.2f}s[/] "
            f"{escape(result.outcome.summary)}",
            soft_wrap=True,
        )


def _table(report: SuiteReport) -> object:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"contract-test {escape(report.image)}", title_justify="left")
    table.add_column("check", no_wrap=True)
    for column in ("severity", "verdict", "time"):
        table.add_column(column, no_wrap=True)
    table.add_column("summary / evidence", overflow="fold")
    for result in report.results:
        verdict = str(result.status)
        style = _VERDICT_STYLE[verdict] if result.is_error or verdict != "failed" else "yellow"
        evidence = result.outcome.evidence if result.status == "failed" else ()
        table.add_row(
            result.check.id,
            str(result.severity),
            f"[{style}]{verdict}[/]",
            f"{result.duration_s:.2f}s",
            escape("\n".join(evidence[:6]) or result.outcome.summary),
        )
    return table


@contextlib.contextmanager
def _signals_interrupt(received: list[str]) -> Iterator[None]:
    """SIGINT and SIGTERM both stop the run as Ctrl-C does (KeyboardInterrupt), so CI's
    SIGTERM on a timeout cleans up too; the name of the signal goes to ``received``."""

    def interrupt(signum: int, frame: object) -> None:
        received.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    previous = {which: signal.signal(which, interrupt) for which in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for which, handler in previous.items():
            signal.signal(which, handler)


def _interrupted_line(stop: SuiteInterrupted, received: list[str]) -> str:
    what = received[0] if received else "SIGINT"
    head = f"interrupted ({what}) during {stop.phase}"
    if stop.left:
        ids = " ".join(i[:12] for i in stop.left)
        return f"{head}; could not remove container(s) {ids}: run `docker rm -f {ids}`"
    if not stop.removed:
        return f"{head}; no container had been started, nothing was left"
    return f"{head}; removed the {len(stop.removed)} container(s) it started, nothing was left"


def _print_checks(out: Console, multi_model: bool) -> None:
    from rich.markup import escape

    from smlocal.contracts.checks import ALL_CHECKS
    from smlocal.contracts.checks.multi_model import LABEL, MULTI_MODEL_CHECKS

    checks = (LABEL, *(info for info, _ in MULTI_MODEL_CHECKS)) if multi_model else ALL_CHECKS
    for check in checks:
        out.print(f"{check.id:<38} {check.severity!s:<8} {escape(check.title)}")


def _multi_model_run(
    image: str,
    models: str | None,
    model: str | None,
    spec: Path | None,
    instance_type: str | None,
    only: list[str] | None,
    skip: list[str] | None,
) -> Callable[[Any], SuiteReport]:
    """The --multi-model suite as a function of the progress listener (flags checked first)."""
    from smlocal.contracts.multi_model_suite import MultiModelOptions, run_multi_model_suite

    if models is None:
        fail(
            "--multi-model needs --models DIR_OR_S3_PREFIX: where its *.tar.gz are", ExitCode.USAGE
        )
    if model is not None or spec is not None:
        fail("--multi-model takes --models, not --model or --spec", ExitCode.USAGE)
    options = MultiModelOptions(
        image=image,
        models=models,
        instance_type=instance_type,
        only=_ids(only),
        skip=_ids(skip),
    )
    return lambda progress: run_multi_model_suite(options, progress)


def register(app: typer.Typer) -> None:
    """Add this capability's commands to ``app``."""

    @app.command("contract-test")
    def contract_test(
        image: Annotated[
            str | None, typer.Argument(help="The inference image to test.", show_default=False)
        ] = None,
        model: Annotated[
            str | None,
            typer.Option(
                "--model", "-m", help="model.tar.gz, directory or S3 URI (read-only mount)."
            ),
        ] = None,
        spec: Annotated[
            Path | None,
            typer.Option(help="Contract spec (YAML or TOML): content types, examples, skips."),
        ] = None,
        instance_type: Annotated[
            str | None,
            typer.Option(
                help="Instance type: CPU and memory limits, and the platform the image must be "
                "(linux/arm64 for Graviton ml.*g types, else linux/amd64); default ml.m5.large."
            ),
        ] = None,
        junit_xml: Annotated[
            Path | None, typer.Option("--junit-xml", help="Write a JUnit XML report here.")
        ] = None,
        json_path: Annotated[
            Path | None, typer.Option("--json", help="Write every measurement as JSON here.")
        ] = None,
        only: Annotated[
            list[str] | None, typer.Option(help="Run only these check ids (comma-separated).")
        ] = None,
        skip: Annotated[
            list[str] | None, typer.Option(help="Skip these check ids (comma-separated).")
        ] = None,
        list_checks: Annotated[
            bool, typer.Option("--list", help="List the checks and exit.")
        ] = False,
        multi_model: Annotated[
            bool,
            typer.Option(
                "--multi-model",
                help="Check SageMaker's multi-model API (/models: load, 409, list pages, get, "
                "invoke, unload) instead of the single-model contract; needs --models.",
            ),
        ] = False,
        models: Annotated[
            str | None,
            typer.Option(
                "--models",
                help="With --multi-model: a directory or s3://bucket/prefix/ of *.tar.gz models.",
            ),
        ] = None,
    ) -> None:
        """Run the SageMaker hosting contract against IMAGE as CI would.

        Starts IMAGE the way `smlocal serve` does (model read-only at /opt/ml/model, the
        instance type's limits), runs every check, stops everything. Exit codes: 0 no
        error-severity check failed (a pass is recorded for image + model + spec), 1 the
        contract failed, 2 the suite could not run (a bad flag or spec file, also an empty or
        non-UTF-8 one; a missing image or model; no Docker), 130 interrupted by Ctrl-C or
        SIGTERM (every container the run started is removed first).

        Example: smlocal contract-test smlocal/sklearn-iris:latest
        --model containers/sklearn/build/model.tar.gz --spec contracts/specs/sklearn-iris.yaml

        Multi-model images: --multi-model --models DIR_OR_S3_PREFIX runs the mme.* checks of
        SageMaker's /models API instead (every *.tar.gz there is loaded, listed, invoked,
        unloaded), e.g. smlocal contract-test smlocal/multi-model-iris:latest --multi-model
        --models containers/multi-model/build/models
        """
        from rich.console import Console
        from rich.markup import escape

        from smlocal.contracts import ledger
        from smlocal.contracts.cleanup import SuiteInterrupted
        from smlocal.contracts.report import write_json, write_junit
        from smlocal.contracts.runner import SuiteOptions, run_suite

        out = Console(highlight=False)
        if not out.is_terminal:  # CI logs: do not fold the table into 80 columns
            out = Console(highlight=False, width=160)
        err = Console(stderr=True, highlight=False)
        if list_checks:
            _print_checks(out, multi_model)
            return
        if image is None:
            fail("name the IMAGE to test (or pass --list)", ExitCode.USAGE)
        if models is not None and not multi_model:
            fail("--models goes with --multi-model (one model: --model)", ExitCode.USAGE)
        run = (
            _multi_model_run(image, models, model, spec, instance_type, only, skip)
            if multi_model
            else None
        )
        options = SuiteOptions(
            image=image,
            model=model,
            spec_path=spec,
            instance_type=instance_type,
            only=_ids(only),
            skip=_ids(skip),
        )
        received: list[str] = []
        progress = _ConsoleProgress(err)
        with reported():
            try:
                with _signals_interrupt(received):
                    report = run(progress) if run is not None else run_suite(options, progress)
            except SuiteInterrupted as stop:
                if progress.status is not None:
                    progress.status.stop()
                err.print(f"[yellow]{escape(_interrupted_line(stop, received))}[/]", soft_wrap=True)
                raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        if report.swept:
            err.print(
                f"[dim]removed {len(report.swept)} container(s) left by earlier interrupted "
                f"contract-test runs: {escape(', '.join(report.swept))}[/]"
            )
        out.print(_table(report))
        if json_path is not None:
            write_json(report, json_path)
        if junit_xml is not None:
            write_junit(report, junit_xml)
        counts = report.counts()
        line = (
            f"{counts['passed']} passed, {counts['errors']} error(s), {counts['warnings']} "
            f"warning(s), {counts['not_applicable']} not applicable, {counts['skipped']} skipped "
            f"in {report.wall_s:.1f} s"
        )
        if not report.passed:
            err.print(f"[bold red]contract FAILED[/]: {line}")
            raise typer.Exit(int(ExitCode.FAILED))
        if ledger.record_if_pass(report) is not None:
            err.print(f"[bold green]contract passed[/]: {line}; recorded for {report.image_id}")
        else:
            err.print(f"[green]selected checks passed[/]: {line} (partial run: not recorded)")
