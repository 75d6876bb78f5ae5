"""``monitor schedule``: a local stand-in for an hourly monitoring schedule.

Each round lists the capture files, takes every **completed** hour that has capture and no
report yet (an hour is complete :data:`GRACE` after it ends: AWS says capture delivery "can
require a couple of minutes"), and runs one monitoring execution per hour, oldest first, into
``<out>/yyyy/mm/dd/hh/``. What was done is kept in ``<out>/schedule.json``, so a schedule that
was stopped, or a cron job that missed a run, catches up on the next round without redoing an
hour. ``once`` runs a single round (for cron or CI); otherwise a round every ``every`` until
``stop`` is set.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from smlocal.monitor.errors import MonitorInputError
from smlocal.monitor.run import MonitorRun, RunResult, run_monitor
from smlocal.monitor.sources import CaptureSource

__all__ = [
    "GRACE",
    "STATE_FILE",
    "HourOutcome",
    "due_hours",
    "one_round",
    "parse_every",
    "run_schedule",
]

GRACE = timedelta(minutes=2)
STATE_FILE = "schedule.json"


@dataclass(frozen=True)
class HourOutcome:
    hour: datetime
    out: Path
    result: RunResult | None
    error: str | None = None


def _load_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"hours": {}}
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise MonitorInputError(f"{path}: not a schedule state file ({error})") from None
    if not isinstance(state, dict) or not isinstance(state.get("hours"), dict):
        raise MonitorInputError(f"{path}: not a schedule state file (no 'hours')")
    return state


def due_hours(
    source: CaptureSource, done: set[str], now: datetime, since: datetime | None
) -> list[datetime]:
    hours = {f.hour for f in source.files()}
    return sorted(
        h
        for h in hours
        if h + timedelta(hours=1) + GRACE <= now
        and (since is None or h >= since)
        and h.isoformat() not in done
    )


def one_round(
    template: MonitorRun, *, now: datetime, since: datetime | None = None,
    on_hour: Callable[[HourOutcome], None] = lambda _: None,
) -> list[HourOutcome]:  # fmt: skip
    """Monitor every due hour once; returns what each gave."""
    state_path = template.out / STATE_FILE
    state = _load_state(state_path)
    source = CaptureSource(template.window.source)
    outcomes = []
    for hour in due_hours(source, set(state["hours"]), now, since):
        out = template.out / f"{hour:%Y/%m/%d/%H}"
        window = replace(template.window, start=hour, end=hour + timedelta(hours=1))
        try:
            result = run_monitor(replace(template, window=window, out=out))
            outcome = HourOutcome(hour, out, result)
            record: dict[str, Any] = {"violations": len(result.violations), "out": str(out)}
        except MonitorInputError as error:
            outcome = HourOutcome(hour, out, None, str(error))
            record = {"error": str(error), "out": str(out)}
        state["hours"][hour.isoformat()] = record
        template.out.mkdir(parents=True, exist_ok=True)
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        tmp.replace(state_path)  # atomic: a kill between hours loses no record
        outcomes.append(outcome)
        on_hour(outcome)
    return outcomes


def run_schedule(
    template: MonitorRun, *, every: timedelta, once: bool = False,
    since: datetime | None = None, stop: threading.Event | None = None,
    on_hour: Callable[[HourOutcome], None] = lambda _: None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[HourOutcome]:  # fmt: skip
    """Rounds of :func:`one_round`; all the outcomes when ``once`` or ``stop`` ends it."""
    if template.window.start or template.window.end:
        raise MonitorInputError("a schedule picks its own hours: no --start/--end (use --since)")
    stop = stop or threading.Event()
    outcomes: list[HourOutcome] = []
    while True:
        outcomes += one_round(template, now=clock(), since=since, on_hour=on_hour)
        if once or stop.wait(every.total_seconds()):
            return outcomes


def parse_every(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h`` (a number alone is seconds)."""
    units = {"s": 1, "m": 60, "h": 3600}
    raw = text.strip().lower()
    unit = raw[-1] if raw and raw[-1] in units else "s"
    number = raw[:-1] if raw and raw[-1] in units else raw
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise MonitorInputError(f"--every {text!r}: use e.g. 1h, 15m or 90s") from None
    if not 1 <= seconds <= 7 * 86400:
        raise MonitorInputError(f"--every {text!r}: between 1s and 7 days")
    return timedelta(seconds=seconds)
