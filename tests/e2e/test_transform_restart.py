"""A transform job running when `smlocal server` is SIGKILLed: at the next start the job is
Failed (not resumed) and the containers the killed service left are swept by their label."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from smlocal.emulator.service.process import read_service_record
from smlocal.emulator.state import StateDir, process_alive
from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

SMLOCAL = str(Path(sys.executable).parent / "smlocal")


def _start() -> tuple[str, Any]:
    started = subprocess.run(
        [SMLOCAL, "server", "--port", "0", "--detach"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip().splitlines()[-1]
    plain = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    return url, boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", config=plain)


def _job_containers() -> list[Any]:
    return docker.from_env().containers.list(
        all=True, ignore_removed=True, filters={"label": "smlocal.transform-job=killed"}
    )


def test_a_job_of_a_killed_service_is_failed_and_its_containers_swept(
    docker_images: None, smlocal_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    rows = "".join(f"5.{i % 9},3.5,1.4,0.2\n" for i in range(200_000))
    (tmp_path / "in" / "rows.csv").write_text(rows)
    _, sm = _start()
    sm.create_model(
        ModelName="killed",
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": str(SKLEARN_MODEL)},
    )
    sm.create_transform_job(
        TransformJobName="killed",
        ModelName="killed",
        BatchStrategy="SingleRecord",
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(tmp_path / "in")}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": str(tmp_path / "out")},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        described = sm.describe_transform_job(TransformJobName="killed")
        if described.get("TransformStartTime"):
            break
        time.sleep(0.2)
    assert described["TransformJobStatus"] == "InProgress"
    record = read_service_record(StateDir(smlocal_home))
    assert record is not None
    os.kill(record.pid, signal.SIGKILL)
    while process_alive(record.pid):
        time.sleep(0.05)
    assert [c.status for c in _job_containers()] == ["running"]  # the kill left it behind

    _, sm = _start()
    try:
        described = sm.describe_transform_job(TransformJobName="killed")
        assert described["TransformJobStatus"] == "Failed"
        assert "not resumed" in described["FailureReason"]
        deadline = time.monotonic() + 60
        while _job_containers() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _job_containers() == []
        assert not (tmp_path / "out" / "rows.csv.out").exists()
    finally:
        subprocess.run([SMLOCAL, "server", "stop"], capture_output=True, timeout=120, check=False)
