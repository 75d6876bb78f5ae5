"""`smlocal monitor schedule`: each completed hour of capture once, in order, remembered.

The clock is injected, so nothing here depends on how long anything takes.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smlocal.cli import app
from smlocal.monitor import CaptureWindow, MonitorInputError, MonitorRun, run_baseline
from smlocal.monitor.schedule import HourOutcome, one_round, parse_every, run_schedule
from tests.monitor_data import write_capture
from tests.unit.test_monitor_run import _rows

H5 = datetime(2026, 11, 30, 5, tzinfo=UTC)
H6, H7 = H5 + timedelta(hours=1), H5 + timedelta(hours=2)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("baseline")
    (root / "train.csv").write_text("\n".join(",".join(r) for r in _rows(10_000, seed=1)) + "\n")
    run_baseline(root / "train.csv", root / "b")
    return root / "b"


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    cap = tmp_path / "cap"
    write_capture(cap, "ep", _rows(600, seed=2), H5)
    write_capture(cap, "ep", _rows(600, seed=3, shift={1: 1.0}), H6)
    write_capture(cap, "ep", _rows(600, seed=4), H7)
    return cap


def test_rounds_take_each_completed_hour_once(
    baseline: Path, capture: Path, tmp_path: Path
) -> None:
    template = MonitorRun(CaptureWindow(str(capture)), baseline, tmp_path / "out")
    first = one_round(template, now=H7 + timedelta(minutes=30))
    assert [(o.hour, len(o.result.violations) if o.result else None) for o in first] == [
        (H5, 0), (H6, 1),
    ]  # fmt: skip
    assert (tmp_path / "out/2026/11/30/06/constraint_violations.json").is_file()
    assert (tmp_path / "out/2026/11/30/06/drift__c1.png").is_file()
    state = json.loads((tmp_path / "out/schedule.json").read_text())
    assert state["hours"][H6.isoformat()]["violations"] == 1
    assert one_round(template, now=H7 + timedelta(minutes=59)) == []
    # 07:00-08:00 is complete only after the 2-minute delivery grace.
    assert one_round(template, now=H7 + timedelta(hours=1, minutes=1)) == []
    (late,) = one_round(template, now=H7 + timedelta(hours=1, minutes=3))
    assert late.hour == H7 and late.result is not None and late.result.violations == []


def test_since_skips_older_hours_and_a_broken_hour_is_recorded(
    baseline: Path, capture: Path, tmp_path: Path
) -> None:
    broken = write_capture(capture, "ep", _rows(5, seed=5), H7 + timedelta(hours=1))
    broken.write_text("not a record\n")
    template = MonitorRun(CaptureWindow(str(capture)), baseline, tmp_path / "out")
    outcomes = one_round(template, now=H7 + timedelta(hours=5), since=H6)
    assert [o.hour for o in outcomes] == [H6, H7, H7 + timedelta(hours=1)]
    assert outcomes[-1].result is None and "no captured records" in (outcomes[-1].error or "")


def test_the_loop_runs_rounds_until_stopped(baseline: Path, capture: Path, tmp_path: Path) -> None:
    times = iter([H6 + timedelta(minutes=30), H7 + timedelta(minutes=30), H7 + timedelta(hours=2)])
    stop = threading.Event()
    seen: list[datetime] = []

    def on_hour(outcome: HourOutcome) -> None:
        seen.append(outcome.hour)
        if outcome.hour == H7:
            stop.set()

    outcomes = run_schedule(
        MonitorRun(CaptureWindow(str(capture)), baseline, tmp_path / "out"),
        every=timedelta(milliseconds=10), stop=stop, on_hour=on_hour, clock=lambda: next(times),
    )  # fmt: skip
    assert seen == [H5, H6, H7] and len(outcomes) == 3
    with pytest.raises(MonitorInputError, match="no --start/--end"):
        run_schedule(
            MonitorRun(CaptureWindow(str(capture), start=H5), baseline, tmp_path / "o"),
            every=timedelta(hours=1), once=True,
        )  # fmt: skip


def test_cli_once_exits_1_then_0_when_nothing_is_new(baseline: Path, tmp_path: Path) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    write_capture(tmp_path / "cap", "ep", _rows(400, seed=6, shift={0: 1.0}), hour)
    argv = ["monitor", "schedule", "--capture", str(tmp_path / "cap"), "--baseline", str(baseline),
            "--out", str(tmp_path / "out"), "--once"]  # fmt: skip
    first = CliRunner().invoke(app, argv)
    assert first.exit_code == 1, first.output
    assert "1 violation " in first.output and "baseline_drift_check" in first.output
    again = CliRunner().invoke(app, argv)
    assert again.exit_code == 0, again.output
    assert "no new completed hour of capture" in again.output


@pytest.mark.parametrize("every", ["0s", "soon", "8d"])
def test_a_bad_interval_exits_2(baseline: Path, tmp_path: Path, every: str) -> None:
    with pytest.raises(MonitorInputError):
        parse_every(every)
    result = CliRunner().invoke(
        app, ["monitor", "schedule", "--capture", str(tmp_path), "--baseline", str(baseline),
              "--out", str(tmp_path / "o"), "--every", every, "--once"],
    )  # fmt: skip
    assert result.exit_code == 2 and "--every" in result.output
    assert parse_every("15m") == timedelta(minutes=15) and parse_every("1h") == timedelta(hours=1)
