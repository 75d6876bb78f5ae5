"""What a foreground ``smlocal serve`` prints: status changes, which service it is on, and
the endpoint's container log, a batch of lines per poll in one write
(:func:`~smlocal.cli.output.print_log_lines`) so a line per request costs little.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape

from smlocal.cli.output import err, print_log_lines

if TYPE_CHECKING:
    from smlocal.emulator.service.quick_serve import ServiceSettings

__all__ = ["ConsoleSink", "service_notes"]


class ConsoleSink:
    """Prints container logs (stdout) and status changes (stderr) for a foreground ``serve``."""

    def __init__(self, show_logs: bool) -> None:
        self.show_logs = show_logs

    def container_logs(self, lines: list[str]) -> None:
        if self.show_logs:
            print_log_lines(lines)

    def container_log(self, line: str) -> None:
        self.container_logs([line])

    def status(self, endpoint: str, status: str, detail: str) -> None:
        colour = {"InService": "green", "Failed": "red"}.get(status, "yellow")
        err.print(f"[bold]{escape(endpoint)}[/]: [{colour}]{status}[/] [dim]{escape(detail)}[/]")


def service_notes(url: str, how: str, settings: ServiceSettings) -> None:
    """Which service the serve is on (``how``: "running", "here" or "detached"), and the
    flags a running service ignores."""
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
    elif how == "here":
        err.print(
            f"[dim]smlocal service at {url} (in this process; it stops with this serve). "
            f"Runtime API: {url}/endpoints/NAME/invocations[/]"
        )
    elif how == "detached":
        err.print(
            f"[dim]started the smlocal service at {url} in the background "
            "(`smlocal server stop` stops it)[/]"
        )
