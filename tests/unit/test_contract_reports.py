"""Reports and the ledger: JUnit for CI, JSON with measurements, passes keyed by digests."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from smlocal.contracts import ledger
from smlocal.contracts.model import CheckInfo, CheckResult, Outcome, Severity, Status, SuiteReport
from smlocal.contracts.report import junit_xml, write_json
from smlocal.emulator.state import StateDir

ERR = CheckInfo("ping.latency", "t", Severity.ERROR, "rule")
WARN = CheckInfo("image.env-credentials", "t", Severity.WARNING, "rule")
NA = CheckInfo("invocations.examples", "t", Severity.ERROR, "rule")


def report(*results: tuple[CheckInfo, Outcome], complete: bool = True) -> SuiteReport:
    return SuiteReport(
        image="img:1",
        image_id="sha256:img",
        model="m.tar.gz",
        model_digest="sha256:model",
        spec_path=None,
        spec_digest="sha256:spec",
        instance_type="ml.m5.large",
        results=[CheckResult(info, outcome, 0.5) for info, outcome in results],
        complete=complete,
    )


def test_only_error_failures_fail_the_run_and_junit() -> None:
    warned = report(
        (ERR, Outcome.passed("ok", p50_ms=1.0)),
        (WARN, Outcome.failed("creds", ["ENV X=<3 characters, not shown>"])),
        (NA, Outcome.not_applicable("no examples")),
    )
    assert warned.passed
    suite = ET.fromstring(junit_xml(warned)).find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and suite.get("skipped") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert "WARNING" in (cases["image.env-credentials"].findtext("system-out") or "")
    assert cases["invocations.examples"].find("skipped") is not None

    failed = report((ERR, Outcome.failed("slow", ["ping 3: no answer"])))
    assert not failed.passed
    failure = ET.fromstring(junit_xml(failed)).find("testsuite/testcase/failure")
    assert failure is not None and "ping 3: no answer" in (failure.text or "")


def test_json_keeps_every_measurement(tmp_path: Path) -> None:
    write_json(report((ERR, Outcome.passed("ok", p50_ms=1.5, max_ms=2.0))), tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["checks"][0]["measurements"] == {"p50_ms": 1.5, "max_ms": 2.0}
    assert data["counts"]["passed"] == 1 and data["passed"] is True


def test_ledger_records_complete_passes_only(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    with pytest.raises(ValueError, match="complete run"):
        ledger.record_pass(report((ERR, Outcome.failed("x", []))), state)
    with pytest.raises(ValueError, match="complete run"):
        ledger.record_pass(report((ERR, Outcome.passed("ok")), complete=False), state)
    assert ledger.find_pass("sha256:img", "sha256:model", state=state) is None

    record = ledger.record_pass(report((ERR, Outcome.passed("ok"))), state)
    assert ledger.find_pass("sha256:img", "sha256:model", "sha256:spec", state=state) == record
    assert ledger.find_pass("sha256:img", "sha256:model", state=state) == record  # any spec
    assert ledger.find_pass("sha256:img", "sha256:model", "sha256:other", state=state) is None
    assert ledger.find_pass("sha256:other", "sha256:model", state=state) is None


def test_status_values_are_stable() -> None:
    # JSON consumers and promote read these strings.
    assert [str(s) for s in Status] == ["passed", "failed", "not_applicable", "skipped"]


def test_record_if_pass_decides_what_counts(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    assert ledger.record_if_pass(report((ERR, Outcome.failed("x", []))), state) is None
    partial = report((ERR, Outcome.passed("ok")), complete=False)
    assert ledger.record_if_pass(partial, state) is None
    assert ledger.find_pass("sha256:img", "sha256:model", state=state) is None
    record = ledger.record_if_pass(report((ERR, Outcome.passed("ok"))), state)
    assert record is not None
    assert ledger.find_pass("sha256:img", "sha256:model", state=state) == record
