"""``smlocal transform IMAGE``: a batch transform job on the local service, from flags.

Thin: parses the flags into a :class:`~smlocal.emulator.service.quick_transform.TransformAsk`,
finds (or starts, in this process) the service, and hands the job to
:func:`~smlocal.emulator.service.quick_transform.run_transform`; prints a progress line
(objects and records) as the job goes, on a terminal or not, and the outcome.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape

from smlocal.cli.output import ExitCode, err, fail, out, reported, talking_to

__all__ = ["register"]

_PROGRESS_EVERY_S = 2.0


class _Split(StrEnum):
    Line = "Line"
    none = "None"


class _Strategy(StrEnum):
    MultiRecord = "MultiRecord"
    SingleRecord = "SingleRecord"


def _default_name(image: str) -> str:
    base = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    cleaned = "".join(c if c.isalnum() else "-" for c in base).strip("-")
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{(cleaned or 'transform')[: 62 - len(stamp)].strip('-')}-{stamp}"


def _env(pairs: list[str]) -> dict[str, str]:
    from smlocal.emulator.errors import ConfigError

    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env {pair!r}: use KEY=VALUE")
        env[key] = value
    return env


class _Progress:
    """One line per change of status, then every couple of seconds while it runs."""

    def __init__(self) -> None:
        self.status = ""
        self.shown_at = 0.0

    def __call__(self, described: dict[str, Any]) -> None:
        status = described["TransformJobStatus"]
        now = time.monotonic()
        if status == self.status and now - self.shown_at < _PROGRESS_EVERY_S:
            return
        self.status, self.shown_at = status, now
        progress = described.get("SmlocalProgress") or {}
        if not progress.get("ObjectsTotal"):
            starting = " - starting the container(s)" if status == "InProgress" else ""
            err.print(f"{described['TransformJobName']}: {status}{starting}")
            return
        failed = progress.get("ObjectsFailed", 0)
        err.print(
            f"{described['TransformJobName']}: {status} - objects "
            f"{progress.get('ObjectsDone', 0)}/{progress.get('ObjectsTotal', 0)} done"
            + (f", {failed} failed" if failed else "")
            + f", {progress.get('RecordsDone', 0)} records"
        )


def register(app: typer.Typer) -> None:
    @app.command()
    def transform(
        image: Annotated[str, typer.Argument(help="The inference image (local name or ECR URI).")],
        input_location: Annotated[
            str,
            typer.Option(
                "--input",
                help="s3://bucket/prefix/ (every object under it) or a local file or directory.",
            ),
        ],
        output: Annotated[
            str,
            typer.Option(
                help="s3://bucket/prefix or a local directory: each input gets ITS_PATH.out."
            ),
        ],
        model: Annotated[
            str | None,
            typer.Option(help="model.tar.gz, a directory or s3://..., mounted read-only."),
        ] = None,
        content_type: Annotated[
            str | None, typer.Option(help="The Content-Type of each request, e.g. text/csv.")
        ] = None,
        accept: Annotated[str | None, typer.Option(help="The Accept of each request.")] = None,
        split_type: Annotated[
            _Split, typer.Option(help="Line: a record per line; None: a whole object each.")
        ] = _Split.Line,
        strategy: Annotated[
            _Strategy | None,
            typer.Option(
                help="MultiRecord packs lines up to --max-payload-mb per request; unset: the "
                "container's /execution-parameters, else SingleRecord."
            ),
        ] = None,
        max_payload_mb: Annotated[
            int | None, typer.Option(min=0, max=100, help="Request size limit (default 6).")
        ] = None,
        concurrency: Annotated[
            int | None,
            typer.Option(min=1, help="Requests in flight per instance (MaxConcurrentTransforms)."),
        ] = None,
        instance_type: Annotated[str, typer.Option(help="CPU and memory.")] = "ml.m5.large",
        instance_count: Annotated[int, typer.Option(min=1, max=20)] = 1,
        gzip_input: Annotated[
            bool, typer.Option("--gzip", help="The input objects are gzipped.")
        ] = False,
        manifest: Annotated[
            bool, typer.Option(help="--input is a manifest file (ManifestFile), not a prefix.")
        ] = False,
        assemble_with: Annotated[
            _Split, typer.Option(help="Line ends each answer with a newline.")
        ] = _Split.Line,
        input_filter: Annotated[
            str | None, typer.Option(help="JSONPath of what each record sends, e.g. '$[1:]'.")
        ] = None,
        join_input: Annotated[
            bool, typer.Option(help="Write each input record beside its answer (JoinSource).")
        ] = False,
        output_filter: Annotated[
            str | None, typer.Option(help="JSONPath of what is written, e.g. '$[0,-1]'.")
        ] = None,
        env: Annotated[
            list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE for the container.")
        ] = None,
        name: Annotated[
            str | None, typer.Option(help="The job's name (default: image-time).")
        ] = None,
        timeout: Annotated[
            int | None,
            typer.Option(min=1, max=3600, help="Seconds per request (default 600)."),
        ] = None,
        retries: Annotated[
            int | None, typer.Option(min=0, max=3, help="Retries per request (default 3).")
        ] = None,
        port: Annotated[
            int,
            typer.Option(
                min=0,
                max=65535,
                help="Port of the service this command starts when none runs (0: any free one).",
            ),
        ] = 8080,
    ) -> None:
        """Run IMAGE over every object of --input as a SageMaker batch transform job would.

        The job runs on the local service (the running one, or one started for this command),
        with SAGEMAKER_BATCH=true and the batch settings you give; its answers go to --output as
        RELATIVE_PATH.out, an object's only once all of it succeeded. Progress (objects and
        records) is printed as it goes. Ctrl-C stops the job (exit 130); a failed job prints its
        FailureReason (exit 1); bad flags or input exit 2.

        Example: `smlocal transform smlocal/sklearn-iris:latest --model model.tar.gz --input
        s3://bucket/rows/ --output s3://bucket/predictions/ --content-type text/csv --accept
        text/csv --strategy MultiRecord --concurrency 2`
        """
        from smlocal.emulator.service.quick_serve import ServiceSettings, service_for
        from smlocal.emulator.service.quick_transform import (
            TransformAsk,
            check_image,
            run_transform,
        )
        from smlocal.emulator.state import StateDir

        with reported():
            ask = TransformAsk(
                name=name or _default_name(image),
                image=image,
                model=model,
                input=input_location,
                output=output,
                content_type=content_type,
                accept=accept,
                split_type=split_type.value,
                compression="Gzip" if gzip_input else "None",
                manifest=manifest,
                strategy=strategy.value if strategy else None,
                max_payload_mb=max_payload_mb,
                concurrency=concurrency,
                instance_type=instance_type,
                instance_count=instance_count,
                assemble_with=assemble_with.value,
                input_filter=input_filter,
                output_filter=output_filter,
                join_input=join_input,
                env=_env(env or []),
                timeout_s=timeout,
                retries=retries,
            )
            ask.job_request()  # a missing local input is a usage error before anything starts
            check_image(image)
            with (
                service_for(StateDir(), ServiceSettings(port=port), detach=False) as service,
                talking_to(service.url),
            ):
                outcome = run_transform(service.url, ask, _Progress())
            if outcome.status == "Completed":
                out.print(escape(outcome.output))
                return
            if outcome.status == "Stopped":
                fail(f"transform job {ask.name} was stopped", ExitCode.INTERRUPTED)
            fail(f"transform job {ask.name} failed: {outcome.failure_reason}")
