"""`smlocal monitor` as a user runs it, and the SageMaker Python SDK v2 reading its files.

The installed ``smlocal`` writes a baseline and a violations report; the SDK's own classes
(in ``.venv-sdk``, through a moto S3 as ``from_file_path`` uploads) read all of them back.
No Docker: monitoring reads files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.aws_fakes import FAKE_CREDENTIALS, moto_server
from tests.conftest import REPO
from tests.monitor_data import write_capture
from tests.unit.test_monitor_run import _rows

pytestmark = [pytest.mark.e2e]

SDK_PYTHON = REPO / ".venv-sdk" / "bin" / "python"
SMLOCAL = str(Path(sys.executable).parent / "smlocal")


def test_the_sdk_reads_what_smlocal_monitor_writes(tmp_path: Path) -> None:
    assert SDK_PYTHON.exists(), "the SDK's virtualenv is missing: run `make sdk-venv`"
    train = tmp_path / "train.csv"
    train.write_text("\n".join(",".join(r) for r in _rows(5000, seed=1)) + "\n")
    baseline = subprocess.run(
        [SMLOCAL, "monitor", "baseline", "--dataset", str(train), "--out", str(tmp_path / "b")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert baseline.returncode == 0, baseline.stderr
    rows = [r[:-1] for r in _rows(500, seed=2, shift={3: 1.0})]
    write_capture(tmp_path / "cap", "ep", rows, datetime(2026, 12, 1, 9, tzinfo=UTC))
    run = subprocess.run(
        [SMLOCAL, "monitor", "run", "--capture", str(tmp_path / "cap"), "--baseline",
         str(tmp_path / "b"), "--out", str(tmp_path / "report")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "baseline_drift_check" in run.stdout and "missing_column_check" in run.stdout

    with moto_server() as url:
        env = {**os.environ, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": url,
               "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}  # fmt: skip
        read = subprocess.run(
            [str(SDK_PYTHON), str(REPO / "tests" / "e2e" / "sdk" / "sdk_model_monitor.py"),
             str(tmp_path / "b"), str(tmp_path / "report")],
            capture_output=True, text=True, timeout=300, env=env, check=False,
        )  # fmt: skip
    assert read.returncode == 0, read.stderr[-3000:]
    seen = json.loads(read.stdout.strip().splitlines()[-1])
    assert seen["sdk"].startswith("2.")
    assert seen["statistics_uri"].startswith("s3://smlocal-monitor-sdk/")
    assert seen["features"] == {
        "_c0": "Fractional", "_c1": "Fractional", "_c2": "Fractional", "_c3": "Fractional",
        "_c4": "Integral", "_c5": "String",
    }  # fmt: skip
    assert seen["item_count"] == 5000 and seen["window_items"] == 500
    assert seen["kll_buckets"] == [10] * 5
    assert seen["comparison_method"] == "Robust"
    assert seen["override"] == {"evaluate_constraints": "Disabled"}
    assert sorted(seen["violations"]) == [
        ["_c3", "baseline_drift_check"], ["_c5", "missing_column_check"],
    ]  # fmt: skip
