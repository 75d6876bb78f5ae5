"""Load-test building blocks without Locust or Docker: payloads, error kinds, search, advice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smlocal.loadtests.advice import advise
from smlocal.loadtests.errors import classify, parse_kind
from smlocal.loadtests.findmax import FindMaxSettings, find_max
from smlocal.loadtests.payloads import load_payloads, load_spec_payloads
from smlocal.loadtests.stats import StepStats, read_step


def test_jsonl_lines_are_bodies_or_envelopes(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"instances": [[1, 2]]}\n\n'
        '{"body": {"x": 1}, "custom_attributes": "status=500"}\n'
        '{"body": "5.1,3.5", "content_type": "text/csv"}\n'
        '{"body": 1, "other": 2}\n'
    )
    payloads = load_payloads(path, target_variant="B")
    assert [p.body for p in payloads] == [
        b'{"instances": [[1, 2]]}',
        b'{"x": 1}',
        b"5.1,3.5",
        b'{"body": 1, "other": 2}',
    ]
    assert payloads[1].headers() == {
        "Content-Type": "application/json",
        "X-Amzn-SageMaker-Custom-Attributes": "status=500",
        "X-Amzn-SageMaker-Target-Variant": "B",
    }
    assert payloads[2].content_type == "text/csv"


def test_plain_file_is_one_body_and_broken_lines_are_named(tmp_path: Path) -> None:
    single = tmp_path / "p.json"
    single.write_bytes(b'{"a": 1}\n')
    assert [p.body for p in load_payloads(single)] == [b'{"a": 1}\n']
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"a": 1}\n{nope\n')
    with pytest.raises(ValueError, match=r"b\.jsonl:2"):
        load_payloads(broken)


def test_spec_examples_become_payloads(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_bytes(b"1,2\n")
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "version: 1\n"
        "examples:\n"
        "  - {name: j, content_type: application/json, accept: text/csv, json: {x: [1]}}\n"
        "  - {name: c, content_type: text/csv, body_file: rows.csv, expect: {status: 201}}\n"
        "  - {name: bad, content_type: text/csv, body: 'a', expect: {status: 400}}\n"
        "  - {name: t, content_type: text/plain, body: hi}\n"
    )
    payloads = load_spec_payloads(spec, target_variant="B")
    assert [(p.name, p.body, p.content_type, p.accept) for p in payloads] == [
        ("j", b'{"x": [1]}', "application/json", "text/csv"),
        ("c", b"1,2\n", "text/csv", None),
        ("t", b"hi", "text/plain", None),
    ]  # the example expecting 400 is not load
    assert payloads[0].headers() == {
        "Content-Type": "application/json",
        "Accept": "text/csv",
        "X-Amzn-SageMaker-Target-Variant": "B",
    }
    toml = tmp_path / "s.toml"
    toml.write_text('[[examples]]\nname = "c"\ncontent_type = "text/csv"\nbody = "1,2"\n')
    assert [p.body for p in load_spec_payloads(toml)] == [b"1,2"]


def test_spec_examples_match_the_contract_parser() -> None:
    from smlocal.contracts.specfile import load_spec

    path = Path(__file__).parents[2] / "contracts" / "specs" / "sklearn-iris.yaml"
    expected = [
        (e.payload(), e.content_type, e.accept)
        for e in load_spec(path).examples
        if 200 <= e.expect.status < 300
    ]
    ours = [(p.body, p.content_type, p.accept) for p in load_spec_payloads(path)]
    assert ours == expected
    assert {p.content_type for p in load_spec_payloads(path)} == {"application/json", "text/csv"}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("s.yaml", "version: 1\nname: x\n", "no examples to send"),
        ("s.yaml", "examples:\n  - {name: e, json: 1, expect: {status: 404}}\n", "content_type"),
        (
            "s.yaml",
            "examples:\n  - {name: e, content_type: a/b, json: 1, expect: {status: 404}}\n",
            "no examples to send",
        ),
        ("s.yaml", "examples:\n  - {name: e, content_type: a/b}\n", "exactly one of body"),
        ("s.yaml", "examples:\n  - {name: e, content_type: a/b, body_file: nope.bin}\n", "nope"),
        ("s.yaml", "examples: [\n", "not valid YAML"),
        ("s.toml", "examples = [\n", "not valid TOML"),
        ("s.yaml", "- just\n- a list\n", "top level must be a mapping"),
        ("s.json", "{}", "expected a .yaml, .yml or .toml"),
    ],
)
def test_bad_specs_are_clear_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        load_spec_payloads(path)
    assert str(path) in str(caught.value)
    with pytest.raises(ValueError, match="cannot read spec"):
        load_spec_payloads(tmp_path / "missing.yaml")


def test_user_steps_parse_or_explain() -> None:
    import typer

    from smlocal.cli.loadtest import _parse_user_steps

    assert _parse_user_steps("1, 2,4,8") == (1, 2, 4, 8)
    for bad in ("1,,2", "0", "two", "1.5", "-1"):
        with pytest.raises(typer.BadParameter, match="positive whole numbers"):
            _parse_user_steps(bad)


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind"),
    [
        (200, {}, b"ok", None),
        (
            424,
            {"x-amzn-errortype": "ModelError"},
            b'{"OriginalStatusCode": 500}',
            "ModelError(500)",
        ),
        (400, {"X-Amzn-ErrorType": "ValidationError:http://x"}, b"{}", "ValidationError"),
        (400, {}, b'{"__type": "com.amazon#ThrottlingException"}', "Throttling"),
        (429, {}, b"", "Throttling"),
        (0, {}, b"", "ConnectionError"),
        (503, {"x-amzn-errortype": "ServiceUnavailable"}, b"", "ServiceUnavailable(503)"),
        (502, {}, b"<html>", "HTTP(502)"),
    ],
)
def test_error_kinds(status: int, headers: dict[str, str], body: bytes, kind: str | None) -> None:
    assert classify(status, headers, body) == kind


def test_locust_error_cells_parse_back_to_kinds() -> None:
    assert parse_kind("ModelError(500)") == "ModelError(500)"
    assert parse_kind("CatchResponseError('Throttling')") == "Throttling"


def _step(users: int, rps: float, p95: float, failures: int = 0) -> StepStats:
    errors = {"ModelError(500)": failures} if failures else {}
    return StepStats(users, 100, failures, rps, p95 / 2, p95, p95, p95 / 2, errors)


def test_find_max_stops_at_twice_the_unloaded_p95_confirmed_by_a_repeat() -> None:
    script = {
        1: _step(1, 100, 20),
        2: _step(2, 190, 30),
        4: _step(4, 260, 41),
        8: _step(8, 270, 90),
    }
    seen: list[int] = []

    def run(users: int) -> StepStats:
        seen.append(users)
        return script[users]

    result = find_max(run, FindMaxSettings(max_steps=6))
    assert seen == [1, 2, 4, 4]  # the breaking step runs twice before it counts
    assert result.latency_bound_ms == 40
    assert result.max_rps == 190  # the 4-user step broke the bound, twice
    assert "p95 41 ms > bound 40 ms at 4 users (twice in a row)" in result.stop_reason


def test_find_max_ignores_millisecond_noise() -> None:
    """A 4 ms p95 that turns 10 ms on a busy host is noise, not the container's limit: the
    default bound is at least 10 ms above the unloaded p95 (it was 8 ms, and the search
    stopped at step 2 with MAX_RPS from one user)."""
    script = {1: _step(1, 100, 4), 2: _step(2, 200, 10), 4: _step(4, 380, 12), 8: _step(8, 390, 40)}
    result = find_max(script.__getitem__, FindMaxSettings(max_steps=4))
    assert result.latency_bound_ms == 14
    assert result.max_rps == 380


def test_find_max_goes_on_when_the_repeat_keeps_the_bound() -> None:
    answers = iter([_step(1, 100, 20), _step(2, 190, 55), _step(2, 195, 30), _step(4, 300, 35)])
    result = find_max(lambda users: next(answers), FindMaxSettings(max_steps=3))
    assert [s.p95_ms for s in result.steps] == [20, 55, 30, 35]
    assert result.max_rps == 300
    assert "without breaking the bound" in result.stop_reason


def test_find_max_stops_at_the_first_error_and_obeys_an_slo() -> None:
    script = {1: _step(1, 100, 5), 2: _step(2, 200, 6, failures=1)}
    result = find_max(script.__getitem__, FindMaxSettings(latency_slo_ms=50))
    assert result.latency_bound_ms == 50
    assert result.max_rps == 100
    assert "ModelError(500) x1" in result.stop_reason


def test_advice_follows_aws_rule() -> None:
    advice = advise(200.0, "ml.m5.large", peak_rps=1000, base_rps=150)
    assert advice.target_invocations_per_instance == 200.0 * 0.5 * 60
    assert (advice.min_instances, advice.max_instances) == (2, 10)
    assert advice.cost_per_hour_usd == (0.23, 1.15)
    assert "us-east-1" in advice.price_note
    unknown = advise(10.0, "ml.g6.xlarge")
    assert unknown.cost_per_hour_usd is None
    assert (unknown.min_instances, unknown.max_instances) == (1, 1)
    assert advise(10.0, "ml.g6.xlarge", price_override=2.0).cost_per_hour_usd == (2.0, 2.0)


def test_stats_come_from_the_aggregated_row(tmp_path: Path) -> None:
    header = (
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
        "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
        "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
    )
    (tmp_path / "s_final_stats.csv").write_text(
        f"{header}\nPOST,/x,10,2,3,3.5,1,9,10,4.5,0.9,3,3,4,4,5,6,7,8,9,9,9\n"
        ",Aggregated,10,2,3,3.5,1,9,10,4.5,0.9,3,3,4,4,5,6,7,8,9,9,9\n"
    )
    (tmp_path / "s_final_failures.csv").write_text(
        "Method,Name,Error,Occurrences\nPOST,/x,ModelError(500),2\n"
    )
    step = read_step(tmp_path / "s", users=3)
    assert (step.requests, step.failures, step.rps, step.p95_ms) == (10, 2, 4.5, 6.0)
    assert step.errors == {"ModelError(500)": 2}
    assert json.dumps(step.errors)


def test_the_plot_reads_one_step_and_a_repeated_step(tmp_path: Path) -> None:
    """Steps sit side by side labelled by users (a repeat says so), not on a log2 axis whose
    ticks read 2^0, 2^1; the legend is below the axes, MAX_RPS in the title."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from smlocal.loadtests.report import plot_steps

    steps = [_step(1, 100, 20), _step(2, 190, 30), _step(2, 195, 45)]
    captured: list[Any] = []
    real_close = plt.close
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plt, "close", captured.append)
        plot_steps(steps, tmp_path / "many.png", bound_ms=40, best=steps[1])
        plot_steps(steps[:1], tmp_path / "one.png", bound_ms=None, best=steps[0])
    many, one = captured
    rps_axis = many.axes[0]
    assert [t.get_text() for t in rps_axis.get_xticklabels()] == ["1", "2", "2 (again)"]
    assert rps_axis.get_xscale() == "linear"
    assert "MAX_RPS 190.0 requests/s at 2 users" in rps_axis.get_title()
    assert many.legends and not rps_axis.get_legend()  # the figure's legend, off the axes
    assert "at 1 user (dark bar)" in one.axes[0].get_title()
    for figure in captured:
        real_close(figure)
    for name in ("many.png", "one.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
