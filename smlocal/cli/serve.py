"""``smlocal serve``: an image as SageMaker hosting runs it, as a convenience over the service.

Thin: parses the flags (or the project config) into an EndpointSpec, then hands it to
:mod:`smlocal.emulator.service.quick_serve` (find or start the service, deploy, stream logs,
delete on Ctrl-C) or, with ``--detach``, deploys and waits through the service's client.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from smlocal.cli.output import ExitCode, err, fail, out, reported, talking_to
from smlocal.emulator.errors import ConfigError

if TYPE_CHECKING:
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

    try:
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
    except ConfigError as error:
        raise ConfigError(_in_flag_words(str(error))) from None


# The spec's field paths, as the flags that set them (a CLI user typed flags, not fields).
_FLAGS = {
    "startup_timeout_s": "--startup-timeout",
    "invocation_timeout_s": "--invocation-timeout",
    "variants.0.instance_count": "--instance-count",
    "variants.0.env": "--env",
    "variants.0.model": "--model",
    "variants.0.image": "IMAGE",
    "name": "--name",
}
_NAME_RULE = "String should match pattern '^[a-zA-Z0-9](-*[a-zA-Z0-9])*$'"
_NAME_WORDS = "1-63 letters, digits and hyphens, starting and ending with a letter or digit"


def _in_flag_words(message: str) -> str:
    text = message.removeprefix("invalid endpoint spec: ")
    parts = []
    for part in text.split("; "):
        field, colon, rest = part.partition(": ")
        flag = _FLAGS.get(field)
        if not colon or flag is None:
            parts.append(part)
            continue
        rest = rest.replace(
            _NAME_RULE,
            "1-63 letters, digits and hyphens, starting and ending with a letter or digit",
        )
        parts.append(f"{flag}: {rest}")
    return "; ".join(parts)


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
    serverless_memory: Annotated[
        int | None,
        typer.Option(
            help="Serve it serverless (ServerlessConfig) with this MemorySizeInMB (1024-6144, "
            "1 GB steps): containers start on the first request and stop when idle.",
        ),
    ] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option(
            help="Serverless MaxConcurrency (1-200; default 5); needs --serverless-memory."
        ),
    ] = None,
    capture: Annotated[
        str | None,
        typer.Option(
            "--capture",
            metavar="DIR_OR_S3",
            help="Record requests and answers as SageMaker's data capture (DataCaptureConfig) "
            "to s3://bucket/prefix or a local directory: JSONL files under "
            "ENDPOINT/VARIANT/yyyy/mm/dd/hh/, text/csv as CSV, application/json as JSON, "
            "other types base64. Written within seconds; all of it when serve stops.",
        ),
    ] = None,
    sampling: Annotated[
        int | None,
        typer.Option(min=0, max=100, help="Percent of requests --capture records (default 100)."),
    ] = None,
    capture_mode: Annotated[
        str | None,
        typer.Option(
            metavar="MODE",
            help="What --capture records: Input, Output or InputAndOutput (default).",
        ),
    ] = None,
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
        if serverless_memory is not None or max_concurrency is not None:
            spec = _serverless(spec, serverless_memory, max_concurrency)
        if capture is not None or sampling is not None or capture_mode is not None:
            spec = _with_capture(spec, capture, sampling, capture_mode)
        from smlocal.emulator.service.client import check_models
        from smlocal.emulator.service.quick_serve import ServiceSettings, check_images

        check_images(spec)
        check_models(spec)  # before a service is started for it: bad input starts nothing
        _warn_placement(spec)
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


def _warn_placement(spec: EndpointSpec) -> None:
    from smlocal.emulator.docker_backend import DockerBackend
    from smlocal.emulator.placement import placement_warnings

    backend = DockerBackend()
    for warning in placement_warnings(spec, backend.image_info, host_cpus=backend.host_cpus()):
        err.print(f"[yellow]warning:[/] {escape(warning)}")


def _serve_attached(spec: EndpointSpec, settings: ServiceSettings, *, show_logs: bool) -> None:
    import signal

    from smlocal.cli.serve_console import ConsoleSink, service_notes
    from smlocal.emulator.service.quick_serve import serve_attached, service_for
    from smlocal.emulator.state import StateDir

    # SIGTERM ends a foreground serve as Ctrl-C does: what it made is deleted. SIGINT too,
    # even when the shell started us with it ignored (a non-interactive `smlocal serve &`).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # A closed terminal or a dropped SSH session too: nothing may outlive it.
    signal.signal(signal.SIGHUP, signal.default_int_handler)
    state = StateDir()
    with service_for(state, settings, detach=False) as at:
        service_notes(at.url, at.how, settings)
        with talking_to(at.url):
            outcome = serve_attached(at.url, spec, ConsoleSink(show_logs), state)
    if outcome.status == "Failed":
        fail(f"endpoint {spec.name} failed: {outcome.failure_reason}")
    if outcome.status == "ServiceGone":
        fail(
            f"the smlocal service at {at.url} stopped under this serve; whatever it left of "
            f"{spec.name} stays until the service runs again (`smlocal server`), which then "
            "removes this endpoint, as nobody serves it any more"
        )
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


def _serverless(spec: EndpointSpec, memory: int | None, concurrency: int | None) -> EndpointSpec:
    """``spec`` with every variant serverless (``--serverless-memory``/``--max-concurrency``)."""
    from smlocal.emulator.spec import build_spec

    if memory is None:
        raise ConfigError("--max-concurrency: only with --serverless-memory")
    serverless = {"memory_mb": memory, "max_concurrency": 5 if concurrency is None else concurrency}
    variants = [{**v.model_dump(), "serverless": serverless} for v in spec.variants]
    return build_spec(**{**spec.model_dump(), "variants": variants})


def _with_capture(
    spec: EndpointSpec, destination: str | None, sampling: int | None, mode: str | None
) -> EndpointSpec:
    """``spec`` with data capture (``--capture``/``--sampling``/``--capture-mode``)."""
    from smlocal.emulator.capture import CAPTURE_MODES, CaptureSpec, parse_destination

    if destination is None:
        flag = "--sampling" if sampling is not None else "--capture-mode"
        raise ConfigError(f"{flag}: only with --capture DIR_OR_S3")
    modes = {m.lower(): m for m in CAPTURE_MODES}
    chosen = modes.get((mode or "InputAndOutput").lower())
    if chosen is None:
        raise ConfigError(f"--capture-mode: {mode!r} is not one of {', '.join(CAPTURE_MODES)}")
    try:
        where = parse_destination(destination)
    except ValueError as error:
        raise ConfigError(f"--capture: {error}") from None
    if where.bucket is None:  # the service may run elsewhere in the file system: absolute
        folder = Path(where.prefix).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"--capture: {folder} is not a directory")
        destination = str(folder)
    capture = CaptureSpec(
        sampling_percentage=100 if sampling is None else sampling,
        destination=destination,
        capture_input=CAPTURE_MODES[chosen][0],
        capture_output=CAPTURE_MODES[chosen][1],
        # The SageMaker Python SDK's DataCaptureConfig defaults.
        csv_types=("text/csv",),
        json_types=("application/json",),
    )
    return spec.model_copy(update={"capture": capture})


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
    from smlocal.cli.serve_console import ConsoleSink, service_notes
    from smlocal.emulator.service.client import (
        deploy,
        sagemaker_client,
        undeploy,
        wait_until_settled,
    )
    from smlocal.emulator.service.quick_serve import service_for
    from smlocal.emulator.state import StateDir

    sink = ConsoleSink(show_logs=False)
    with service_for(StateDir(), settings, detach=True) as at, talking_to(at.url):
        service_notes(at.url, at.how, settings)
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


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command()(serve)
