"""A load test against a container that answers 500 for a share of requests counts them
as ModelError(500), with the same counts as Locust's own failures table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from smlocal.emulator.backend import ContainerBackend
from smlocal.emulator.spec import build_spec
from smlocal.loadtests import LoadTestOptions, LocustTarget, RunInfo, run_loadtest
from tests.conftest import fixture_image
from tests.harness import serving


def test_container_500s_are_model_errors_with_counts(
    docker_backend: ContainerBackend, tmp_path: Path
) -> None:
    payloads = tmp_path / "mixed.jsonl"
    lines = [{"n": 1}, {"n": 2}, {"n": 3}, {"body": {"n": 4}, "custom_attributes": "status=500"}]
    payloads.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    spec = build_spec(name="lt-errors", variants=[{"image": fixture_image("echo")}])
    with serving(spec, docker_backend, tmp_path / "state") as endpoint:
        target = LocustTarget(host=endpoint.url, payload=payloads, endpoint="lt-errors")
        info = RunInfo("lt-errors", "local", endpoint.url, "fixed", "ml.m5.large", 1, 0)
        outcome = run_loadtest(
            target, info, LoadTestOptions(report_dir=tmp_path / "report", users=2, duration_s=3)
        )
    summary = json.loads(outcome.summary_path.read_text())
    step = summary["steps"][0]
    assert set(summary["errors"]) == {"ModelError(500)"}
    model_errors = summary["errors"]["ModelError(500)"]
    # Every 4th payload asks for a 500: the shared cycle gives it exactly a quarter (± users).
    assert abs(model_errors - step["requests"] / 4) <= 2
    assert model_errors == step["failures"] == summary["totals"]["failures"] > 50
    with (tmp_path / "report" / "steps" / "01-u2_final_failures.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["Error"], int(r["Occurrences"])) for r in rows] == [
        ("ModelError(500)", model_errors)
    ]
    assert (tmp_path / "report" / "report.html").read_text().count("ModelError(500)") >= 1
