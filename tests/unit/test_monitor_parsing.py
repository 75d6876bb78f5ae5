"""Hypothesis: whatever capture records or baseline files a user has, `monitor run` gives a
result or a MonitorInputError with a message — never another exception.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smlocal.monitor import CaptureWindow, MonitorInputError, MonitorRun, run_baseline, run_monitor
from tests.monitor_data import capture_key

HOUR = datetime(2026, 12, 2, 5, tzinfo=UTC)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
_payload = st.one_of(
    _json.map(json.dumps),
    st.text(max_size=40),
    st.sampled_from(["a,\x00b", '"open,quote', "1,2\n3", "[1, 2", '{"instances": []}', "NaN"]),
    st.lists(st.lists(st.text(max_size=5), min_size=1, max_size=4), min_size=1, max_size=3).map(
        lambda rows: "\n".join(",".join(r) for r in rows)
    ),
)


@st.composite
def _part(draw: st.DrawFn) -> Any:
    data = draw(_payload)
    encoding = draw(st.sampled_from(["CSV", "JSON", "BASE64", "XML", None]))
    if encoding == "BASE64" and draw(st.booleans()):
        data = base64.b64encode(data.encode()).decode()
    part: dict[str, Any] = {"data": data, "encoding": encoding}
    part["observedContentType"] = draw(st.sampled_from(["text/csv", "application/json", "x/y"]))
    return draw(st.one_of(st.just(part), _json))


@st.composite
def _record(draw: st.DrawFn) -> Any:
    capture = {"endpointInput": draw(_part())}
    if draw(st.booleans()):
        capture["endpointOutput"] = draw(_part())
    when = draw(st.sampled_from(["2026-12-02T05:10:00Z", "yesterday", 5, None]))
    record = {"captureData": capture, "eventMetadata": {"eventId": "e", "inferenceTime": when}}
    return draw(st.one_of(st.just(record), _json))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("b")
    (root / "d.csv").write_text("1,a,2.5\n2,b,3.5\n3,a,\n")
    run_baseline(root / "d.csv", root / "b")
    return root / "b"


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(_record(), min_size=1, max_size=6),
    raw=st.lists(st.text(max_size=20), max_size=2),
    side=st.sampled_from(["input", "output", "both"]),
)
def test_any_capture_records_run_or_say_why(
    baseline: Path, tmp_path: Path, records: list[Any], raw: list[str], side: str
) -> None:
    path = tmp_path / "cap" / capture_key("ep", HOUR)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*(json.dumps(r) for r in records), *raw]) + "\n")
    window = CaptureWindow(str(tmp_path / "cap"), capture_data=side, start=HOUR)
    try:
        result = run_monitor(MonitorRun(window, baseline, tmp_path / "out"))
    except MonitorInputError as error:
        assert str(error)
        return
    assert result.violations_file.is_file()
    json.loads(result.statistics_file.read_text())


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    constraints=st.one_of(
        _json,
        st.fixed_dictionaries(
            {"features": st.lists(st.dictionaries(st.sampled_from(
                ["name", "inferred_type", "completeness", "string_constraints", "num_constraints",
                 "monitoringConfigOverrides"]), _json | st.sampled_from(["_c0", "Integral"]),
            ), max_size=3)},
            optional={"monitoring_config": _json},
        ),
    ),
    statistics=st.one_of(_json, st.fixed_dictionaries({"features": st.lists(_json, max_size=3)})),
)  # fmt: skip
def test_any_baseline_files_run_or_say_why(
    baseline: Path, tmp_path: Path, constraints: Any, statistics: Any
) -> None:
    base = tmp_path / "base"
    base.mkdir(exist_ok=True)
    (base / "constraints.json").write_text(json.dumps(constraints))
    (base / "statistics.json").write_text(json.dumps(statistics))
    path = tmp_path / "cap" / capture_key("ep", HOUR)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"captureData": {"endpointInput": {"data": "1,a,2.5", "encoding": "CSV"}}}
    path.write_text(json.dumps(line) + "\n")
    try:
        run_monitor(MonitorRun(CaptureWindow(str(tmp_path / "cap")), base, tmp_path / "out"))
    except MonitorInputError as error:
        assert str(error)
