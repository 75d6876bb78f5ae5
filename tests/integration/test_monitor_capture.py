"""The whole recipe on Docker: the reference sklearn image behind the local service captures its
traffic (DataCaptureConfig to a local directory), and `smlocal monitor run` reads what capture
wrote: traffic like the training data passes, traffic with one feature shifted by one standard
deviation is flagged for that feature alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from typer.testing import CliRunner

from smlocal.cli import app
from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from smlocal.monitor import run_baseline
from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL

pytestmark = pytest.mark.docker

SETTINGS = MonitorSettings(ping_interval_s=1, stop_grace_s=2)
WAIT = {"Delay": 0.5, "MaxAttempts": 240}


def _iris_like(n: int, seed: int) -> np.ndarray[Any, Any]:
    from sklearn.datasets import load_iris

    rng = np.random.default_rng(seed)
    data = load_iris().data
    rows = data[rng.integers(0, len(data), n)]
    return np.round(rows + rng.normal(0, 0.05, rows.shape), 2)  # type: ignore[no-any-return]


def test_captured_traffic_is_monitored(docker_backend: DockerBackend, tmp_path: Path) -> None:
    train = _iris_like(3000, seed=1)
    (tmp_path / "train.csv").write_text("\n".join(",".join(map(str, r)) for r in train) + "\n")
    run_baseline(tmp_path / "train.csv", tmp_path / "baseline")
    capture_dir = tmp_path / "capture"
    sepal_width_std = float(train[:, 1].std())
    traffic = {"iris-ok": _iris_like(300, seed=2), "iris-drift": _iris_like(300, seed=3)}
    traffic["iris-drift"][:, 1] += sepal_width_std
    plain = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    with service_in_background(docker_backend, state=StateDir(tmp_path), settings=SETTINGS) as url:
        sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", config=plain)
        rt = boto3.client(
            "sagemaker-runtime", endpoint_url=url, region_name="us-east-1", config=plain
        )
        for name in traffic:
            sm.create_model(
                ModelName=name,
                PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": str(SKLEARN_MODEL)},
            )
            sm.create_endpoint_config(
                EndpointConfigName=name,
                ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name,
                                     "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
                DataCaptureConfig={
                    "InitialSamplingPercentage": 100, "DestinationS3Uri": str(capture_dir),
                    "CaptureOptions": [{"CaptureMode": "Input"}],
                    "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
                },
            )  # fmt: skip
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        for name, rows in traffic.items():
            sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)
            for row in rows:
                rt.invoke_endpoint(
                    EndpointName=name, Body=",".join(map(str, row)), ContentType="text/csv"
                )
    # The service stopped: every buffered record is written.
    runs = {}
    for name in traffic:
        runs[name] = CliRunner().invoke(
            app, ["monitor", "run", "--capture", str(capture_dir / name), "--baseline",
                  str(tmp_path / "baseline"), "--out", str(tmp_path / f"report-{name}")],
        )  # fmt: skip
    assert runs["iris-ok"].exit_code == 0, runs["iris-ok"].output
    assert "no violations in 300 records" in runs["iris-ok"].output
    assert runs["iris-drift"].exit_code == 1, runs["iris-drift"].output
    violations = (tmp_path / "report-iris-drift" / "constraint_violations.json").read_text()
    assert violations.count('"constraint_check_type"') == 1
    assert '"feature_name" : "_c1"' in violations and "baseline_drift_check" in violations
    assert (tmp_path / "report-iris-drift" / "drift__c1.png").is_file()
