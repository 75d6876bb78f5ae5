"""The endpoint commands: ``serve``, ``invoke``, ``ps``, ``stop``, ``logs``.

Thin: each parses its options, calls one function of the emulator, and prints. Heavy imports
happen inside the commands so ``smlocal --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from smlocal.cli.output import ExitCode, err, fail, out, reported
from smlocal.emulator.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from smlocal.emulator.service.quick_serve import ServiceSettings
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

    def container_log(self, line: str) -> None:
        if self.show_logs:
            source, bar, text = line.partition(" | ")
            shown = f"[dim]{escape(source)} |[/] {escape(text)}" if bar else escape(line)
            out.print(shown, soft_wrap=True)

    def status(self, endpoint: str, status: str, detail: str) -> None:
        colour = {"InService": "green", "Failed": "red"}.get(status, "yellow")
        err.print(f"[bold]{escape(endpoint)}[/]: [{colour}]{status}[/] [dim]{escape(detail)}[/]")


@contextlib.contextmanager
def _talking_to(url: str) -> Iterator[None]:
    """A service that stops answering mid-command is an error, not a traceback."""
    import botocore.exceptions

    try:
        yield
    except (
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectionClosedError,
        botocore.exceptions.ReadTimeoutError,
    ):
        fail(f"the smlocal service at {url} does not answer (`smlocal server status`)")


def _service_url() -> str:
    """The running service's URL, or a clear error saying how to start one."""
    from smlocal.emulator.service.process import read_service_record
    from smlocal.emulator.state import StateDir

    record = read_service_record(StateDir())
    if record is None:
        fail(
            "no smlocal service is running, so no endpoint is either; start one with "
            "`smlocal serve IMAGE ...` or `smlocal server`"
        )
    return record.url


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
        int,
        typer.Option(
            min=0,
            max=65535,
            help="Port of the service serve starts when none runs (0: any free).",
        ),
    ] = 8080,
    host: Annotated[
        str,
        typer.Option(
            help="Address that service listens on. Only change it if you mean to share it."
        ),
    ] = "127.0.0.1",
    startup_timeout: Annotated[
        float, typer.Option(help="Seconds for the first good /ping (SageMaker: 60-3600).")
    ] = 480,
    invocation_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a container has to answer an invocation (SageMaker: 60); a setting "
            "of the service serve starts."
        ),
    ] = 60,
    ping_interval: Annotated[
        float,
        typer.Option(
            help="Seconds between health checks once InService; a setting of the service "
            "serve starts."
        ),
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
        typer.Option(
            "--detach",
            "-d",
            help="Return once InService; stop with `smlocal stop NAME`. A service serve "
            "starts for it keeps running (`smlocal server stop`).",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Do not echo container logs.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail.")] = False,
) -> None:
    """Serve IMAGE exactly as SageMaker hosting would, behind the real SageMaker APIs.

    A convenience over the local service (`smlocal server`): serve makes the model, endpoint
    config and endpoint on the running service, or on one it starts for the purpose, streams
    the endpoint's container log, and on Ctrl-C deletes what it made (with `--detach` it
    returns once InService; `smlocal stop NAME` deletes it).

    The model is staged at /opt/ml/model (read-only), the container runs as `IMAGE serve` with
    the instance type's CPU and memory, and the endpoint goes InService once /ping answers 200
    within 2 s. Call it with boto3 or the AWS CLI (`--endpoint-url http://127.0.0.1:8080`), curl
    (`/endpoints/NAME/invocations`) or `smlocal invoke NAME`.

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
        from smlocal.emulator.service.quick_serve import ServiceSettings, check_images

        check_images(spec)
        settings = ServiceSettings(
            host=host,
            port=port,
            ping_interval_s=ping_interval,
            invocation_timeout_s=invocation_timeout,
        )
        if detach:
            _serve_detached(spec, settings)
        else:
            _serve_attached(spec, settings, show_logs=not quiet)


def _service_notes(url: str, how: str, settings: ServiceSettings) -> None:
    from smlocal.emulator.service.quick_serve import ServiceSettings

    if how == "running":
        default = ServiceSettings()
        ignored = [
            flag
            for flag, given, usual in (
                ("--host", settings.host, default.host),
                ("--ping-interval", settings.ping_interval_s, default.ping_interval_s),
                ("--invocation-timeout", settings.invocation_timeout_s, 60.0),
            )
            if given != usual
        ]
        if settings.port not in (0, default.port) and not url.endswith(f":{settings.port}"):
            ignored.insert(0, "--port")
        err.print(f"[dim]on the running smlocal service at {url}[/]")
        if ignored:
            err.print(
                f"[yellow]{', '.join(ignored)}: ignored, the running service keeps its own "
                "settings (`smlocal server stop`, then serve again, to change them)[/]"
            )
    elif how == "detached":
        err.print(
            f"[dim]started the smlocal service at {url} in the background "
            "(`smlocal server stop` stops it)[/]"
        )


def _serve_attached(spec: EndpointSpec, settings: ServiceSettings, *, show_logs: bool) -> None:
    import signal

    from smlocal.emulator.service.quick_serve import serve_attached, service_for
    from smlocal.emulator.state import StateDir

    # SIGTERM ends a foreground serve as Ctrl-C does: what it made is deleted. SIGINT too,
    # even when the shell started us with it ignored (a non-interactive `smlocal serve &`).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    state = StateDir()
    with service_for(state, settings, detach=False) as at:
        _service_notes(at.url, at.how, settings)
        with _talking_to(at.url):
            outcome = serve_attached(at.url, spec, _ConsoleSink(show_logs), state)
    if outcome.status == "Failed":
        fail(f"endpoint {spec.name} failed: {outcome.failure_reason}")
    if outcome.status == "Interrupted":
        err.print(f"[yellow]{escape(spec.name)}: stopped before InService[/]")
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    if outcome.status == "Deleted":
        err.print(f"[bold]{escape(spec.name)}[/]: deleted on the service; serve ends")
    else:
        err.print(f"[bold]{escape(spec.name)}[/]: deleted")


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


def _serve_detached(spec: EndpointSpec, settings: ServiceSettings) -> None:
    from smlocal.emulator.service.client import (
        deploy,
        sagemaker_client,
        undeploy,
        wait_until_settled,
    )
    from smlocal.emulator.service.quick_serve import service_for
    from smlocal.emulator.state import StateDir

    sink = _ConsoleSink(show_logs=False)
    with service_for(StateDir(), settings, detach=True) as at, _talking_to(at.url):
        _service_notes(at.url, at.how, settings)
        client = sagemaker_client(at.url)
        deploy(client, spec)
        try:
            answer = wait_until_settled(
                client, spec.name, lambda st, _r: sink.status(spec.name, st, "")
            )
        except KeyboardInterrupt:
            undeploy(client, spec.name)
            raise
        if answer["EndpointStatus"] == "Failed":
            undeploy(client, spec.name)
            fail(f"endpoint {spec.name} failed: {answer.get('FailureReason', '')}")
    out.print(at.url)
    err.print(
        f"[bold]{escape(spec.name)}[/]: [green]InService[/] at {at.url} — "
        f"`smlocal invoke {spec.name} ...`, `smlocal logs {spec.name} --follow`, "
        f"`smlocal stop {spec.name}`"
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
        typer.Option(help="Runtime API URL (default: the running smlocal service's)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the answer body to this file.")
    ] = None,
) -> None:
    """Invoke an endpoint through the SageMaker Runtime API (boto3) and print the answer."""
    import botocore.exceptions

    from smlocal.emulator.service.client import runtime_client

    if endpoint_url is None:
        endpoint_url = _service_url()
    if body.startswith("@"):
        try:
            payload = Path(body[1:]).read_bytes()
        except OSError as error:
            fail(f"cannot read body file {body[1:]}: {error.strerror}", ExitCode.USAGE)
    else:
        payload = body.encode()
    client = runtime_client(endpoint_url)
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
        response = client.invoke_endpoint(**params)
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
    """List the endpoints on the local service: status, variants (image x instances), age."""
    from rich.table import Table

    from smlocal.emulator.service.client import endpoint_rows, sagemaker_client
    from smlocal.emulator.service.process import read_service_record
    from smlocal.emulator.state import StateDir

    record = read_service_record(StateDir())
    if record is None:
        err.print("no endpoints are running (no smlocal service is running)")
        return
    with reported(), _talking_to(record.url):
        rows = endpoint_rows(sagemaker_client(record.url))
    if not rows:
        err.print(f"no endpoints on the smlocal service at {record.url}")
        return
    table = Table(title=f"smlocal service at {record.url}", title_justify="left")
    for column in ("name", "status", "variants", "up"):
        table.add_column(column)
    for row in rows:
        status = row.status if not row.reason else f"{row.status} ({row.reason.splitlines()[0]})"
        table.add_row(row.name, status, row.variants, f"{time.time() - row.created:.0f}s")
    out.print(table)


def stop(
    names: Annotated[list[str] | None, typer.Argument(help="Endpoint names.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Delete every endpoint.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each.")] = 60.0,
) -> None:
    """Delete endpoints on the local service (containers get SIGTERM, SIGKILL after 30 s),
    with the model and endpoint config `smlocal serve` made for them; the service keeps
    running (`smlocal server stop`)."""
    from smlocal.emulator.service.client import endpoint_rows, sagemaker_client, undeploy

    if not names and not all_:
        fail("name an endpoint, or pass --all", ExitCode.USAGE)
    url = _service_url()
    missing = []
    with reported(), _talking_to(url):
        client = sagemaker_client(url)
        targets = [row.name for row in endpoint_rows(client)] if all_ else list(names or [])
        for name in targets:
            if undeploy(client, name, timeout):
                err.print(f"[bold]{escape(name)}[/]: stopped")
            else:
                missing.append(name)
    if missing:
        fail(f"no endpoint named {', '.join(missing)} on the service at {url}")


def logs(
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    tail: Annotated[int, typer.Option(help="Lines from the end.")] = 100,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Keep printing new lines until the endpoint is deleted."
        ),
    ] = False,
) -> None:
    """Print an endpoint's container log (kept after it is deleted)."""
    from smlocal.emulator.service.quick_serve import LogTail
    from smlocal.emulator.state import StateDir

    path = StateDir().log_file(name)
    lines = path.read_text(errors="replace").splitlines()
    if not lines and not follow:
        fail(f"no log lines for endpoint {name} (in {path})")
    out.print(escape("\n".join(lines[-tail:])), soft_wrap=True) if lines else None
    if not follow:
        return
    from smlocal.emulator.service.client import describe_or_none, sagemaker_client
    from smlocal.emulator.service.process import read_service_record

    record = read_service_record(StateDir())
    if record is None:
        err.print("[dim]no smlocal service is running: nothing more will be written[/]")
        return
    client = sagemaker_client(record.url)

    def still_there() -> bool:
        try:
            return describe_or_none(client, name) is not None
        except Exception:  # the service stopped: its endpoints did too
            return False

    with reported():
        LogTail(path, offset=path.stat().st_size).follow(
            lambda line: out.print(escape(line), soft_wrap=True), still_there
        )
    err.print(f"[dim]{escape(name)}: no longer on the service[/]")


def register(app: typer.Typer) -> None:
    """Add the endpoint commands to ``app``."""
    for command in (serve, invoke, ps, stop, logs):
        app.command()(command)
