"""The live view while Locust runs: users, current RPS, p50/p95/p99, errors (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.table import Table

from smlocal.loadtests.runner import Snapshot

__all__ = ["LiveView"]


def _ms(value: object) -> str:
    return f"{value}" if isinstance(value, int | float) else "-"


class LiveView:
    """A rich Live table refreshed from the locustfile's per-second snapshot."""

    def __init__(self, console: Console) -> None:
        self._live = Live(Table(), console=console, refresh_per_second=2, transient=True)
        self.label = ""

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def update(self, snapshot: Snapshot) -> None:
        table = Table(title=self.label, title_justify="left")
        for column in ("users", "req/s", "p50 ms", "p95 ms", "p99 ms", "requests", "errors"):
            table.add_column(column, justify="right")
        errors = snapshot.get("errors") or {}
        table.add_row(
            str(snapshot.get("users", 0)),
            f"{float(snapshot.get('rps') or 0):.1f}",
            _ms(snapshot.get("p50_ms")),
            _ms(snapshot.get("p95_ms")),
            _ms(snapshot.get("p99_ms")),
            str(snapshot.get("requests", 0)),
            ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0",
        )
        self._live.update(table)
