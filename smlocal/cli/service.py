"""``smlocal server``: run, stop and inspect the local SageMaker service.

Thin: the service itself is :mod:`smlocal.emulator.service.process`; this module starts it
(in this process, or detached), and reads or signals its record.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from smlocal.cli.output import ExitCode, err, fail, out, reported

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``server`` command group to ``app``."""
    group = typer.Typer(
        help=(
            "The local SageMaker service: control plane (CreateModel, CreateEndpointConfig, "
            "CreateEndpoint, UpdateEndpoint, ...) and runtime API on one port, state kept "
            "under SMLOCAL_HOME. Point boto3, the AWS CLI or the SageMaker SDK at it with "
            "`--endpoint-url http://127.0.0.1:8080` (or AWS_ENDPOINT_URL_SAGEMAKER and "
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME)."
        ),
        invoke_without_command=True,
        no_args_is_help=False,
        rich_markup_mode="markdown",
    )

    @group.callback()
    def server(
        ctx: typer.Context,
        port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free).")] = 8080,
        host: Annotated[
            str, typer.Option(help="Address to listen on. Only change it if you mean to share it.")
        ] = "127.0.0.1",
        detach: Annotated[
            bool, typer.Option("--detach", "-d", help="Run in the background; return when up.")
        ] = False,
        registry_mirror: Annotated[
            str | None,
            typer.Option(
                help="HOST:PORT of a registry holding your ECR images' copies (e.g. the one "
                "`smlocal promote --registry-url` pushed to): an ECR image URI not in the local "
                "engine is pulled from there.",
                envvar="SMLOCAL_REGISTRY_MIRROR",
            ),
        ] = None,
        ping_interval: Annotated[
            float, typer.Option(help="Seconds between health checks once InService.")
        ] = 5.0,
        invocation_timeout: Annotated[
            float,
            typer.Option(
                min=1,
                max=3600,
                help="Seconds a container has to answer an invocation (SageMaker: 60).",
            ),
        ] = 60.0,
        serverless_idle_s: Annotated[
            float,
            typer.Option(
                "--serverless-idle-s",
                min=0.1,
                help="Seconds without a request before a serverless endpoint scales to zero "
                "(AWS does not say; default 300).",
            ),
        ] = 300.0,
    ) -> None:
        """Run the service in the foreground (Ctrl-C stops every endpoint, keeps the state)."""
        if ctx.invoked_subcommand is not None:
            return
        with reported():
            import os

            from smlocal.emulator.serverless_config import IDLE_ENV
            from smlocal.emulator.state import StateDir

            os.environ[IDLE_ENV] = str(serverless_idle_s)  # read by the service (and its child)

            state = StateDir()
            from smlocal.emulator.service.process import (
                read_service_record,
                start_detached_service,
            )

            running = read_service_record(state)
            if running is not None:
                fail(
                    f"the service for {state.root} already runs at {running.url} "
                    f"(pid {running.pid}); stop it with `smlocal server stop`",
                    ExitCode.USAGE,
                )
            if detach:
                record = start_detached_service(
                    state,
                    host,
                    port,
                    registry_mirror,
                    ping_interval_s=ping_interval,
                    invocation_timeout_s=invocation_timeout,
                )
                out.print(record.url)
                err.print(
                    f"smlocal service at {record.url} (pid {record.pid}); "
                    f"log: {state.root / 'service' / 'server.log'}"
                )
                return
            from smlocal.emulator.service.process import main

            main(
                host,
                port,
                registry_mirror,
                ping_interval_s=ping_interval,
                invocation_timeout_s=invocation_timeout,
            )

    @group.command()
    def status() -> None:
        """Say whether the service runs, and where."""
        from smlocal.emulator.service.process import read_service_record
        from smlocal.emulator.state import StateDir

        record = read_service_record(StateDir())
        if record is None:
            fail("no smlocal service is running (start one with `smlocal server`)")
        out.print(record.url)
        err.print(f"running since {time.ctime(record.started_at)} (pid {record.pid})")

    @group.command("stop")
    def stop_service(
        timeout: Annotated[float, typer.Option(help="Seconds to wait for it to stop.")] = 60.0,
    ) -> None:
        """Stop a running service: every endpoint's containers stop gracefully; the state
        (models, configs, endpoints) stays for the next `smlocal server`."""
        import os
        import signal

        from smlocal.emulator.service.process import read_service_record
        from smlocal.emulator.state import StateDir

        state = StateDir()
        record = read_service_record(state)
        if record is None:
            fail("no smlocal service is running")
        os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while read_service_record(state) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if read_service_record(state) is not None:
            fail(f"the service (pid {record.pid}) did not stop within {timeout:g} s")
        err.print("smlocal service stopped")

    app.add_typer(group, name="server")
