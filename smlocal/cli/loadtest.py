"""The ``smlocal loadtest`` command (registered on the main typer app).

Thin: parses options, picks the target, and hands over to :mod:`loadtests` (imported inside
the command, so ``smlocal --help`` never loads Locust, matplotlib or boto3).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from smlocal.cli.loadtest_report import print_comparison, print_outcome
from smlocal.cli.output import ExitCode, err, fail, reported

if TYPE_CHECKING:
    from smlocal.loadtests.target import Endpoint

__all__ = ["register"]


@contextlib.contextmanager
def _endpoint(
    target: str,
    *,
    image: str | None,
    model: str | None,
    instance_type: str,
    instance_count: int,
    region: str | None,
    endpoint_url: str | None,
) -> Iterator[Endpoint]:
    from smlocal.loadtests.target import (
        AWS_PREFIX,
        at_url,
        resolve_aws,
        resolve_local,
        started_endpoint,
    )

    if target.startswith(AWS_PREFIX):
        yield resolve_aws(target.removeprefix(AWS_PREFIX), region, endpoint_url)
    elif image is not None:
        err.print(f"starting {escape(image)} as [bold]{escape(target)}[/] ...")
        with started_endpoint(target, image, model, instance_type, instance_count) as endpoint:
            yield endpoint
    elif endpoint_url is not None:
        yield at_url(target, endpoint_url)
    else:
        yield resolve_local(target)


def register(app: typer.Typer) -> None:
    """Add ``smlocal loadtest`` to ``app``."""

    @app.command()
    def loadtest(
        target: Annotated[
            str,
            typer.Argument(
                metavar="TARGET",
                help="Local endpoint name (see `smlocal ps`; with --image: the name to give "
                "it), or aws:ENDPOINT_NAME for a real SageMaker endpoint.",
            ),
        ],
        payload: Annotated[
            Path | None,
            typer.Option(
                exists=True,
                dir_okay=False,
                help="Request body file, or .jsonl with one request per line.",
            ),
        ] = None,
        spec: Annotated[
            Path | None,
            typer.Option(
                exists=True,
                dir_okay=False,
                help="Instead of --payload: send a contract spec's examples in turn (those "
                "expecting a 2xx answer).",
            ),
        ] = None,
        content_type: Annotated[str, typer.Option(help="Content-Type of bodies.")] = (
            "application/json"
        ),
        target_variant: Annotated[
            str | None, typer.Option(help="Send every request to this variant.")
        ] = None,
        users: Annotated[int, typer.Option(min=1, help="Concurrent users (fixed run).")] = 4,
        spawn_rate: Annotated[
            float | None, typer.Option(help="Users started per second (default: all at once).")
        ] = None,
        duration: Annotated[float, typer.Option(min=1, help="Seconds (fixed run).")] = 30,
        find_max_: Annotated[
            bool,
            typer.Option("--find-max", help="Step users up until p95 or errors break the bound."),
        ] = False,
        latency_slo: Annotated[
            float | None,
            typer.Option(
                help="p95 bound in ms (default: 2x the one-user p95, and at least 10 ms "
                "above it). A step over the bound runs once more before it ends the search."
            ),
        ] = None,
        step_seconds: Annotated[float, typer.Option(min=2, help="Seconds per step.")] = 10,
        max_steps: Annotated[int, typer.Option(min=1, max=20, help="Most steps.")] = 8,
        user_steps: Annotated[
            str | None, typer.Option(help="Users per step, e.g. 1,2,4,8 (default: doubling).")
        ] = None,
        workers: Annotated[
            int, typer.Option(min=0, help="Locust worker processes (0: one local process).")
        ] = 0,
        report: Annotated[Path, typer.Option(help="Report directory.")] = Path("loadtest-report"),
        image: Annotated[
            str | None, typer.Option(help="Start this image as the endpoint for the test.")
        ] = None,
        model: Annotated[str | None, typer.Option(help="Model for --image.")] = None,
        instance_type: Annotated[
            str, typer.Option(help="Instance type (limits for --image; pricing).")
        ] = "ml.m5.large",
        instance_count: Annotated[
            int, typer.Option(min=1, max=20, help="Instances behind the endpoint.")
        ] = 1,
        compare_instances: Annotated[
            int | None,
            typer.Option(
                min=2, max=20, help="With --image: the same fixed load on 1 and on N instances."
            ),
        ] = None,
        safety_factor: Annotated[float, typer.Option(min=0.01, max=1.0)] = 0.5,
        peak_rps: Annotated[
            float | None, typer.Option(help="Expected peak RPS (for max instances).")
        ] = None,
        base_rps: Annotated[
            float | None, typer.Option(help="Expected base RPS (for min instances).")
        ] = None,
        price_per_hour: Annotated[
            float | None, typer.Option(help="USD per instance-hour (overrides the table).")
        ] = None,
        region: Annotated[str | None, typer.Option(help="AWS region for aws:NAME.")] = None,
        endpoint_url: Annotated[
            str | None, typer.Option(help="Runtime API URL instead of the default.")
        ] = None,
        direct: Annotated[
            bool,
            typer.Option(
                "--direct",
                help="Send Locust straight to the container's own /invocations (round-robin "
                "over its instances), not through smlocal's runtime API: the container alone, "
                "as SageMaker's front end (on other machines) calls it. Headers as the "
                "container would get them, no runtime-API validation; a non-2xx answer counts "
                "as ModelError(NNN). Local endpoints only; not serverless, async or "
                "multi-model; several variants need --target-variant.",
            ),
        ] = False,
    ) -> None:
        """Load-test an endpoint with Locust; with --find-max, find MAX_RPS and scaling advice.

        The report says how much CPU smlocal's runtime API and the container used while
        requests flowed (CPU-s/s, share of a core or of the container's vCPU limit, and CPU
        µs per request, the figure that stays put on a busy machine), and names the likely
        limit: when the runtime API is near a full core, or competes for a saturated
        machine, the figures understate the container; --direct then measures it alone.

        Example: smlocal loadtest iris --image smlocal/sklearn-iris:latest
        --model containers/sklearn/build/model.tar.gz --payload payload.json --find-max

        The container alone (its MAX_RPS and µs per request, to compare):
        smlocal loadtest iris --direct --payload payload.json --find-max
        """
        from smlocal.loadtests.findmax import FindMaxSettings
        from smlocal.loadtests.live import LiveView
        from smlocal.loadtests.report import RunInfo
        from smlocal.loadtests.runner import LocustError, LocustTarget
        from smlocal.loadtests.session import LoadTestOptions, run_loadtest
        from smlocal.loadtests.target import (
            AWS_PREFIX,
            cpu_probe,
            direct_target,
            endpoint_fleet,
        )

        if direct and target.startswith(AWS_PREFIX):
            raise typer.BadParameter(
                "a real SageMaker endpoint's containers are reachable only through its "
                "runtime API; --direct needs a local endpoint",
                param_hint="'--direct'",
            )
        if compare_instances is not None:
            if image is None:
                raise typer.BadParameter("--compare-instances needs --image")
            # Scaling shows at saturation: the same fixed load (--users, --duration) on 1
            # and on N instances, not find-max (whose first step is latency-bound).
            find_max_ = False
        payloads_note = _check_payload_source(payload, spec)
        steps = _parse_user_steps(user_steps) if user_steps else ()
        settings = FindMaxSettings(
            step_s=step_seconds, max_steps=max_steps, latency_slo_ms=latency_slo, user_steps=steps
        )
        counts = [1, compare_instances] if compare_instances else [instance_count]
        outcomes = []
        if payloads_note:
            err.print(payloads_note)
        with reported():
            try:
                for count in counts:
                    report_dir = report / f"instances-{count}" if compare_instances else report
                    with _endpoint(
                        target,
                        image=image,
                        model=model,
                        instance_type=instance_type,
                        instance_count=count,
                        region=region,
                        endpoint_url=endpoint_url,
                    ) as endpoint:
                        fleet = endpoint_fleet(endpoint)
                        urls = direct_target(endpoint, fleet, target_variant) if direct else ()
                        locust_target = LocustTarget(
                            # Locust wants a host; direct requests carry absolute URLs.
                            host=urls[0].removesuffix("/invocations") if urls else endpoint.url,
                            payload=payload,
                            spec=spec,
                            endpoint=endpoint.name,
                            content_type=content_type,
                            target_variant=target_variant,
                            sigv4_region=endpoint.region if endpoint.kind == "aws" else None,
                            workers=workers,
                            direct_urls=urls,
                        )
                        info = RunInfo(
                            endpoint_name=endpoint.name,
                            target_kind=endpoint.kind,
                            url=endpoint.url,
                            mode="find-max" if find_max_ else "fixed",
                            instance_type=instance_type,
                            instance_count=count,
                            workers=workers,
                            target_variant=target_variant,
                            direct_urls=urls,
                        )
                        options = LoadTestOptions(
                            report_dir=report_dir,
                            users=users,
                            spawn_rate=spawn_rate,
                            duration_s=duration,
                            find_max=settings if find_max_ else None,
                            safety_factor=safety_factor,
                            peak_rps=peak_rps,
                            base_rps=base_rps,
                            price_per_hour=price_per_hour,
                        )
                        with LiveView(err) as view:

                            def progress(
                                label: str, snapshot: dict[str, object], count: int = count
                            ) -> None:
                                view.label = f"{endpoint.name} ({count} instance(s)) — {label}"
                                view.update(snapshot)

                            outcome = run_loadtest(
                                locust_target,
                                info,
                                options,
                                progress,
                                cpu=cpu_probe(endpoint, fleet),
                            )
                    outcomes.append(outcome)
                    print_outcome(outcome, info)
            except LocustError as error:
                fail(str(error), ExitCode.FAILED)
        if compare_instances:
            print_comparison(outcomes, compare_instances, report)


def _check_payload_source(payload: Path | None, spec: Path | None) -> str:
    """Exactly one of --payload and --spec; a spec is read now, so a bad one fails early."""
    if (payload is None) == (spec is None):
        raise typer.BadParameter(
            "give exactly one of --payload FILE and --spec CONTRACT_SPEC",
            param_hint="'--payload' / '--spec'",
        )
    if spec is None:
        return ""
    from smlocal.loadtests.payloads import load_spec_payloads

    try:
        payloads = load_spec_payloads(spec)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="'--spec'") from None
    kinds = ", ".join(sorted({p.content_type for p in payloads}))
    return f"sending {len(payloads)} example(s) of {escape(str(spec))} in turn ({kinds})"


def _parse_user_steps(text: str) -> tuple[int, ...]:
    """``1,2,4,8`` -> (1, 2, 4, 8); a clear error for anything else."""
    steps = []
    for raw in text.split(","):
        item = raw.strip()
        if not (item.isascii() and item.isdigit()) or int(item) < 1:
            raise typer.BadParameter(
                f"expected users per step as positive whole numbers separated by commas, "
                f"e.g. 1,2,4,8; got {item!r} in {text!r}",
                param_hint="'--user-steps'",
            )
        steps.append(int(item))
    return tuple(steps)
