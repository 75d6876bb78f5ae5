"""`smlocal serve --capture` as a user runs it: a foreground serve of the sklearn image records
its traffic into a relative directory, and stopping the serve writes every captured record."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL

pytestmark = [pytest.mark.docker, pytest.mark.e2e]
SMLOCAL = str(Path(sys.executable).parent / "smlocal")
ROWS = ["5.1,3.5,1.4,0.2", "6.7,3.0,5.2,2.3", "5.9,3.0,4.2,1.5"]


def smlocal(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SMLOCAL, *args], capture_output=True, text=True, timeout=180, check=False, cwd=cwd
    )


def test_serve_capture_records_the_traffic_and_flushes_on_stop(
    docker_images: None, smlocal_home: Path, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [SMLOCAL, "serve", SKLEARN_IMAGE, "--model", str(SKLEARN_MODEL), "--name", "cap-cli",
         "--port", "0", "--capture", "captured", "--capture-mode", "InputAndOutput"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "InService" not in smlocal("ps").stdout:
            assert time.monotonic() < deadline and process.poll() is None, "never InService"
            time.sleep(0.3)
        for row in ROWS:
            answer = smlocal("invoke", "cap-cli", "--body", row, "--content-type", "text/csv")
            assert answer.returncode == 0, answer.stderr
        process.send_signal(signal.SIGTERM)  # right away: the records are still buffered
        _, errors = process.communicate(timeout=90)
    finally:
        process.kill()
    assert process.returncode == 0, errors
    files = sorted((tmp_path / "captured" / "cap-cli" / "AllTraffic").rglob("*.jsonl"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert sorted(r["captureData"]["endpointInput"]["data"] for r in records) == sorted(ROWS)
    assert {r["captureData"]["endpointInput"]["encoding"] for r in records} == {"CSV"}
    assert all(r["captureData"]["endpointOutput"]["encoding"] == "JSON" for r in records)


def test_capture_flags_without_capture_are_a_usage_error(smlocal_home: Path) -> None:
    refused = smlocal("serve", SKLEARN_IMAGE, "--model", str(SKLEARN_MODEL), "--sampling", "50")
    assert refused.returncode == 2
    assert "--sampling: only with --capture DIR_OR_S3" in refused.stderr
    assert "Traceback" not in refused.stderr
