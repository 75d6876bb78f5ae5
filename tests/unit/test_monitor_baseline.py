"""`smlocal monitor baseline`: statistics.json and constraints.json in the analyzer's schema.

Types, completeness, non-negativity, domains, 10 KLL buckets and the monitoring_config the
analyzer suggests, for CSV (with and without header, quoted or not) and flat JSON / JSON
Lines; Hypothesis-generated cells are typed as Deequ types them, or refused with a message.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from smlocal.cli import app
from smlocal.monitor import MonitorInputError, run_baseline
from smlocal.monitor.files import DEFAULT_MONITORING_CONFIG
from smlocal.monitor.table import read_csv


def _train(tmp_path: Path, rows: int = 3000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path = tmp_path / "train.csv"
    lines = ["amount,count,colour,score,note"]
    for i in range(rows):
        note = "" if i % 10 == 0 else f"n{i}"
        lines.append(
            f"{rng.normal(50, 10):.4f},{rng.integers(0, 9)},{rng.choice(['red', 'blue'])},"
            f"{rng.normal():.6f},{note}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _features(path: Path) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in json.loads(path.read_text())["features"]}


def test_baseline_writes_the_analyzers_schema(tmp_path: Path) -> None:
    result = run_baseline(_train(tmp_path), tmp_path / "out", header=True)
    stats = json.loads(result.statistics.read_text())
    assert stats["version"] == 0.0
    assert stats["dataset"] == {"item_count": 3000}
    features = _features(result.statistics)
    assert [f["inferred_type"] for f in features.values()] == [
        "Fractional", "Integral", "String", "Fractional", "String",
    ]  # fmt: skip
    amount = features["amount"]["numerical_statistics"]
    assert amount["common"] == {"num_present": 3000, "num_missing": 0}
    assert 45 < amount["mean"] < 55 and 8 < amount["std_dev"] < 12
    assert math.isclose(amount["sum"], amount["mean"] * 3000)
    buckets = amount["distribution"]["kll"]["buckets"]
    assert len(buckets) == 10
    assert (
        buckets[0]["lower_bound"] == amount["min"] and buckets[-1]["upper_bound"] == amount["max"]
    )
    assert sum(b["count"] for b in buckets) == 3000
    assert all(isinstance(b["count"], float) for b in buckets)
    sketch = amount["distribution"]["kll"]["sketch"]
    assert sketch["parameters"] == {"c": 0.64, "k": 2048.0}
    # Level i weighs 2**i: the weighted items add up to the rows (KLL keeps n exactly).
    assert sum(len(level) * 2**i for i, level in enumerate(sketch["data"])) == 3000
    colour = features["colour"]["string_statistics"]
    assert colour["distinct_count"] == 2.0
    assert {b["value"] for b in colour["distribution"]["categorical"]["buckets"]} == {"red", "blue"}
    note = features["note"]["string_statistics"]["common"]
    assert note == {"num_present": 2700, "num_missing": 300}

    constraints = json.loads(result.constraints.read_text())
    assert constraints["monitoring_config"] == DEFAULT_MONITORING_CONFIG
    assert constraints["monitoring_config"]["datatype_check_threshold"] == 1.0
    by_name = _features(result.constraints)
    assert by_name["amount"]["num_constraints"] == {"is_non_negative": True}
    assert by_name["score"]["num_constraints"] == {"is_non_negative": False}
    assert by_name["colour"]["string_constraints"] == {"domains": ["blue", "red"]}
    assert "string_constraints" not in by_name["note"]  # every value unique: no domain
    assert by_name["note"]["completeness"] == 0.9
    # The analyzer's Jackson layout.
    assert '"version" : 0.0' in result.constraints.read_text()


def test_a_large_column_keeps_ten_buckets_and_an_estimation_sketch(tmp_path: Path) -> None:
    values = np.random.default_rng(1).exponential(size=50_000)
    path = tmp_path / "big.csv"
    path.write_text("\n".join(f"{v:.6f}" for v in values) + "\n")
    stats = _features(run_baseline(path, tmp_path / "o").statistics)["_c0"]
    kll = stats["numerical_statistics"]["distribution"]["kll"]
    counts = [b["count"] for b in kll["buckets"]]
    assert sum(counts) == pytest.approx(50_000, abs=10)
    edges = np.linspace(values.min(), values.max(), 11)
    exact, _ = np.histogram(values, bins=edges)
    assert np.abs(np.array(counts) - exact).max() < 50_000 * 0.01  # KLL error << 1%
    assert len(kll["sketch"]["data"]) > 1  # compacted: levels above 0


def test_quoted_csv_and_json_lines_give_the_same_profile(tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n1,x\n2,y\n3,\n")
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('a,b\n"1","x"\n2,"y"\n3,""\n')
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n{"a": 3, "b": null}\n')
    array = tmp_path / "rows.json"
    array.write_text('[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3}]')
    profiles = [
        _features(run_baseline(p, tmp_path / p.stem, header=True).statistics)
        for p in (plain, quoted, jsonl, array)
    ]
    for profile in profiles[1:]:
        assert profile == profiles[0]
    assert profiles[0]["a"]["inferred_type"] == "Integral"
    assert profiles[0]["b"]["string_statistics"]["common"]["num_missing"] == 1


def _deequ_type(cells: list[str]) -> str:
    kinds = set()
    for cell in cells:
        text = cell.strip(" \t\n\r\x0b\x0c")  # ASCII whitespace only, as bytes.strip()
        if not text:
            continue
        if not text.isascii():  # Java's \\d, in Deequ's patterns, is ASCII only
            kinds.add("String")
            continue
        try:
            number = float(text.encode())  # bytes: ASCII whitespace only
        except ValueError:
            kinds.add("String")
            continue
        if not math.isfinite(number):
            kinds.add("String")
        elif any(c in text for c in ".eE"):
            kinds.add("Fractional")
        else:
            kinds.add("Integral")
    for kind in ("String", "Fractional", "Integral"):
        if kind in kinds:
            return kind
    return "Unknown"


_cell = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "true", "NaN", "1e5", "-0.0", "+3", "1_000", "٣", "\x1f", "\x1f1"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
            max_size=8),
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.lists(_cell, min_size=3, max_size=3), min_size=1, max_size=30))
def test_any_csv_is_typed_like_deequ_or_refused_with_a_message(
    tmp_path: Path, rows: list[list[str]]
) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path = tmp_path / "data.csv"
    path.write_bytes(buffer.getvalue().encode())
    try:
        result = run_baseline(path, tmp_path / "out")
    except MonitorInputError as error:
        assert str(error)  # a message naming the problem, never a traceback
        return
    table = read_csv(path.read_bytes(), header=False, where="t")
    features = _features(result.statistics)
    for name in table.names:
        cells = [v.decode() for v in table.columns[name].tolist()]
        assert features[name]["inferred_type"] == _deequ_type(cells), cells


def test_baseline_cli_writes_both_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["monitor", "baseline", "--dataset", str(_train(tmp_path, rows=50)), "--header",
              "--out", str(tmp_path / "b")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "statistics.json").is_file()
    assert (tmp_path / "b" / "constraints.json").is_file()
    assert "50 rows, 5 features" in result.output


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "No such file"),
        (b"", [], "no rows"),
        (b"a,b\n1,2,3\n", ["--header"], "the header has 2 columns"),
        (b'"1",2\n"3"\n', [], "row 2 has 1 fields"),
        (b"a,a\n1,2\n", ["--header"], "appears twice"),
        (b'{"a": 1}\n{oops\n', ["--dataset-format", "json"], "line 2 is not JSON"),
    ],
)
def test_bad_datasets_exit_2_with_a_message(
    tmp_path: Path, content: bytes | None, args: list[str], message: str
) -> None:
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_bytes(content)
    result = CliRunner().invoke(
        app, ["monitor", "baseline", "--dataset", str(path), "--out", str(tmp_path / "o"), *args]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
