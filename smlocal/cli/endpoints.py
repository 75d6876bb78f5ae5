"""The endpoint commands on the local service: ``invoke``, ``ps``, ``stop``, ``logs``.

Thin: each parses its options, calls one function of the service's client
(:mod:`smlocal.emulator.service.client`), and prints. Heavy imports happen inside the
commands so ``smlocal --help`` stays fast. ``serve`` is :mod:`smlocal.cli.serve`.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from smlocal.cli.output import ExitCode, err, fail, out, print_log_lines, reported, talking_to

if TYPE_CHECKING:
    pass

__all__ = ["register"]

# As emulator.spec.DEFAULT_INSTANCE_TYPE, spelled here so `--help` needs no pydantic import.
_DEFAULT_INSTANCE_TYPE = "ml.m5.large"


def _leftovers() -> str:
    """A sentence about containers a killed service of this home left running, or ""."""
    from smlocal.emulator.state import StateDir

    id_file = StateDir().root / "service" / "id"
    try:
        from smlocal.emulator.backend import LABEL_SESSION
        from smlocal.emulator.docker_backend import DockerBackend

        left = DockerBackend().find({LABEL_SESSION: id_file.read_text().strip()})
    except Exception:  # no id (never ran), or no Docker: nothing to say
        return ""
    if not left:
        return ""
    return (
        f"; {len(left)} container(s) its last run left are still there (it was killed): "
        "`smlocal server` adopts or removes them"
    )


def _service_url() -> str:
    """The running service's URL, or a clear error saying how to start one."""
    from smlocal.emulator.service.process import read_service_record
    from smlocal.emulator.state import StateDir

    record = read_service_record(StateDir())
    if record is None:
        err.print(f"[yellow]no smlocal service is running{escape(_leftovers())}[/]")
        fail(
            "no smlocal service is running, so no endpoint is either; start one with "
            "`smlocal serve IMAGE ...` or `smlocal server`"
        )
    return record.url


def invoke(
    name: Annotated[str, typer.Argument(help="Endpoint name (see `smlocal ps`).")],
    body: Annotated[
        str | None,
        typer.Option("--body", "-b", help="Request body, inline or @file (e.g. @payload.json)."),
    ] = None,
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
    async_: Annotated[
        bool,
        typer.Option(
            "--async",
            help="InvokeEndpointAsync on an async endpoint: send --input, wait for the answer "
            "object in S3 (progress while queued) and print it.",
        ),
    ] = False,
    input_location: Annotated[
        str | None,
        typer.Option("--input", help="With --async: the request's s3:// input location."),
    ] = None,
    wait: Annotated[
        float, typer.Option(help="With --async: seconds to wait for the result.")
    ] = 600.0,
) -> None:
    """Invoke an endpoint through the SageMaker Runtime API (boto3) and print the answer.

    With `--async --input s3://bucket/key`, the request is queued (InvokeEndpointAsync) and the
    command waits for its answer (or failure) object in S3, as boto3 would find it: S3 is
    wherever boto3's settings say (`AWS_ENDPOINT_URL_S3` for a moto server).
    """
    import botocore.exceptions

    from smlocal.emulator.service.client import runtime_client

    if endpoint_url is None:
        endpoint_url = _service_url()
    if async_ or input_location is not None:
        if not async_ or input_location is None or body is not None:
            fail("--async takes --input s3://... (and no --body)", ExitCode.USAGE)
        with reported(), talking_to(endpoint_url):
            _invoke_async(
                runtime_client(endpoint_url), name, input_location, content_type, accept, wait
            )
        return
    if body is None:
        fail("pass --body (or --async --input s3://...)", ExitCode.USAGE)
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
    _print_answer(response, output)


def _print_answer(response: dict[str, Any], output: Path | None) -> None:
    answer = response["Body"].read()
    if output is not None:
        output.write_bytes(answer)
        err.print(f"wrote {len(answer)} bytes to {output}")
        return
    if not sys.stdout.isatty():
        # Piped or redirected: the answer's bytes exactly as the container sent them.
        sys.stdout.buffer.write(answer)
        sys.stdout.flush()
    else:
        text = answer.decode(errors="replace")
        if response.get("ContentType", "").startswith("application/json"):
            with contextlib.suppress(ValueError):
                text = json.dumps(json.loads(text), indent=2)
        out.print(escape(text), soft_wrap=True)
    err.print(
        f"[dim]variant {response.get('InvokedProductionVariant')} · "
        f"{response.get('ContentType')}[/]"
    )


def _invoke_async(
    client: object,
    name: str,
    input_location: str,
    content_type: str,
    accept: str | None,
    wait: float,
) -> None:
    import botocore.exceptions

    from smlocal.emulator.service.client import wait_for_async_result

    params = {"EndpointName": name, "InputLocation": input_location, "ContentType": content_type}
    if accept:
        params["Accept"] = accept
    try:
        answer = client.invoke_endpoint_async(**params)  # type: ignore[attr-defined]
    except botocore.exceptions.ClientError as error:
        info = error.response.get("Error", {})
        fail(f"{info.get('Code')}: {info.get('Message')}")
    output = answer["OutputLocation"]
    err.print(f"[dim]queued as {answer['InferenceId']}; the answer goes to {output}[/]")
    last = [0.0]

    def progress(waited: float) -> None:
        if waited - last[0] >= 5:  # a plain line every 5 s: readable in a CI log too
            last[0] = waited
            err.print(f"[dim]still queued or running after {waited:.0f} s ...[/]")

    succeeded, body = wait_for_async_result(output, answer.get("FailureLocation"), wait, progress)
    text = body.decode(errors="replace")
    if not succeeded:
        fail(f"the request failed; {answer.get('FailureLocation')} says: {text}")
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), indent=2)
    out.print(escape(text), soft_wrap=True)


def ps(
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON document on stdout (for scripts): the service and its endpoints.",
        ),
    ] = False,
) -> None:
    """List the endpoints on the local service: status, variants (image x instances), age."""
    from dataclasses import asdict

    from rich.table import Table

    from smlocal.emulator.service.client import endpoint_rows, sagemaker_client
    from smlocal.emulator.service.process import read_service_record
    from smlocal.emulator.state import StateDir

    record = read_service_record(StateDir())
    if record is None:
        if as_json:
            typer.echo(json.dumps({"service": None, "endpoints": []}, indent=2))
        err.print(f"no endpoints are running (no smlocal service is running{_leftovers()})")
        return
    with reported(), talking_to(record.url):
        rows = endpoint_rows(sagemaker_client(record.url))
    if as_json:
        service = {"url": record.url, "pid": record.pid, "started_at": record.started_at}
        document = {"service": service, "endpoints": [asdict(row) for row in rows]}
        typer.echo(json.dumps(document, indent=2))
        return
    if not rows:
        err.print(f"no endpoints on the smlocal service at {record.url}")
        return
    table = Table(title=f"smlocal service at {record.url}", title_justify="left")
    for column in ("name", "status", "variants", "up"):
        # Names and images are what a user copies: fold them, never cut them short.
        table.add_column(column, overflow="fold")
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
    with reported(), talking_to(url):
        client = sagemaker_client(url)
        targets = [row.name for row in endpoint_rows(client)] if all_ else list(names or [])
        for name in targets:

            def waiting(status: str, name: str = name) -> None:
                err.print(f"[dim]{escape(name)} is {status}; waiting up to {timeout:g} s ...[/]")

            if undeploy(client, name, timeout, on_wait=waiting):
                err.print(f"[bold]{escape(name)}[/]: stopped")
            else:
                missing.append(name)
    if missing:
        fail(f"no endpoint named {', '.join(missing)} on the service at {url}")


def logs(
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    tail: Annotated[int, typer.Option(min=0, help="Lines from the end (0: none).")] = 100,
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

    with reported():
        path = StateDir().log_path(name)
    if not path.exists() and not follow:
        fail(f"no log for an endpoint named {name} (in {path.parent})")
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    if lines and tail:
        out.print(escape("\n".join(lines[-tail:])), soft_wrap=True)
    if not follow:
        return
    from smlocal.emulator.service.client import describe_or_none, sagemaker_client
    from smlocal.emulator.service.process import read_service_record

    record = read_service_record(StateDir())
    if record is None:
        err.print("[dim]no smlocal service is running: nothing more will be written[/]")
        return
    client = sagemaker_client(record.url)
    with reported(), talking_to(record.url):
        if describe_or_none(client, name) is None and not path.exists():
            fail(f"no endpoint named {name} on the service at {record.url}, and no log for it")
    path = StateDir().log_file(name)  # an endpoint that has not logged yet: follow from empty

    def still_there() -> bool:
        try:
            return describe_or_none(client, name) is not None
        except Exception:  # the service stopped: its endpoints did too
            return False

    with reported():
        LogTail(path, offset=path.stat().st_size).follow(
            lambda lines: print_log_lines(lines, dim_sources=False), still_there
        )
    err.print(f"[dim]{escape(name)}: no longer on the service[/]")


def register(app: typer.Typer) -> None:
    """Add the endpoint commands to ``app``."""
    for command in (invoke, ps, stop, logs):
        app.command()(command)
