"""What every command prints through: the two consoles, errors, and the exit code table.

Results go to stdout (``out``), progress and errors to stderr (``err``); container log lines
to stdout through :func:`print_log_lines`, a batch in one write. :func:`reported`
turns the errors smlocal raises on purpose into one message and their exit code
(:class:`~smlocal.emulator.errors.ExitCode`, the one table), and Ctrl-C into "interrupted"
and 130; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.style import Style

from smlocal.emulator.errors import ExitCode, SmlocalError

__all__ = ["ExitCode", "err", "fail", "out", "print_log_lines", "reported", "talking_to"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# rich's codes for dim text, taken once: a log line's styling is this string around its source.
_DIM, _, _UNDIM = Style(dim=True).render("\0").partition("\0")


def print_log_lines(lines: Sequence[str], *, dim_sources: bool = True) -> None:
    """Container log lines to stdout, all in one write and flush.

    On a terminal (rich's colour detection: ``out.color_system``) the ``SOURCE |`` prefix is
    dimmed; otherwise the lines go out as they are. Not through rich's renderer: a reference
    image logs a line per request, and rendering one costs more than the request did (rich
    printed the lines verbatim too: no markup, no highlighting, no wrapping)."""
    if not lines:
        return
    if dim_sources and out.color_system is not None:
        shown = []
        for line in lines:
            source, bar, text = line.partition(" | ")
            shown.append(f"{_DIM}{source} |{_UNDIM} {text}" if bar else line)
        lines = shown
    stream = out.file
    stream.write("\n".join(lines) + "\n")
    stream.flush()


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
