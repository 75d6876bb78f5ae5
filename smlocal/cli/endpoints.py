"""The endpoint commands: ``serve``, ``invoke``, ``ps``, ``stop``, ``logs``.

Thin: each parses its options, calls one function of the emulator, and prints. Heavy imports
happen inside the commands so ``smlocal --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from smlocal.cli.output import ExitCode, err, fail, out, reported
from smlocal.emulator.errors import ConfigError

if TYPE_CHECKING:
    from smlocal.emulator.server import ServeResult
    from smlocal.emulator.spec import EndpointSpec

__all__ = ["register"]

# As emulator.spec.DEFAULT_INSTANCE_TYPE, spelled here so `--help` needs no pydantic import.
_DEFAULT_INSTANCE_TYPE = "ml.m5.large"


def _default_name(image: str) -> str:
    base = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    cleaned = "".join(c if c.isalnum() else "-" for c in base).strip("-")
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return (cleaned or "endpoint")[:63].strip("-")


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, markup=False)],
    )


class _ConsoleSink:
    """Prints container logs and status changes for a foreground ``serve``."""

    def __init__(self, show_logs: bool) -> None:
        self.show_logs = show_logs

    def container_log(self, source: str, line: str) -> None:
        if self.show_logs:
            out.print(f"[dim]{escape(source)} |[/] {escape(line)}", soft_wrap=True)

    def status(self, endpoint: str, status: str, detail: str) -> None:
        colour = {"InService": "green", "Failed": "red"}.get(status, "yellow")
        err.print(f"[bold]{escape(endpoint)}[/]: [{colour}]{status}[/] [dim]{escape(detail)}[/]")


def _print_metrics(result: ServeResult) -> None:
    from rich.table import Table

    if result.metrics is None or not result.metrics.variants:
        return
    table = Table(title=f"metrics for {result.metrics.endpoint}", title_justify="left")
    for column in ("variant", "invocations", "4xx", "5xx", "model p50 µs", "overhead p50 µs"):
        table.add_column(column, justify="right" if column != "variant" else "left")
    for name, values in result.metrics.variants.items():
        table.add_row(
            name,
            str(values.invocations),
            str(values.invocation_4xx_errors),
            str(values.invocation_5xx_errors),
            f"{values.model_latency.quantile(0.5):.0f}",
            f"{values.overhead_latency.quantile(0.5):.0f}",
        )
    err.print(table)


def _build_spec(
    *,
    image: str,
    model: str | None,
    name: str | None,
    env: dict[str, str],
    instance_type: str,
    instance_count: int,
    startup_timeout: float,
    invocation_timeout: float,
) -> EndpointSpec:
    from smlocal.emulator.spec import build_spec

    return build_spec(
        name=name or _default_name(image),
        variants=[
            {
                "image": image,
                "model": model,
                "env": env,
                "instance_type": instance_type,
                "instance_count": instance_count,
            }
        ],
        startup_timeout_s=startup_timeout,
        invocation_timeout_s=invocation_timeout,
    )


def serve(
    image: Annotated[
        str | None,
        typer.Argument(
            help="The inference image, e.g. smlocal/sklearn-iris:latest. Omit it to serve an "
            "endpoint from the project's smlocal.toml (several variants, weights, profiles)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="model.tar.gz, a directory, or s3://bucket/key.tar.gz (or s3://bucket/prefix/); "
            "mounted READ-ONLY at /opt/ml/model.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Endpoint name (default: from the image name).")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE for the container (repeat).")
    ] = None,
    env_file: Annotated[
        Path | None, typer.Option(help="File of KEY=VALUE lines for the container.")
    ] = None,
    instance_type: Annotated[
        str, typer.Option(help="SageMaker instance type; sets the container's CPU and memory.")
    ] = _DEFAULT_INSTANCE_TYPE,
    instance_count: Annotated[
        int, typer.Option(min=1, max=20, help="Containers behind round-robin.")
    ] = 1,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Runtime API port (0: any free).")
    ] = 8080,
    host: Annotated[
        str, typer.Option(help="Address to listen on. Only change it if you mean to share it.")
    ] = "127.0.0.1",
    startup_timeout: Annotated[
        float, typer.Option(help="Seconds for the first good /ping (SageMaker: 60-3600).")
    ] = 480,
    invocation_timeout: Annotated[
        float, typer.Option(help="Seconds a container has to answer an invocation.")
    ] = 60,
    ping_interval: Annotated[
        float, typer.Option(help="Seconds between health checks once InService.")
    ] = 5.0,
    config: Annotated[
        Path | None,
        typer.Option(help="Config file (default: nearest smlocal.toml or [tool.smlocal])."),
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Which endpoint of the config file to serve.")
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="Config profile, e.g. dev, test or prod.")
    ] = None,
    detach: Annotated[
        bool,
        typer.Option("--detach", "-d", help="Return once InService; stop with `smlocal stop`."),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Do not echo container logs.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail.")] = False,
) -> None:
    """Serve IMAGE exactly as SageMaker hosting would, behind the real SageMaker Runtime API.

    The model is staged at /opt/ml/model (read-only), the container runs as `IMAGE serve` with
    the instance type's CPU and memory, and the endpoint goes InService once /ping answers 200
    within 2 s. Call it with boto3 or the AWS CLI (`--endpoint-url http://127.0.0.1:8080`), curl
    (`/endpoints/NAME/invocations`, or plainly `/invocations`) or `smlocal invoke NAME`.

    Example: smlocal serve smlocal/sklearn-iris:latest --model containers/sklearn/build/model.tar.gz

    Without IMAGE, the endpoint comes from smlocal.toml (or [tool.smlocal] in pyproject.toml):
    several production variants with weights (A/B tests; TargetVariant pins a request) and
    dev/test/prod profiles. See emulator/config.py for the format.
    """
    _setup_logging(verbose)
    with reported():
        spec = _serve_spec(
            image=image,
            model=model,
            name=name,
            env=env or [],
            env_file=env_file,
            instance_type=instance_type,
            instance_count=instance_count,
            startup_timeout=startup_timeout,
            invocation_timeout=invocation_timeout,
            config=config,
            endpoint=endpoint,
            profile=profile,
        )
        if detach:
            _serve_detached(spec, host, port, ping_interval)
            return
        from smlocal.emulator.server import serve_blocking

        result = serve_blocking(
            spec, _ConsoleSink(not quiet), host=host, port=port, ping_interval_s=ping_interval
        )
    if result.status == "Failed":
        fail(f"endpoint {spec.name} failed: {result.failure_reason}", logs=result.failure_logs)
    _print_metrics(result)
    if not result.reached_in_service:
        err.print(f"[yellow]{escape(spec.name)}: stopped before InService[/]")
        raise typer.Exit(int(ExitCode.INTERRUPTED))


# The flags that describe one variant; the project config describes its own variants.
_SINGLE_VARIANT_DEFAULTS: dict[str, object] = {
    "--model": None,
    "--name": None,
    "--env": [],
    "--env-file": None,
    "--instance-type": _DEFAULT_INSTANCE_TYPE,
    "--instance-count": 1,
}


def _serve_spec(
    *,
    image: str | None,
    model: str | None,
    name: str | None,
    env: list[str],
    env_file: Path | None,
    instance_type: str,
    instance_count: int,
    startup_timeout: float,
    invocation_timeout: float,
    config: Path | None,
    endpoint: str | None,
    profile: str | None,
) -> EndpointSpec:
    """The spec from the flags, or from the project config when IMAGE is omitted."""
    from smlocal.emulator.envfile import parse_env

    if image is not None:
        return _build_spec(
            image=image,
            model=model,
            name=name,
            env=parse_env(env, env_file),
            instance_type=instance_type,
            instance_count=instance_count,
            startup_timeout=startup_timeout,
            invocation_timeout=invocation_timeout,
        )
    given = {
        "--model": model,
        "--name": name,
        "--env": env,
        "--env-file": env_file,
        "--instance-type": instance_type,
        "--instance-count": instance_count,
    }
    ignored = [flag for flag, value in given.items() if value != _SINGLE_VARIANT_DEFAULTS[flag]]
    if ignored:
        raise ConfigError(
            f"{', '.join(ignored)}: not without IMAGE; the project config sets each variant "
            "(name IMAGE to serve one image with these flags)"
        )
    from smlocal.emulator.config import load_config

    spec = load_config(config, profile).endpoint(endpoint)
    timeouts = {"startup_timeout_s": startup_timeout, "invocation_timeout_s": invocation_timeout}
    if timeouts != {"startup_timeout_s": 480.0, "invocation_timeout_s": 60.0}:
        from smlocal.emulator.spec import build_spec

        spec = build_spec(**{**spec.model_dump(), **timeouts})
    return spec


def _serve_detached(spec: EndpointSpec, host: str, port: int, ping_interval: float) -> None:
    from smlocal.emulator.detach import start_detached

    err.print(f"[bold]{escape(spec.name)}[/]: starting in the background ...")
    record = start_detached(spec, host=host, port=port, ping_interval_s=ping_interval)
    out.print(record.url)
    err.print(
        f"[bold]{escape(spec.name)}[/]: [green]InService[/] at {record.url} (pid {record.pid}) "
        f"— `smlocal invoke {spec.name} ...`, `smlocal stop {spec.name}`; log: {record.log_file}"
    )


def invoke(
    name: Annotated[str, typer.Argument(help="Endpoint name (see `smlocal ps`).")],
    body: Annotated[
        str,
        typer.Option("--body", "-b", help="Request body, inline or @file (e.g. @payload.json)."),
    ],
    content_type: Annotated[
        str, typer.Option(help="Content-Type of the body.")
    ] = "application/json",
    accept: Annotated[str | None, typer.Option(help="Accept header.")] = None,
    custom_attributes: Annotated[
        str | None, typer.Option(help="X-Amzn-SageMaker-Custom-Attributes, passed verbatim.")
    ] = None,
    target_variant: Annotated[str | None, typer.Option(help="Send to this variant only.")] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(help="Runtime API URL (default: the URL of the running endpoint NAME)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the answer body to this file.")
    ] = None,
) -> None:
    """Invoke an endpoint through the SageMaker Runtime API (boto3) and print the answer."""
    import boto3
    import botocore.exceptions
    from botocore import UNSIGNED
    from botocore.config import Config

    from smlocal.emulator.state import StateDir

    if endpoint_url is None:
        record = StateDir().read(name)
        if record is None:
            fail(
                f"no running endpoint named {name}; start one with `smlocal serve` "
                "or pass --endpoint-url"
            )
        endpoint_url = record.url
    if body.startswith("@"):
        try:
            payload = Path(body[1:]).read_bytes()
        except OSError as error:
            fail(f"cannot read body file {body[1:]}: {error.strerror}", ExitCode.USAGE)
    else:
        payload = body.encode()
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=endpoint_url,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )
    params: dict[str, str | bytes] = {
        "EndpointName": name,
        "Body": payload,
        "ContentType": content_type,
    }
    if accept:
        params["Accept"] = accept
    if custom_attributes:
        params["CustomAttributes"] = custom_attributes
    if target_variant:
        params["TargetVariant"] = target_variant
    try:
        response = client.invoke_endpoint(**params)  # type: ignore[arg-type]
    except botocore.exceptions.ClientError as error:
        info = error.response.get("Error", {})
        err.print(
            f"[bold red]{escape(str(info.get('Code')))}[/]: {escape(str(info.get('Message')))}"
        )
        original = error.response.get("OriginalStatusCode")
        if original is not None:
            err.print(f"container status: {original}")
        raise typer.Exit(ExitCode.FAILED) from None
    except botocore.exceptions.EndpointConnectionError:
        fail(f"nothing answers at {endpoint_url}; is the endpoint running? (`smlocal ps`)")
    answer = response["Body"].read()
    if output is not None:
        output.write_bytes(answer)
        err.print(f"wrote {len(answer)} bytes to {output}")
        return
    text = answer.decode(errors="replace")
    if response.get("ContentType", "").startswith("application/json"):
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), indent=2)
    out.print(escape(text), soft_wrap=True)
    err.print(
        f"[dim]variant {response.get('InvokedProductionVariant')} · "
        f"{response.get('ContentType')}[/]"
    )


def ps() -> None:
    """List running endpoints."""
    from rich.table import Table

    from smlocal.emulator.state import StateDir

    records = StateDir().all()
    if not records:
        err.print("no endpoints are running")
        return
    table = Table()
    for column in ("name", "status", "url", "image", "pid", "up"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.name, r.status, r.url, r.image, str(r.pid), f"{time.time() - r.started_at:.0f}s"
        )
    out.print(table)


def stop(
    names: Annotated[list[str] | None, typer.Argument(help="Endpoint names.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every running endpoint.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each to stop.")] = 45.0,
) -> None:
    """Stop detached endpoints (containers get SIGTERM, then SIGKILL after 30 s)."""
    from smlocal.emulator.state import StateDir, stop_serving_process

    state = StateDir()
    records = state.all() if all_ else [state.read(n) for n in names or []]
    if not names and not all_:
        fail("name an endpoint, or pass --all", ExitCode.USAGE)
    missing = [n for n, r in zip(names or [], records, strict=False) if r is None]
    for record in records:
        if record is None:
            continue
        if not stop_serving_process(record, timeout):
            fail(f"endpoint {record.name} (pid {record.pid}) did not stop within {timeout:g} s")
        err.print(f"[bold]{escape(record.name)}[/]: stopped")
    if missing:
        fail(f"no running endpoint named {', '.join(missing)}")


def logs(
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    tail: Annotated[int, typer.Option(help="Lines from the end.")] = 100,
) -> None:
    """Print an endpoint's container log (kept after it stops)."""
    from smlocal.emulator.state import StateDir

    path = StateDir().log_file(name)
    if not path.exists():
        fail(f"no log for endpoint {name} at {path}")
    lines = path.read_text(errors="replace").splitlines()
    out.print(escape("\n".join(lines[-tail:])), soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the endpoint commands to ``app``."""
    for command in (serve, invoke, ps, stop, logs):
        app.command()(command)
