"""`smlocal contract-test` as CI runs it: exit codes, JUnit XML, JSON, the ledger."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
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
        (["--instance-type", "ml.nope.large"], "ml.nope.large"),
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


def _run_containers(label: str) -> list[str]:
    found = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={label}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.split()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_during_bring_up_removes_its_container_and_exits_130(
    docker_images: None, smlocal_home: Path, signum: signal.Signals
) -> None:
    # never-listens keeps bring-up waiting for the whole startup window.
    process = subprocess.Popen(
        [SMLOCAL, "contract-test", fixture_image("never-listens")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    mine = f"smlocal.contract-pid={process.pid}"
    try:
        deadline = time.monotonic() + 60
        while not _run_containers(mine) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        assert _run_containers(mine), "the run's container never appeared with its run label"
        time.sleep(0.5)  # well inside the health wait
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted ({signum.name}) during bring-up"), stderr
    assert "nothing was left" in last
    assert _run_containers(mine) == []


def _leave_container(labels: dict[str, str]) -> str:
    args = [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    started = subprocess.run(
        ["docker", "run", "-d", *args, fixture_image("never-listens"), "serve"],
        capture_output=True,
        text=True,
        check=True,
    )
    return started.stdout.strip()


def test_a_run_sweeps_containers_of_dead_runs_and_nothing_else(
    docker_images: None, smlocal_home: Path
) -> None:
    from smlocal.contracts.cleanup import (
        LABEL_HOST,
        LABEL_PID,
        LABEL_RUN,
        LABEL_STARTED,
        process_start,
    )

    gone = subprocess.Popen(["true"])
    gone.wait()  # a PID whose process has exited
    host, me = socket.gethostname(), os.getpid()
    started = process_start(me) or "0"
    cases = {
        "dead": {LABEL_RUN: "deadrun00001", LABEL_PID: str(gone.pid), LABEL_HOST: host},
        "reused-pid": {
            LABEL_RUN: "deadrun00002",
            LABEL_PID: str(me),
            LABEL_HOST: host,
            LABEL_STARTED: "1",  # this PID now belongs to a process started later
        },
        "live": {LABEL_RUN: "liverun00001", LABEL_PID: str(me), LABEL_HOST: host}
        | {LABEL_STARTED: started},
        "other-host": {LABEL_RUN: "otherhost001", LABEL_PID: str(gone.pid)}
        | {LABEL_HOST: "some-other-machine"},
        "service": {"smlocal.session": "service-sweeptest", "smlocal.endpoint": "kept"},
    }
    ids = {name: _leave_container(labels) for name, labels in cases.items()}
    try:
        result = smlocal("contract-test", fixture_image("echo"), "--only", "image.size")
        assert result.returncode == 0, result.stderr
        assert "removed 2 container(s) left by earlier interrupted contract-test runs" in (
            " ".join(result.stderr.split())
        )
        remaining = subprocess.run(
            ["docker", "ps", "-aq", "--no-trunc"], capture_output=True, text=True, check=True
        ).stdout.split()
        kept = {name for name, cid in ids.items() if cid in remaining}
        assert kept == {"live", "other-host", "service"}
    finally:
        subprocess.run(["docker", "rm", "-f", *ids.values()], capture_output=True, check=False)
