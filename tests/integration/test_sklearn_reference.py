"""The reference sklearn image served by the emulator on real Docker, called as users call it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from smlocal.emulator.backend import LABEL_ENDPOINT
from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.spec import build_spec
from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL
from tests.harness import Serving, serving

SEED = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
CLASSES = {"setosa", "versicolor", "virginica"}


@pytest.fixture(scope="module")
def sklearn_endpoint(
    docker_backend: DockerBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serving]:
    spec = build_spec(
        name="sklearn-iris",
        variants=[
            {
                "image": SKLEARN_IMAGE,
                "model": str(SKLEARN_MODEL),
                "env": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
            }
        ],
        startup_timeout_s=120,
    )
    settings = MonitorSettings(host_cpus=docker_backend.host_cpus())
    with serving(spec, docker_backend, tmp_path_factory.mktemp("home"), settings) as handle:
        assert handle.status == "InService", handle.sink.statuses
        yield handle


def _check_seed_answer(answer: dict[str, Any]) -> None:
    (prediction,) = answer["predictions"]
    assert prediction["predicted_class"] == "setosa"
    assert prediction["predicted_class_index"] == 0
    assert set(prediction["probabilities"]) == CLASSES
    assert abs(sum(prediction["probabilities"].values()) - 1.0) < 1e-3
    assert prediction["probabilities"]["setosa"] > 0.9


def test_boto3_gets_the_reference_answer(sklearn_endpoint: Serving) -> None:
    client: Any = sklearn_endpoint.runtime_client()
    response = client.invoke_endpoint(
        EndpointName="sklearn-iris", Body=json.dumps(SEED), ContentType="application/json"
    )
    assert response["ContentType"].startswith("application/json")
    _check_seed_answer(json.loads(response["Body"].read()))


def test_csv_rows_are_accepted(sklearn_endpoint: Serving) -> None:
    client: Any = sklearn_endpoint.runtime_client()
    response = client.invoke_endpoint(
        EndpointName="sklearn-iris",
        Body=b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
        ContentType="text/csv",
    )
    predictions = json.loads(response["Body"].read())["predictions"]
    assert [p["predicted_class"] for p in predictions] == ["setosa", "virginica"]


def test_aws_cli_gets_the_reference_answer(sklearn_endpoint: Serving, tmp_path: Path) -> None:
    body = tmp_path / "payload.json"
    body.write_text(json.dumps(SEED))
    out = tmp_path / "out.json"
    aws = Path(sys.executable).parent / "aws"
    result = subprocess.run(
        [
            str(aws),
            "sagemaker-runtime",
            "invoke-endpoint",
            "--endpoint-url",
            sklearn_endpoint.url,
            "--no-sign-request",
            "--region",
            "us-east-1",
            "--endpoint-name",
            "sklearn-iris",
            "--content-type",
            "application/json",
            "--body",
            f"fileb://{body}",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["InvokedProductionVariant"] == "AllTraffic"
    _check_seed_answer(json.loads(out.read_text()))


def test_text_plain_is_a_model_error_with_415(sklearn_endpoint: Serving) -> None:
    client: Any = sklearn_endpoint.runtime_client()
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName="sklearn-iris", Body=b"hello", ContentType="text/plain")
    assert caught.value.response["OriginalStatusCode"] == 415


def test_malformed_json_is_a_model_error_with_400(sklearn_endpoint: Serving) -> None:
    client: Any = sklearn_endpoint.runtime_client()
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(
            EndpointName="sklearn-iris",
            Body=b'{"instances": [[1, 2]]',
            ContentType="application/json",
        )
    assert caught.value.response["OriginalStatusCode"] == 400


def test_7_mb_body_is_a_validation_error(sklearn_endpoint: Serving) -> None:
    client: Any = sklearn_endpoint.runtime_client()
    with pytest.raises(client.exceptions.ValidationError):
        client.invoke_endpoint(
            EndpointName="sklearn-iris", Body=b"1" * 7_000_000, ContentType="text/csv"
        )


def test_unknown_endpoint_is_a_validation_error(sklearn_endpoint: Serving) -> None:
    client: Any = sklearn_endpoint.runtime_client()
    with pytest.raises(client.exceptions.ValidationError) as caught:
        client.invoke_endpoint(EndpointName="other", Body=b"{}", ContentType="application/json")
    assert "Endpoint other of account" in caught.value.response["Error"]["Message"]


def test_container_runs_the_way_sagemaker_runs_it(sklearn_endpoint: Serving) -> None:
    client = docker.from_env()
    (container,) = client.containers.list(filters={"label": f"{LABEL_ENDPOINT}=sklearn-iris"})
    attrs = container.attrs
    assert attrs["Args"] == ["serve"] or attrs["Config"]["Cmd"] == ["serve"]
    (mount,) = [m for m in attrs["Mounts"] if m["Destination"] == "/opt/ml/model"]
    assert mount["RW"] is False
    host = attrs["HostConfig"]
    assert host["Privileged"] is False
    assert host["Memory"] == 8 * 1024**3  # ml.m5.large
    assert host["NanoCpus"] == 2 * 10**9
    (binding,) = host["PortBindings"]["8080/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    assert attrs["Config"]["Labels"]["smlocal.variant"] == "AllTraffic"
    assert "SAGEMAKER_MODEL_SERVER_WORKERS=1" in attrs["Config"]["Env"]
