"""The `smlocal promote` and `smlocal cleanup` commands (registered on the main typer app).

Thin: the flags become a :class:`~smlocal.promote.options.PromoteOptions`; the ``promote``
package merges them with the profile and load-test advice and does the work; this module only
prints. Every heavy import (boto3, docker, the
promote package) happens inside the commands so `smlocal --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from smlocal.cli.output import ExitCode, err, fail, out, reported

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from smlocal.promote.options import PromoteOptions

__all__ = ["register"]


class _ConsoleReporter:
    """Step lines plus one progress bar per image layer while pushing."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._layers: dict[str, TaskID] = {}

    def info(self, message: str) -> None:
        self._progress.console.print(f"  [green]✓[/] {escape(message)}")

    def warn(self, message: str) -> None:
        self._progress.console.print(f"[bold yellow]WARNING:[/] {escape(message)}")

    def layer(self, layer_id: str, status: str, current: int, total: int) -> None:
        task = self._layers.get(layer_id)
        if task is None:
            task = self._progress.add_task(f"  layer {layer_id}", total=total, detail="")
            self._layers[layer_id] = task
        done = min(current, total)  # docker's byte counts can overshoot the layer size
        self._progress.update(
            task,
            completed=done,
            total=total,
            description=f"  {status} {layer_id}",
            detail=f"{done / 1e6:.1f}/{total / 1e6:.1f} MB",
        )

    def end_layers(self) -> None:
        for task in self._layers.values():
            self._progress.remove_task(task)
        self._layers.clear()


def _print_plan(steps: list[tuple[str, list[str]]]) -> None:
    for index, (name, calls) in enumerate(steps, 1):
        out.print(f"[bold]{index:2d}. {escape(name)}[/]")
        for call in calls:
            out.print(f"      {escape(call)}", soft_wrap=True)
    err.print("[dim]dry run: no AWS call was made and no manifest was written[/]")


def _promote(options: PromoteOptions, *, dry_run: bool) -> None:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    from smlocal.promote import plan
    from smlocal.promote.deploy import execute, prepare
    from smlocal.promote.errors import StepFailedError
    from smlocal.promote.options import build_request

    request = build_request(options)
    if request.serverless is None:
        # Which of flag, profile, load test or default each value came from.
        err.print(escape(request.scaling.describe()))
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        console=err,
        transient=True,
    ) as progress:
        reporter = _ConsoleReporter(progress)
        prepared = prepare(request, reporter, dry_run=dry_run)
        if dry_run:
            progress.stop()
            _print_plan(plan.describe(prepared.deployment))
            return
        overall = progress.add_task("promote", total=len(plan.STEPS), detail="")

        def on_step(name: str, index: int, total: int) -> None:
            reporter.end_layers()
            progress.update(
                overall,
                completed=index - 1,
                description=f"[{index}/{total}] {name}",
                detail=f"{index - 1}/{total} steps",
            )
            progress.console.print(f"[bold]{escape(name)}[/]")

        try:
            manifest = execute(prepared, on_step)
        except StepFailedError:
            progress.stop()
            raise
    out.print(
        f"[bold green]promoted[/] {escape(request.spec.name)} "
        f"(deployment {escape(request.deployment_id)})"
    )
    out.print(f"manifest: {manifest.path}")
    out.print(f"clean up: smlocal cleanup --manifest {manifest.path}")


def _cleanup(
    *,
    manifest_path: Path | None,
    deployment_id: str | None,
    keep_artifacts: bool,
    yes: bool,
    endpoint_url: str | None,
    poll_interval: float,
) -> None:
    from smlocal.promote.cleanup import CleanupOptions, pending, run_cleanup
    from smlocal.promote.config import find_project_root
    from smlocal.promote.manifest import Manifest, Resource, default_manifest_path

    if (manifest_path is None) == (deployment_id is None):
        fail("pass exactly one of --manifest FILE or --deployment-id ID", ExitCode.USAGE)
    path = manifest_path or default_manifest_path(find_project_root(), str(deployment_id))
    manifest = Manifest.load(path)
    options = CleanupOptions(
        keep_artifacts=keep_artifacts, endpoint_url=endpoint_url, poll_interval_s=poll_interval
    )
    todo = pending(manifest, options)
    if not todo:
        out.print(
            f"nothing to delete: deployment {escape(manifest.deployment_id)} has no resources "
            "left that smlocal created (already cleaned up)"
        )
        return
    out.print(f"deployment {escape(manifest.deployment_id)} ({manifest.region}) — will delete:")
    for resource in todo:
        out.print(f"  {resource.kind:26} {escape(resource.id)}")
    kept = [r for r in manifest.resources if not r.created]
    if kept:
        out.print(f"[dim]pre-existing, left alone: {', '.join(r.id for r in kept)}[/]")
    if not yes:
        import click

        try:
            confirmed = typer.confirm("delete these?", default=False, err=True)
        except click.Abort:
            confirmed = False
        if not confirmed:
            fail("nothing deleted (pass --yes to skip this question)", ExitCode.FAILED)

    def on_resource(resource: Resource, outcome: str) -> None:
        mark = "[red]✗[/]" if outcome.startswith("FAILED") else "[green]✓[/]"
        out.print(f"  {mark} {resource.kind:26} {escape(resource.id)}: {escape(outcome)}")

    run_cleanup(manifest, options, on_resource)
    out.print(f"[bold green]cleaned up[/] deployment {escape(manifest.deployment_id)}")


def register(app: typer.Typer) -> None:
    """Add this capability's commands to ``app``."""

    # typer commands take their options as parameters by design (as in smlocal/cli/__init__.py).
    @app.command(rich_help_panel="Release")
    def promote(
        image: Annotated[
            str | None, typer.Argument(help="The local image that passed contract-test.")
        ] = None,
        model: Annotated[
            str | None,
            typer.Option(
                "--model", "-m", help="model.tar.gz, a directory or s3:// (default per variant)."
            ),
        ] = None,
        endpoint_name: Annotated[str | None, typer.Option(help="SageMaker endpoint name.")] = None,
        endpoint: Annotated[
            str | None,
            typer.Option(
                help="Promote this endpoint of the project config: every variant with its "
                "own image, model, instance type, count and weight."
            ),
        ] = None,
        config: Annotated[
            Path | None,
            typer.Option(help="Project config (default: nearest smlocal.toml / pyproject)."),
        ] = None,
        profile: Annotated[
            str | None, typer.Option(help="Profile (dev/test/prod) from smlocal.toml / pyproject.")
        ] = None,
        region: Annotated[
            str | None, typer.Option(help="AWS region (default: profile, AWS_REGION).")
        ] = None,
        instance_type: Annotated[
            str | None, typer.Option(help="Instance type (default ml.m5.large).")
        ] = None,
        instance_count: Annotated[
            int | None, typer.Option(min=1, help="Initial instance count.")
        ] = None,
        serverless: Annotated[
            str | None,
            typer.Option(help="MEMORY:MAXCONC, e.g. 2048:10 (serverless instead of instances)."),
        ] = None,
        async_output: Annotated[
            str | None, typer.Option(help="s3://... for async inference output.")
        ] = None,
        variant_weight: Annotated[
            float, typer.Option(min=0.0, help="Initial variant weight.")
        ] = 1.0,
        min_: Annotated[
            int | None, typer.Option("--min", help="Autoscaling minimum instances.")
        ] = None,
        max_: Annotated[
            int | None, typer.Option("--max", help="Autoscaling maximum instances.")
        ] = None,
        target_invocations: Annotated[
            float | None, typer.Option(help="Invocations per instance per minute (default 70).")
        ] = None,
        scaling_from: Annotated[
            Path | None,
            typer.Option(
                help="The loadtest-summary.json `smlocal loadtest --find-max --report DIR` "
                "wrote: its target invocations per instance (over the profile's), and its "
                "min/max instances when the test had --base-rps/--peak-rps (below the profile's)."
            ),
        ] = None,
        role_arn: Annotated[
            str | None, typer.Option(help="Use this execution role; create none.")
        ] = None,
        bucket: Annotated[
            str | None,
            typer.Option(help="Artifact bucket (default smlocal-artifacts-ACCOUNT-REGION)."),
        ] = None,
        repository: Annotated[
            str | None, typer.Option(help="ECR repository (default: from the image name).")
        ] = None,
        data_capture: Annotated[
            str | None, typer.Option(help="s3://... to capture requests and responses.")
        ] = None,
        alarm_email: Annotated[
            str | None, typer.Option(help="E-mail for the alarms' SNS topic.")
        ] = None,
        manifest: Annotated[
            Path | None,
            typer.Option(
                help="Manifest file (default $SMLOCAL_HOME/deployments/ID.json when "
                "SMLOCAL_HOME is set, else .smlocal/deployments/ID.json in the project)."
            ),
        ] = None,
        deployment_id: Annotated[
            str | None,
            typer.Option(help="Deployment id (default NAME-TIMESTAMP); reuse one to resume."),
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print every call; make none.")
        ] = False,
        endpoint_url: Annotated[
            str | None, typer.Option(help="Send every AWS call here (moto, LocalStack).")
        ] = None,
        registry_url: Annotated[
            str | None, typer.Option(help="Push the image to HOST:PORT instead of ECR.")
        ] = None,
        skip_gate: Annotated[
            bool,
            typer.Option("--skip-gate", help="Promote without a contract-test pass (recorded)."),
        ] = False,
        contract_spec: Annotated[
            Path | None,
            typer.Option(help="Require a contract-test pass against this spec file."),
        ] = None,
        gate: Annotated[
            str | None,
            typer.Option(help="Quality gate, e.g. 'accuracy>=0.9' (accuracy, f1, r2, rmse)."),
        ] = None,
        eval_data: Annotated[
            Path | None,
            typer.Option(help="CSV of labelled rows (label last) for --gate."),
        ] = None,
        wait_timeout: Annotated[
            float | None, typer.Option(help="Seconds to wait for InService.")
        ] = None,
        poll_interval: Annotated[float, typer.Option(help="Seconds between status polls.")] = 15.0,
    ) -> None:
        """Ship IMAGE (with a passing contract-test record) to ECR and a SageMaker endpoint.

        Or `--endpoint NAME`: ship that endpoint of the project config, every variant with its
        own image and model (one push per image, one upload per model, one model per variant).

        ECR push, S3 upload, IAM role, model, endpoint config, endpoint (create or update),
        autoscaling and alarms — each recorded in a manifest that `smlocal cleanup` reverses.
        """
        from smlocal.promote.options import PromoteOptions

        options = PromoteOptions(
            image=image,
            model=model,
            endpoint_name=endpoint_name,
            endpoint=endpoint,
            config=config,
            profile=profile,
            region=region,
            instance_type=instance_type,
            instance_count=instance_count,
            serverless=serverless,
            async_output=async_output,
            variant_weight=variant_weight,
            min_instances=min_,
            max_instances=max_,
            target_invocations=target_invocations,
            scaling_from=scaling_from,
            role_arn=role_arn,
            bucket=bucket,
            repository=repository,
            data_capture=data_capture,
            alarm_email=alarm_email,
            manifest=manifest,
            deployment_id=deployment_id,
            endpoint_url=endpoint_url,
            registry_url=registry_url,
            skip_gate=skip_gate,
            contract_spec=contract_spec,
            gate=gate,
            eval_data=eval_data,
            wait_timeout=wait_timeout,
            poll_interval=poll_interval,
        )
        with reported():
            _promote(options, dry_run=dry_run)

    @app.command(rich_help_panel="Release")
    def cleanup(
        manifest: Annotated[Path | None, typer.Option(help="The deployment's manifest.")] = None,
        deployment_id: Annotated[
            str | None,
            typer.Option(
                help="Find the manifest under $SMLOCAL_HOME/deployments/ when SMLOCAL_HOME "
                "is set, else under the project's .smlocal/deployments/."
            ),
        ] = None,
        keep_artifacts: Annotated[
            bool, typer.Option("--keep-artifacts", help="Keep the S3 model and the ECR image.")
        ] = False,
        yes: Annotated[
            bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")
        ] = False,
        endpoint_url: Annotated[
            str | None, typer.Option(help="Send every AWS call here (default: as promote did).")
        ] = None,
        poll_interval: Annotated[float, typer.Option(help="Seconds between status polls.")] = 15.0,
    ) -> None:
        """Delete what a promote created, in reverse order; pre-existing resources stay."""
        with reported():
            _cleanup(
                manifest_path=manifest,
                deployment_id=deployment_id,
                keep_artifacts=keep_artifacts,
                yes=yes,
                endpoint_url=endpoint_url,
                poll_interval=poll_interval,
            )
