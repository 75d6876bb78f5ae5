"""Data capture on Docker with the reference sklearn image and a moto server for S3: the
records land under the documented keys, the SageMaker Python SDK reads them with its own code,
the sampling percentage holds, a stop flushes, and an unreachable S3 costs no request."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from tests.aws_fakes import FAKE_CREDENTIALS, moto_server
from tests.conftest import REPO, SKLEARN_IMAGE, SKLEARN_MODEL

pytestmark = pytest.mark.docker

SDK_PYTHON = REPO / ".venv-sdk" / "bin" / "python"
SDK_SCRIPT = REPO / "tests" / "e2e" / "sdk" / "sdk_capture.py"
SETTINGS = MonitorSettings(ping_interval_s=1, stop_grace_s=2)
WAIT = {"Delay": 0.5, "MaxAttempts": 240}
BUCKET = "capture-it"
ROWS = ["5.1,3.5,1.4,0.2", "6.7,3.0,5.2,2.3", "5.9,3.0,4.2,1.5"]
# {endpoint}/{variant}/yyyy/mm/dd/hh/{MM}-{SS}-{mmm}-{uuid}.jsonl (reference §E.2)
KEY = re.compile(
    r"^data-capture/(?P<endpoint>[^/]+)/AllTraffic/\d{4}/\d{2}/\d{2}/\d{2}/"
    r"\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl$"
)


class Clients:
    def __init__(self, url: str) -> None:
        plain = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        self.url = url
        self.sm: Any = boto3.client(
            "sagemaker", endpoint_url=url, region_name="us-east-1", config=plain
        )
        self.rt: Any = boto3.client(
            "sagemaker-runtime", endpoint_url=url, region_name="us-east-1", config=plain
        )

    def deploy(self, name: str, capture: dict[str, Any]) -> None:
        self.sm.create_model(
            ModelName=name,
            PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": str(SKLEARN_MODEL)},
        )
        self.sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large",
                 "InitialInstanceCount": 1}
            ],
            DataCaptureConfig=capture,
        )  # fmt: skip
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=name)

    def wait(self, *names: str) -> None:
        for name in names:
            self.sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)

    def metric(self, line_start: str) -> int:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        found = [line for line in text.splitlines() if line.startswith(line_start)]
        return int(found[0].rsplit(" ", 1)[1]) if found else 0


def _sdk(*args: str, env: dict[str, str]) -> Any:
    assert SDK_PYTHON.exists(), "the SDK's virtualenv is missing: run `make sdk-venv`"
    result = subprocess.run(
        [str(SDK_PYTHON), str(SDK_SCRIPT), *args],
        capture_output=True, text=True, timeout=180, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, dict[str, str]]]:
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with moto_server() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        env = {**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}
        yield s3, env


def _keys(s3: Any, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


# A sampled count outside mean +- 6.5 sigma has probability < 1e-10 for a correct sampler.
def _binomial_bounds(n: int, p: float, sigmas: float = 6.5) -> tuple[float, float]:
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return n * p - spread, n * p + spread


def test_sklearn_capture_lands_in_s3_and_the_sdk_reads_it(
    docker_backend: DockerBackend, tmp_path: Path, moto: tuple[Any, dict[str, str]]
) -> None:
    s3, env = moto
    destination = f"s3://{BUCKET}/data-capture"
    sdk_config = _sdk("config", destination, env=env)  # what the SDK's deploy() sends
    sampled_n, sampled_p = 300, 0.3
    with service_in_background(docker_backend, state=StateDir(tmp_path), settings=SETTINGS) as url:
        clients = Clients(url)
        clients.deploy("iris-cap", sdk_config)
        # No CaptureContentTypeHeader: every payload base64 (botocore's documented default);
        # only the requests; 30 % of them.
        clients.deploy("iris-sampled", {
            "InitialSamplingPercentage": int(sampled_p * 100), "DestinationS3Uri": destination,
            "CaptureOptions": [{"CaptureMode": "Input"}],
        })  # fmt: skip
        clients.wait("iris-cap", "iris-sampled")
        summary = clients.sm.describe_endpoint(EndpointName="iris-cap")["DataCaptureConfig"]
        assert summary == {
            "EnableCapture": True,
            "CaptureStatus": "Started",
            "CurrentSamplingPercentage": 100,
            "DestinationS3Uri": destination,
        }
        for i, row in enumerate(ROWS):
            answer = clients.rt.invoke_endpoint(
                EndpointName="iris-cap", Body=row, ContentType="text/csv", Accept="text/csv",
                InferenceId=f"row-{i}",
            )  # fmt: skip
            assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
        as_json = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]})
        clients.rt.invoke_endpoint(
            EndpointName="iris-cap", Body=as_json, ContentType="application/json"
        )
        for _ in range(sampled_n):
            clients.rt.invoke_endpoint(
                EndpointName="iris-sampled", Body=ROWS[0], ContentType="text/csv"
            )
    # The service stopped (as `smlocal server stop`): everything buffered is in S3 now.
    keys = _keys(s3, "data-capture/")
    assert keys and all(KEY.match(k) for k in keys), keys
    seen = _sdk("read", f"{destination}/iris-cap", env=env)
    records = seen["records"]
    assert len(records) == 4
    csv = sorted(
        (r for r in records if r["captureData"]["endpointInput"]["encoding"] == "CSV"),
        key=lambda r: r["eventMetadata"]["inferenceId"],
    )
    assert [r["captureData"]["endpointInput"]["data"] for r in csv] == ROWS
    assert [r["eventMetadata"]["inferenceId"] for r in csv] == ["row-0", "row-1", "row-2"]
    for record in csv:
        output = record["captureData"]["endpointOutput"]
        assert (output["mode"], output["encoding"]) == ("OUTPUT", "CSV")
        assert output["observedContentType"].startswith("text/csv")
        assert output["data"].strip() in ("setosa", "versicolor", "virginica"), output["data"]
        assert record["eventVersion"] == "0"
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["eventMetadata"]["inferenceTime"]
        )
    (as_json_record,) = [
        r for r in records if r["captureData"]["endpointInput"]["encoding"] == "JSON"
    ]
    assert as_json_record["captureData"]["endpointInput"]["data"] == as_json
    assert as_json_record["captureData"]["endpointOutput"]["encoding"] == "JSON"
    assert "predictions" in json.loads(as_json_record["captureData"]["endpointOutput"]["data"])
    assert "inferenceId" not in as_json_record["eventMetadata"]
    sampled = _sdk("read", f"{destination}/iris-sampled", env=env)["records"]
    low, high = _binomial_bounds(sampled_n, sampled_p)
    assert low < len(sampled) < high, len(sampled)
    for record in sampled:
        assert set(record["captureData"]) == {"endpointInput"}
        side = record["captureData"]["endpointInput"]
        assert side["encoding"] == "BASE64"
        assert side["data"] == "NS4xLDMuNSwxLjQsMC4y"  # base64 of ROWS[0]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_s3_down_requests_still_answer_and_the_drop_counter_rises(
    docker_backend: DockerBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{_closed_port()}")
    counter = 'smlocal_capture_dropped_total{endpoint="iris-down",reason="write_failed"}'
    with service_in_background(docker_backend, state=StateDir(tmp_path), settings=SETTINGS) as url:
        clients = Clients(url)
        clients.deploy("iris-down", {
            "InitialSamplingPercentage": 100, "DestinationS3Uri": f"s3://{BUCKET}/data-capture",
            "CaptureOptions": [{"CaptureMode": "InputAndOutput"}],
        })  # fmt: skip
        clients.wait("iris-down")
        for row in ROWS * 4:
            answer = clients.rt.invoke_endpoint(
                EndpointName="iris-down", Body=row, ContentType="text/csv"
            )
            assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
        deadline = time.monotonic() + 120
        while clients.metric(counter) < len(ROWS) * 4:
            assert time.monotonic() < deadline, "the drop counter never reached the requests"
            time.sleep(0.5)
        assert clients.metric(counter) == len(ROWS) * 4
        # And the endpoint goes on serving.
        clients.rt.invoke_endpoint(EndpointName="iris-down", Body=ROWS[1], ContentType="text/csv")
