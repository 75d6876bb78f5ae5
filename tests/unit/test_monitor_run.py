"""`smlocal monitor run`: violations are found when they are there, and not when they are not.

Capture records are written in SageMaker's format (tests/monitor_data.py); the baseline is
built by `monitor baseline` from a training CSV, or is the analyzer's own files
(tests/data/model_monitor/). Exit codes: 0 no violations, 1 violations, 2 cannot run.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from smlocal.cli import app
from smlocal.monitor import CaptureWindow, MonitorInputError, MonitorRun, run_baseline, run_monitor
from tests.monitor_data import capture_key, write_capture

HOUR = datetime(2026, 12, 2, 5, tzinfo=UTC)
DATA = Path(__file__).resolve().parent.parent / "data" / "model_monitor"
MEANS = [10.0, -3.0, 0.0, 100.0]
STDS = [2.0, 1.0, 5.0, 20.0]


def _rows(n: int, seed: int, shift: dict[int, float] | None = None) -> list[list[Any]]:
    rng = np.random.default_rng(seed)
    cols = [rng.normal(m, s, n) + (shift or {}).get(i, 0.0) * s for i, (m, s) in
            enumerate(zip(MEANS, STDS, strict=True))]  # fmt: skip
    ints = rng.integers(0, 10, n)
    cats = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    return [[*(f"{c[i]:.5f}" for c in cols), str(ints[i]), str(cats[i])] for i in range(n)]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("baseline")
    train = root / "train.csv"
    train.write_text("\n".join(",".join(r) for r in _rows(20_000, seed=1)) + "\n")
    run_baseline(train, root / "baseline")
    return root / "baseline"


def _run(capture: Path | str, baseline: Path, out: Path, **kwargs: Any) -> Any:
    window = CaptureWindow(
        str(capture),
        **{k: kwargs.pop(k) for k in ("start", "end", "capture_data") if k in kwargs},
    )  # fmt: skip
    return run_monitor(MonitorRun(window=window, baseline=baseline, out=out, **kwargs))


def _kinds(result: Any) -> set[tuple[str, str]]:
    return {(v.feature_name, v.constraint_check_type) for v in result.violations}


def test_traffic_like_the_training_data_has_no_violations(baseline: Path, tmp_path: Path) -> None:
    write_capture(tmp_path / "cap", "ep", _rows(2000, seed=2), HOUR)
    result = _run(tmp_path / "cap", baseline, tmp_path / "out")
    assert result.violations == []
    assert result.records == 2000 and result.endpoint == "ep"
    assert json.loads((tmp_path / "out" / "constraint_violations.json").read_text()) == {
        "violations": []
    }
    stats = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert stats["dataset"]["item_count"] == 2000
    assert all(d < 0.1 for d in result.drift.values())


@pytest.mark.parametrize("feature", [0, 1, 2, 3])
def test_one_feature_shifted_by_one_std_drifts_and_no_other(
    baseline: Path, tmp_path: Path, feature: int
) -> None:
    write_capture(tmp_path / "cap", "ep", _rows(2000, seed=3, shift={feature: 1.0}), HOUR)
    result = _run(tmp_path / "cap", baseline, tmp_path / "out")
    assert _kinds(result) == {(f"_c{feature}", "baseline_drift_check")}
    (violation,) = result.violations
    assert violation.description.startswith("Baseline drift distance: ")
    assert (tmp_path / "out" / f"drift__c{feature}.png").stat().st_size > 1000
    assert result.plots == [tmp_path / "out" / f"drift__c{feature}.png"]


def test_a_feature_sent_as_text_is_a_data_type_violation(baseline: Path, tmp_path: Path) -> None:
    rows = _rows(1000, seed=4)
    for i in range(0, 1000, 4):
        rows[i][2] = "high"
    write_capture(tmp_path / "cap", "ep", rows, HOUR)
    result = _run(tmp_path / "cap", baseline, tmp_path / "out")
    assert _kinds(result) == {("_c2", "data_type_check")}
    assert result.violations[0].description == (
        "Value: 0.75 does not meet the constraint requirement! "
    )


def test_an_integral_feature_sent_fractional_is_a_data_type_violation(
    baseline: Path, tmp_path: Path
) -> None:
    rows = _rows(1000, seed=5)
    for row in rows:
        row[4] = f"{row[4]}.5"
    write_capture(tmp_path / "cap", "ep", rows, HOUR)
    kinds = _kinds(_run(tmp_path / "cap", baseline, tmp_path / "out"))
    assert ("_c4", "data_type_check") in kinds


def test_a_dropped_column_is_a_missing_column_violation(baseline: Path, tmp_path: Path) -> None:
    write_capture(tmp_path / "cap", "ep", [r[:-1] for r in _rows(500, seed=6)], HOUR)
    result = _run(tmp_path / "cap", baseline, tmp_path / "out")
    assert _kinds(result) == {("_c5", "missing_column_check")}
    assert "Number of columns in current dataset: 5" in result.violations[0].description


def test_an_extra_column_unknown_values_and_missing_values(baseline: Path, tmp_path: Path) -> None:
    rows = _rows(1000, seed=7)
    for i, row in enumerate(rows):
        row.append("1")
        if i % 10 == 0:
            row[5] = "zzz"
        if i % 20 == 0:
            row[0] = ""
    write_capture(tmp_path / "cap", "ep", rows, HOUR)
    result = _run(tmp_path / "cap", baseline, tmp_path / "out")
    kinds = _kinds(result)
    assert ("_c6", "extra_column_check") in kinds
    assert ("_c5", "categorical_values_check") in kinds
    assert ("_c0", "completeness_check") in kinds
    by_kind = {v.constraint_check_type: v for v in result.violations}
    assert by_kind["completeness_check"].value == pytest.approx(0.95)
    assert by_kind["categorical_values_check"].value == pytest.approx(0.9)


def test_the_window_picks_hours_and_records(baseline: Path, tmp_path: Path) -> None:
    later = HOUR.replace(hour=6)
    write_capture(tmp_path / "cap", "ep", _rows(1000, seed=8), HOUR)
    write_capture(tmp_path / "cap", "ep", _rows(1000, seed=9, shift={3: 2.0}), later)
    quiet = _run(tmp_path / "cap", baseline, tmp_path / "o1", start=HOUR, end=later)
    assert quiet.violations == [] and quiet.records == 1000 and quiet.files == 1
    drifted = _run(tmp_path / "cap", baseline, tmp_path / "o2", start=later)
    assert _kinds(drifted) == {("_c3", "baseline_drift_check")}
    with pytest.raises(MonitorInputError, match="no captured records in the window"):
        _run(tmp_path / "cap", baseline, tmp_path / "o3", start=later.replace(hour=7))


@pytest.mark.parametrize("encoding", ["JSON", "BASE64"])
def test_json_and_base64_payloads_read_like_csv(
    baseline: Path, tmp_path: Path, encoding: str
) -> None:
    rows = _rows(800, seed=10, shift={1: 1.0})
    payloads = [{f"_c{i}": v for i, v in enumerate(r)} for r in rows]
    write_capture(tmp_path / "cap", "ep", payloads, HOUR, encoding=encoding)
    assert _kinds(_run(tmp_path / "cap", baseline, tmp_path / "out")) == {
        ("_c1", "baseline_drift_check")
    }


def test_a_json_lines_payload_is_several_rows(baseline: Path, tmp_path: Path) -> None:
    rows = _rows(600, seed=18)
    path = tmp_path / "cap" / capture_key("ep", HOUR)
    path.parent.mkdir(parents=True)
    records = []
    for i in range(0, 600, 3):
        lines = "\n".join(
            json.dumps({f"_c{j}": v for j, v in enumerate(r)}) for r in rows[i : i + 3]
        )
        part = {"observedContentType": "application/jsonlines", "mode": "INPUT", "data": lines,
                "encoding": "JSON"}  # fmt: skip
        records.append(json.dumps({"captureData": {"endpointInput": part}}))
    path.write_text("\n".join(records) + "\n")
    result = _run(tmp_path / "cap", baseline, tmp_path / "out")
    assert (result.records, result.rows, result.violations) == (200, 600, [])


def test_instances_payloads_and_output_first_with_both(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"  # label first, then two features: the SageMaker CSV order
    rng = np.random.default_rng(11)
    train.write_text("".join(f"{rng.integers(0, 2)},{rng.normal():.4f},{rng.normal():.4f}\n"
                             for _ in range(5000)))  # fmt: skip
    run_baseline(train, tmp_path / "b")
    inputs = [{"instances": [[round(rng.normal(), 4), round(rng.normal(), 4)]]} for _ in range(500)]
    outputs = [int(rng.integers(0, 2)) for _ in range(500)]
    write_capture(tmp_path / "cap", "ep", inputs, HOUR, outputs=outputs, encoding="JSON")
    result = _run(tmp_path / "cap", tmp_path / "b", tmp_path / "out", capture_data="both")
    assert result.violations == []
    assert [f.name for f in result.features] == ["_c0", "_c1", "_c2"]
    assert result.features[0].inferred_type == "Integral"


def _analyzer_rows(n: int, seed: int, shift: float = 0.0) -> list[list[str]]:
    # Sampled from the values the analyzer's own sketch holds (100 rows, level 0).
    stats = json.loads((DATA / "analyzer_statistics.json").read_text())
    rng = np.random.default_rng(seed)
    columns = []
    for i, f in enumerate(stats["features"]):
        values = np.array(f["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"][0])
        columns.append(rng.choice(values, n) + (shift if i == 2 else 0.0))
    return [[f"{c[j]:.1f}" for c in columns] for j in range(n)]


def test_the_analyzers_own_files_are_a_baseline(tmp_path: Path) -> None:
    base = tmp_path / "aws"
    base.mkdir()
    (base / "statistics.json").write_bytes((DATA / "analyzer_statistics.json").read_bytes())
    (base / "constraints.json").write_bytes((DATA / "analyzer_constraints.json").read_bytes())
    write_capture(tmp_path / "same", "ep", _analyzer_rows(400, seed=12), HOUR)
    assert _run(tmp_path / "same", base, tmp_path / "o1").violations == []
    write_capture(tmp_path / "moved", "ep", _analyzer_rows(400, seed=13, shift=3.0), HOUR)
    assert _kinds(_run(tmp_path / "moved", base, tmp_path / "o2")) == {
        ("_c2", "baseline_drift_check")
    }


def test_the_sdks_older_constraints_form_is_read(tmp_path: Path) -> None:
    base = tmp_path / "sdk"
    base.mkdir()
    (base / "constraints.json").write_bytes((DATA / "sdk_monitor_constraints.json").read_bytes())
    (base / "statistics.json").write_bytes((DATA / "sdk_monitor_statistics.json").read_bytes())
    inputs = [{"message": "preproc-not-YET-supported-for-csv-json", "second_message": "other"}] * 50
    write_capture(tmp_path / "cap", "ep", inputs, HOUR, encoding="JSON")
    result = _run(tmp_path / "cap", base, tmp_path / "o")
    assert _kinds(result) == {("second_message", "categorical_values_check")}
    assert result.drift == {"message": 0.0}


def test_cli_exits_1_on_violations_and_prints_a_table(baseline: Path, tmp_path: Path) -> None:
    write_capture(tmp_path / "cap", "ep", _rows(500, seed=14, shift={0: 1.0}), HOUR)
    result = CliRunner().invoke(
        app, ["monitor", "run", "--capture", str(tmp_path / "cap"), "--baseline", str(baseline),
              "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "baseline_drift_check" in result.output and "1 violation" in result.output
    write_capture(tmp_path / "ok", "ep", _rows(500, seed=15), HOUR)
    clean = CliRunner().invoke(
        app, ["monitor", "run", "--capture", str(tmp_path / "ok"), "--baseline", str(baseline),
              "--out", str(tmp_path / "out2"), "--start", "2026-12-02T05", "--end",
              "2026-12-02T06:00:00Z"],
    )  # fmt: skip
    assert clean.exit_code == 0, clean.output
    assert "no violations" in clean.output


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        ("nothing", [], "no such directory"),
        ("no-baseline", [], "not a directory"),
        ("capture", ["--start", "yesterday"], "not an ISO-8601 time"),
        ("capture", ["--start", "2026-12-02T06", "--end", "2026-12-02T05"], "--end must be after"),
        ("garbage", [], "no captured records in the window"),
        ("bad-constraints", [], "not readable JSON"),
    ],
)
def test_cli_cannot_run_exits_2_with_a_message(
    baseline: Path, tmp_path: Path, make: str, args: list[str], message: str
) -> None:
    cap = tmp_path / "cap"
    base = baseline
    if make in ("capture", "bad-constraints", "no-baseline"):
        write_capture(cap, "ep", _rows(10, seed=16), HOUR)
    if make == "garbage":
        path = write_capture(cap, "ep", _rows(10, seed=16), HOUR)
        path.write_text('not json\n{"captureData": 3}\n')
    if make == "bad-constraints":
        base = tmp_path / "bad"
        base.mkdir()
        (base / "constraints.json").write_text("{oops")
    if make == "no-baseline":
        base = tmp_path / "nonexistent"
    argv = ["monitor", "run", "--capture", str(cap), "--baseline", str(base), "--out",
            str(tmp_path / "out"), *args]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_counts_per_check_match_the_violations_file(baseline: Path, tmp_path: Path) -> None:
    rows = [r[:-1] for r in _rows(300, seed=17, shift={0: 1.5})]
    write_capture(tmp_path / "cap", "ep", rows, HOUR)
    result = _run(tmp_path / "cap", baseline, tmp_path / "out")
    written = json.loads(result.violations_file.read_text())["violations"]
    assert Counter(v["constraint_check_type"] for v in written) == Counter(
        {"missing_column_check": 1, "baseline_drift_check": 1}
    )


def test_a_prefix_holding_two_endpoints_is_refused(baseline: Path, tmp_path: Path) -> None:
    """One report, and its alerts and metrics, are for one endpoint: mixing two would label
    the second's traffic with the first's name."""
    write_capture(tmp_path / "cap", "ep-a", _rows(50, seed=2), HOUR)
    write_capture(tmp_path / "cap", "ep-b", _rows(50, seed=3), HOUR)
    with pytest.raises(MonitorInputError, match=r"holds the capture of 2 endpoints \(ep-a, ep-b\)"):
        _run(tmp_path / "cap", baseline, tmp_path / "out")
    assert _run(tmp_path / "cap" / "ep-b", baseline, tmp_path / "out").endpoint == "ep-b"
