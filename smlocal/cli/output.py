"""What every command prints through: the two consoles, errors, and the exit code table.

Results go to stdout (``out``), progress and errors to stderr (``err``). :func:`reported`
turns the errors smlocal raises on purpose into one message and their exit code
(:class:`~smlocal.emulator.errors.ExitCode`, the one table), and Ctrl-C into "interrupted"
and 130; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from smlocal.emulator.errors import ExitCode, SmlocalError

__all__ = ["ExitCode", "err", "fail", "out", "reported", "talking_to"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: ExitCode = ExitCode.FAILED, *, logs: str = "") -> NoReturn:
    """Print ``message`` (and the container's last log lines, if any) and exit with ``code``."""
    if logs.strip():
        err.print("[bold]last container log lines:[/]")
        err.print(escape(logs.rstrip()))
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(int(code))


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Run a command's work: SmlocalError → message + its exit code; Ctrl-C → 130."""
    from smlocal.emulator.errors import EndpointFailedError, WorkInterrupted

    try:
        yield
    except WorkInterrupted as error:  # Ctrl-C, and what it left in which state
        err.print(f"[yellow]{escape(str(error))}[/]")
        raise typer.Exit(int(error.exit_code)) from None
    except EndpointFailedError as error:
        fail(str(error), error.exit_code, logs=error.logs)
    except SmlocalError as error:
        fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


@contextlib.contextmanager
def talking_to(url: str) -> Iterator[None]:
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
