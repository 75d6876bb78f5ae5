"""The live view while Locust runs: users, current RPS, p50/p95/p99, errors.

On a terminal, a rich Live table refreshed from the locustfile's per-second snapshot. Off a
terminal (CI logs, pipes), where a Live table shows nothing until the end, one plain line per
step as it ends (and the last one at exit), so a long find-max is never silent.
"""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from smlocal.loadtests.runner import Snapshot

__all__ = ["LiveView", "plain_line"]

_COLUMNS = ("users", "req/s", "p50 ms", "p95 ms", "p99 ms", "requests", "errors")


def _ms(value: object) -> str:
    return f"{value}" if isinstance(value, int | float) else "-"


def _cells(snapshot: Snapshot) -> list[str]:
    errors = snapshot.get("errors") or {}
    return [
        str(snapshot.get("users", 0)),
        f"{float(snapshot.get('rps') or 0):.1f}",
        _ms(snapshot.get("p50_ms")),
        _ms(snapshot.get("p95_ms")),
        _ms(snapshot.get("p99_ms")),
        str(snapshot.get("requests", 0)),
        ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0",
    ]


def plain_line(label: str, snapshot: Snapshot) -> str:
    """``LABEL: users 4, req/s 812.3, p95 ms 6, errors 0`` (what a CI log gets per step)."""
    cells = dict(zip(_COLUMNS, _cells(snapshot), strict=True))
    shown = ", ".join(f"{key} {cells[key]}" for key in ("users", "req/s", "p95 ms", "errors"))
    return f"{label}: {shown}"


class LiveView:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None
        if console.is_terminal:
            self._live = Live(Table(), console=console, refresh_per_second=2, transient=True)
        self.label = ""
        self._pending: tuple[str, Snapshot] | None = None

    def __enter__(self) -> LiveView:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
        self._flush()

    def update(self, snapshot: Snapshot) -> None:
        if self._live is None:
            if self._pending is not None and self._pending[0] != self.label:
                self._flush()  # the step before has ended
            # Locust's last snapshots, as users stop, read 0 req/s: keep the step's last busy one.
            if self._pending is None or float(snapshot.get("rps") or 0) > 0:
                self._pending = (self.label, snapshot)
            return
        table = Table(title=self.label, title_justify="left")
        for column in _COLUMNS:
            table.add_column(column, justify="right")
        table.add_row(*_cells(snapshot))
        self._live.update(table)

    def _flush(self) -> None:
        if self._pending is not None:
            self._console.print(escape(plain_line(*self._pending)), soft_wrap=True)
            self._pending = None
