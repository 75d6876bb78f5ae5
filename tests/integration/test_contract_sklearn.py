"""The reference sklearn image keeps the contract: zero errors, every measurement, a ledger pass."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from smlocal.contracts import ledger
from smlocal.contracts.model import Status
from smlocal.contracts.report import write_json, write_junit
from smlocal.contracts.runner import SuiteOptions, run_suite
from smlocal.emulator.state import StateDir
from tests.conftest import REPO, SKLEARN_IMAGE, SKLEARN_MODEL

SPEC = REPO / "contracts" / "specs" / "sklearn-iris.yaml"


def test_sklearn_reference_passes_with_zero_errors(docker_images: None, tmp_path: Path) -> None:
    state = StateDir(tmp_path / "home")
    report = run_suite(
        SuiteOptions(image=SKLEARN_IMAGE, model=str(SKLEARN_MODEL), spec_path=SPEC, state=state)
    )
    failed = {r.check.id: r.outcome.evidence for r in report.results if r.status == Status.FAILED}
    assert failed == {}
    assert report.passed and report.complete
    # With a spec that has examples, network isolation and a model, every check applies.
    assert {r.status for r in report.results} == {Status.PASSED}
    healthy = report.result("startup.healthy")
    assert healthy is not None and 0 < healthy.outcome.measurements["time_to_healthy_s"] < 60
    assert report.model_digest.startswith("sha256:") and report.image_id.startswith("sha256:")

    write_json(report, tmp_path / "report.json")
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["passed"] is True
    assert data["checks"][0]["measurements"]  # every check carries its measurements
    write_junit(report, tmp_path / "junit.xml")
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    assert suite.get("tests") == str(len(report.results))

    record = ledger.record_pass(report, state)
    found = ledger.find_pass(report.image_id, report.model_digest, report.spec_digest, state=state)
    assert found == record
    assert ledger.find_pass(report.image_id, "sha256:other", state=state) is None
