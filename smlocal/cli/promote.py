"""The `smlocal promote` and `smlocal cleanup` commands (registered on the main typer app).

Thin: options are merged with the project's profile, turned into a PromoteRequest and handed
to the ``promote`` package; this module only prints. Every heavy import (boto3, docker, the
promote package) happens inside the commands so `smlocal --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from smlocal.emulator.spec import EndpointSpec
    from smlocal.promote.request import PromoteRequest

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


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


def _region(explicit: str | None, profile: dict[str, Any]) -> str:
    region = (
        explicit
        or profile.get("region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
    )
    if not region:
        _fail("no AWS region: pass --region, set it in the profile, or set AWS_REGION", 2)
    return str(region)


def _first(*values: Any) -> Any:
    """The first value that was given: flag, then load-test advice, then profile, then default."""
    return next(value for value in values if value is not None)


def _build_request(options: dict[str, Any]) -> PromoteRequest:
    from smlocal.emulator.spec import build_spec
    from smlocal.promote.config import find_project_root, load_profile
    from smlocal.promote.manifest import default_manifest_path
    from smlocal.promote.naming import new_deployment_id
    from smlocal.promote.request import (
        DEFAULT_TARGET_INVOCATIONS,
        DataCaptureSettings,
        PromoteRequest,
        ScalingSettings,
        async_settings,
        check_endpoint_name,
        parse_serverless,
        scaling_from_loadtest,
    )

    o = options
    profile = load_profile(o["profile"], config=o["config"])
    instance_count = int(_first(o["instance_count"], profile.get("instance_count"), 1))
    if o["endpoint"] is not None:
        spec = _spec_from_config(o)
        instance_count = min(v.instance_count for v in spec.variants)
        model = o["model"] or spec.variants[0].model or ""
    else:
        if o["image"] is None or o["model"] is None or o["endpoint_name"] is None:
            _fail(
                "pass IMAGE, --model and --endpoint-name, or --endpoint NAME to promote an "
                "endpoint (all its variants) from the project config",
                2,
            )
        model = o["model"]
        spec = build_spec(
            name=check_endpoint_name(o["endpoint_name"]),
            variants=[
                {
                    "image": o["image"],
                    "model": o["model"],
                    "instance_type": _first(
                        o["instance_type"], profile.get("instance_type"), "ml.m5.large"
                    ),
                    "instance_count": instance_count,
                    "weight": o["variant_weight"],
                }
            ],
        )
    advice = scaling_from_loadtest(o["scaling_from"]) if o["scaling_from"] else {}

    def scaling_value(flag: str, key: str, default: float) -> Any:
        return _first(o[flag], advice.get(key), profile.get(key), default)

    scaling = ScalingSettings(
        min_instances=int(scaling_value("min", "min_instances", instance_count)),
        max_instances=int(scaling_value("max", "max_instances", max(instance_count, 4))),
        target_invocations=float(
            scaling_value("target_invocations", "target_invocations", DEFAULT_TARGET_INVOCATIONS)
        ),
    )
    async_output = _first(o["async_output"], profile.get("async_output"), "") or None
    data_capture = _first(o["data_capture"], profile.get("data_capture"), "") or None
    deployment_id = o["deployment_id"] or new_deployment_id(spec.name)
    manifest = o["manifest"] or default_manifest_path(find_project_root(), deployment_id)

    def setting(key: str) -> Any:
        return _first(o[key], profile.get(key), "") or None

    return PromoteRequest(
        spec=spec,
        model=model,
        region=_region(o["region"], profile),
        deployment_id=deployment_id,
        manifest_path=Path(manifest),
        serverless=parse_serverless(o["serverless"]) if o["serverless"] else None,
        scaling=scaling,
        async_output=async_settings(async_output) if async_output else None,
        data_capture=DataCaptureSettings(data_capture) if data_capture else None,
        role_arn=setting("role_arn"),
        bucket=setting("bucket"),
        repository=setting("repository"),
        alarm_email=setting("alarm_email"),
        latency_p99_ms=float(profile.get("latency_p99_ms", 1000.0)),
        endpoint_url=setting("endpoint_url"),
        registry_url=setting("registry_url"),
        skip_gate=o["skip_gate"],
        contract_spec=o["contract_spec"],
        quality_gate=o["gate"],
        eval_data=o["eval_data"],
        wait_timeout_s=float(_first(o["wait_timeout"], profile.get("wait_timeout"), 1800.0)),
        poll_interval_s=o["poll_interval"],
        profile=o["profile"],
    )


def _spec_from_config(o: dict[str, Any]) -> EndpointSpec:
    """``--endpoint NAME``: the endpoint and all its variants (image, model, instance type,
    count, weight each) from smlocal.toml; the single-variant flags do not apply."""
    from smlocal.emulator.config import load_config
    from smlocal.emulator.spec import build_spec
    from smlocal.promote.request import check_endpoint_name

    given = [f for f in ("image", "instance_type", "instance_count") if o[f] is not None]
    if given:
        flags = ", ".join("IMAGE" if f == "image" else "--" + f.replace("_", "-") for f in given)
        _fail(f"{flags}: not with --endpoint; set each variant in the project config", 2)
    spec = load_config(o["config"], o["profile"]).endpoint(o["endpoint"])
    if o["endpoint_name"] is not None:
        spec = build_spec(**{**spec.model_dump(), "name": o["endpoint_name"]})
    check_endpoint_name(spec.name)
    return spec


def _print_plan(steps: list[tuple[str, list[str]]]) -> None:
    for index, (name, calls) in enumerate(steps, 1):
        out.print(f"[bold]{index:2d}. {escape(name)}[/]")
        for call in calls:
            out.print(f"      {escape(call)}", soft_wrap=True)
    err.print("[dim]dry run: no AWS call was made and no manifest was written[/]")


def _promote(options: dict[str, Any]) -> None:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    from smlocal.promote import plan
    from smlocal.promote.deploy import execute, prepare
    from smlocal.promote.errors import StepFailedError

    request = _build_request(options)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        console=err,
        transient=True,
    ) as progress:
        reporter = _ConsoleReporter(progress)
        prepared = prepare(request, reporter, dry_run=options["dry_run"])
        if options["dry_run"]:
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
        _fail("pass exactly one of --manifest FILE or --deployment-id ID", 2)
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
            _fail("nothing deleted (pass --yes to skip this question)", 1)

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
            Path | None, typer.Option(help="loadtest.json with target_invocations_per_instance.")
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
            Path | None, typer.Option(help="Manifest file (default .smlocal/deployments/ID.json).")
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
        options = dict(locals())
        options["min"], options["max"] = options.pop("min_"), options.pop("max_")
        from smlocal.emulator.errors import SmlocalError

        try:
            _promote(options)
        except SmlocalError as error:
            _fail(str(error), error.exit_code)

    @app.command(rich_help_panel="Release")
    def cleanup(
        manifest: Annotated[Path | None, typer.Option(help="The deployment's manifest.")] = None,
        deployment_id: Annotated[
            str | None, typer.Option(help="Find the manifest under .smlocal/deployments/.")
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
        from smlocal.emulator.errors import SmlocalError

        try:
            _cleanup(
                manifest_path=manifest,
                deployment_id=deployment_id,
                keep_artifacts=keep_artifacts,
                yes=yes,
                endpoint_url=endpoint_url,
                poll_interval=poll_interval,
            )
        except SmlocalError as error:
            _fail(str(error), error.exit_code)
