"""`smlocal contract-test` as CI runs it: exit codes, JUnit XML, JSON, the ledger."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from smlocal.contracts import ledger
from smlocal.emulator.state import StateDir
from tests.conftest import REPO, SKLEARN_IMAGE, SKLEARN_MODEL, fixture_image

pytestmark = [pytest.mark.docker, pytest.mark.e2e]
SMLOCAL = str(Path(sys.executable).parent / "smlocal")
SPEC = REPO / "contracts" / "specs" / "sklearn-iris.yaml"


def smlocal(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SMLOCAL, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_sklearn_passes_writes_reports_and_records_a_pass(
    docker_images: None, smlocal_home: Path, tmp_path: Path
) -> None:
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    result = smlocal(
        "contract-test",
        SKLEARN_IMAGE,
        "--model",
        str(SKLEARN_MODEL),
        "--spec",
        str(SPEC),
        "--junit-xml",
        str(junit),
        "--json",
        str(report),
    )
    assert result.returncode == 0, result.stderr
    assert "contract passed" in result.stderr
    assert "ping.while-busy" in result.stdout  # the table
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["counts"]["errors"] == 0
    cases = ET.parse(junit).getroot().iter("testcase")
    assert {case.get("name") for case in cases} >= {"startup.healthy", "invocations.examples"}
    found = ledger.find_pass(
        data["image_id"], data["model_digest"], data["spec_digest"], state=StateDir(smlocal_home)
    )
    assert found is not None and found.image == SKLEARN_IMAGE


def test_contract_failure_exits_1_with_the_failing_check(
    docker_images: None, smlocal_home: Path, tmp_path: Path
) -> None:
    junit = tmp_path / "junit.xml"
    result = smlocal("contract-test", fixture_image("no-serve"), "--junit-xml", str(junit))
    assert result.returncode == 1, result.stderr
    assert "contract FAILED" in result.stderr
    failures = [
        case.get("name")
        for case in ET.parse(junit).getroot().iter("testcase")
        if case.find("failure") is not None
    ]
    assert failures == ["image.serve-argument"]
    assert not (smlocal_home / "contracts" / "passes").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "ping.nope"], "unknown check id(s) ping.nope"),
        (["--spec", "SPEC_PLACEHOLDER"], "examples.0.content_type"),
        (["--instance-type", "ml.nope.large"], "instance_type"),
    ],
)
def test_usage_errors_exit_2(
    smlocal_home: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text("examples:\n  - name: x\n    json: {}\n")
    args = [str(bad_spec) if a == "SPEC_PLACEHOLDER" else a for a in args]
    result = smlocal("contract-test", fixture_image("echo"), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_list_and_help_are_fast_and_complete() -> None:
    listed = smlocal("contract-test", "--list")
    assert listed.returncode == 0
    assert "lifecycle.sigterm" in listed.stdout and "image.env-credentials" in listed.stdout
    helped = smlocal("contract-test", "--help")
    assert helped.returncode == 0 and "Exit codes" in helped.stdout
