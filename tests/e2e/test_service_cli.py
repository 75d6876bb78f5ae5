"""`smlocal server` as a user runs it, called by the AWS CLI and boto3 unchanged, on Docker.

The AWS CLI runs AWS's standard BYOC deployment flow (model from S3 in a moto server) against
the service; boto3 checks the restart after SIGKILL. Everything runs real containers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from smlocal.emulator.backend import LABEL_ENDPOINT
from tests.aws_fakes import FAKE_CREDENTIALS, moto_server
from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL, fixture_image
from tests.harness import RequestLoop

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

BIN = Path(sys.executable).parent
SMLOCAL = str(BIN / "smlocal")
AWS = str(BIN / "aws")
IRIS_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def run(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def containers_of(name: str) -> list[Any]:
    """This test's service's containers of endpoint ``name`` (running or exited); another
    smlocal on the machine may run an endpoint of the same name."""
    home = Path(os.environ["SMLOCAL_HOME"])
    service_id = (home / "service" / "id").read_text().strip()
    return docker.from_env().containers.list(
        ignore_removed=True,
        all=True,
        filters={"label": [f"{LABEL_ENDPOINT}={name}", f"smlocal.session={service_id}"]},
    )


@pytest.fixture
def service_env(smlocal_home: Path) -> Iterator[dict[str, str]]:
    """A running `smlocal server -d` on a free port; its env has AWS_ENDPOINT_URL pointed at it."""
    with moto_server() as moto:
        env = {**os.environ, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL_S3": moto}
        started = run(SMLOCAL, "server", "--port", "0", "--detach", env=env)
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        env["SMLOCAL_URL"] = url
        env["AWS_ENDPOINT_URL_SAGEMAKER"] = url
        env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = url
        try:
            yield env
        finally:
            stopped = run(SMLOCAL, "server", "stop", env=env)
            assert stopped.returncode == 0, stopped.stderr
            assert_nothing_left(smlocal_home)


def assert_nothing_left(home: Path) -> None:
    """No container of this service, running or exited, once it has stopped."""
    service_id = (home / "service" / "id").read_text().strip()
    left = docker.from_env().containers.list(
        ignore_removed=True, all=True, filters={"label": f"smlocal.session={service_id}"}
    )
    assert not left, [f"{c.name} {c.status}" for c in left]


def sagemaker(env: dict[str, str]) -> Any:
    return boto3.client(
        "sagemaker",
        endpoint_url=env["SMLOCAL_URL"],
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )


def wait_in_service(env: dict[str, str], name: str) -> None:
    sagemaker(env).get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 240}
    )


def aws(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = run(AWS, *args, "--endpoint-url", env["SMLOCAL_URL"], "--region", "us-east-1", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else {}


def test_aws_cli_byoc_flow_with_an_s3_model(service_env: dict[str, str], tmp_path: Path) -> None:
    env = service_env
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="models")
    s3.upload_file(str(SKLEARN_MODEL), "models", "iris/model.tar.gz")
    aws(
        env,
        "sagemaker",
        "create-model",
        "--model-name",
        "iris",
        "--primary-container",
        f"Image={SKLEARN_IMAGE},ModelDataUrl=s3://models/iris/model.tar.gz",
        "--execution-role-arn",
        "arn:aws:iam::000000000000:role/smlocal",
    )
    variants = [
        {"VariantName": name, "ModelName": "iris", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}
        for name in ("A", "B")
    ]  # fmt: skip
    aws(
        env,
        "sagemaker",
        "create-endpoint-config",
        "--endpoint-config-name",
        "iris-config",
        "--production-variants",
        json.dumps(variants),
    )
    created = aws(
        env, "sagemaker", "create-endpoint", "--endpoint-name", "iris", "--endpoint-config-name",
        "iris-config",
    )  # fmt: skip
    assert created["EndpointArn"].endswith(":endpoint/iris")
    # The CLI's waiter polls every 30 s; wait with a shorter delay first, then let it confirm.
    wait_in_service(env, "iris")
    aws(env, "sagemaker", "wait", "endpoint-in-service", "--endpoint-name", "iris")
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(IRIS_ROW))
    answer = tmp_path / "answer.json"
    invoked = aws(
        env, "sagemaker-runtime", "invoke-endpoint", "--endpoint-name", "iris", "--body",
        f"fileb://{payload}", "--content-type", "application/json", str(answer),
    )  # fmt: skip
    assert invoked["ContentType"] == "application/json"
    assert json.loads(answer.read_text())["predictions"][0]["predicted_class"] == "setosa"
    aws(
        env, "sagemaker", "update-endpoint-weights-and-capacities", "--endpoint-name", "iris",
        "--desired-weights-and-capacities", "VariantName=A,DesiredWeight=70",
        "VariantName=B,DesiredWeight=30",
    )  # fmt: skip
    wait_in_service(env, "iris")
    described = aws(env, "sagemaker", "describe-endpoint", "--endpoint-name", "iris")
    assert [(v["VariantName"], v["CurrentWeight"]) for v in described["ProductionVariants"]] == [
        ("A", 70.0),
        ("B", 30.0),
    ]
    aws(env, "sagemaker", "delete-endpoint", "--endpoint-name", "iris")
    aws(env, "sagemaker", "wait", "endpoint-deleted", "--endpoint-name", "iris")
    aws(env, "sagemaker", "delete-endpoint-config", "--endpoint-config-name", "iris-config")
    aws(env, "sagemaker", "delete-model", "--model-name", "iris")
    assert aws(env, "sagemaker", "list-endpoints")["Endpoints"] == []
    assert not containers_of("iris")


def test_failed_endpoint_explains_itself(service_env: dict[str, str]) -> None:
    sm = sagemaker(service_env)
    sm.create_model(ModelName="broken", PrimaryContainer={"Image": fixture_image("exit-at-start")})
    sm.create_endpoint_config(
        EndpointConfigName="broken",
        ProductionVariants=[
            {"VariantName": "A", "ModelName": "broken", "InstanceType": "ml.m5.large",
             "InitialInstanceCount": 1}
        ],
    )  # fmt: skip
    sm.create_endpoint(EndpointName="broken", EndpointConfigName="broken")
    with pytest.raises(Exception, match="Failed"):
        wait_in_service(service_env, "broken")
    reason = sm.describe_endpoint(EndpointName="broken")["FailureReason"]
    assert "exited with code 3" in reason
    assert "failing on purpose" in reason
    assert not containers_of("broken")


def test_sigkill_and_restart_bring_back_exactly_the_endpoints(
    service_env: dict[str, str],
) -> None:
    env, sm = service_env, sagemaker(service_env)
    sm.create_model(ModelName="echo", PrimaryContainer={"Image": fixture_image("echo")})
    for name, count in (("first", 1), ("second", 2)):
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {"VariantName": "A", "ModelName": "echo", "InstanceType": "ml.m5.large",
                 "InitialInstanceCount": count}
            ],
        )  # fmt: skip
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    for name in ("first", "second"):
        wait_in_service(env, name)
    before = {c.id for name in ("first", "second") for c in containers_of(name)}
    assert len(before) == 3
    status = run(SMLOCAL, "server", "status", env=env)
    pid = int(status.stderr.split("pid ")[1].rstrip(")\n"))
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while run(SMLOCAL, "server", "status", env=env).returncode == 0:
        assert time.monotonic() < deadline, "the killed service still looks alive"
        time.sleep(0.1)
    # The dead service's containers still run; one of "second" dies meanwhile.
    first_before = {c.id for c in containers_of("first")}
    killed, survivor = sorted(c.id for c in containers_of("second"))
    docker.from_env().containers.get(killed).kill()
    port = env["SMLOCAL_URL"].rsplit(":", 1)[1]
    restarted = run(SMLOCAL, "server", "--port", port, "--detach", env=env)
    assert restarted.returncode == 0, restarted.stderr
    for name in ("first", "second"):
        wait_in_service(env, name)
    after = {c.id for name in ("first", "second") for c in containers_of(name)}
    assert len(after) == 3, "each endpoint has exactly its own containers: none duplicated"
    assert {c.id for c in containers_of("first")} == first_before, "first's container adopted"
    second = {c.id for c in containers_of("second")}
    assert survivor in second, "second's healthy container adopted"
    assert killed not in second, "the killed one removed, not left exited"
    assert before & after == first_before | {survivor}
    service_id = (Path(env["SMLOCAL_HOME"]) / "service" / "id").read_text().strip()
    mine = f"label=smlocal.session={service_id}"
    listed = run("docker", "ps", "-q", "--no-trunc", "--filter", mine, env=env)
    assert set(listed.stdout.split()) == after, "docker ps shows exactly the serving ones"
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=env["SMLOCAL_URL"],
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )
    for _ in range(4):  # round robin: the adopted instance and the fresh one both answer
        answer = runtime.invoke_endpoint(
            EndpointName="second", Body=b'{"a": 1}', ContentType="application/json"
        )
        assert json.loads(answer["Body"].read()) == {"a": 1}


def test_second_service_on_the_same_home_is_refused(service_env: dict[str, str]) -> None:
    again = run(SMLOCAL, "server", "--port", "0", env=service_env)
    assert again.returncode == 2
    assert "already runs at" in again.stderr


def request_loop(env: dict[str, str], name: str) -> RequestLoop:
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=env["SMLOCAL_URL"],
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )

    def invoke() -> bytes:
        reply = runtime.invoke_endpoint(
            EndpointName=name, Body=b'{"n": 1}', ContentType="application/json"
        )
        body: bytes = reply["Body"].read()
        return body

    return RequestLoop(invoke)


def test_updates_under_load_lose_no_request(service_env: dict[str, str]) -> None:
    """A failed update (an image whose /ping never answers), a scale 1 -> 3 -> 1 and a good
    update, all under a steady request loop: zero failed requests."""
    env, sm = service_env, sagemaker(service_env)
    for model, image in (("echo", "echo"), ("mute", "never-listens")):
        sm.create_model(ModelName=model, PrimaryContainer={"Image": fixture_image(image)})
        sm.create_endpoint_config(
            EndpointConfigName=model,
            ProductionVariants=[
                {"VariantName": "A", "ModelName": model, "InstanceType": "ml.m5.large",
                 "InitialInstanceCount": 1, "ContainerStartupHealthCheckTimeoutInSeconds": 60}
            ],
        )  # fmt: skip
    sm.create_endpoint(EndpointName="steady", EndpointConfigName="echo")
    wait_in_service(env, "steady")
    with request_loop(env, "steady") as loop:
        sm.update_endpoint(EndpointName="steady", EndpointConfigName="mute")
        wait_in_service(env, "steady")
        described = sm.describe_endpoint(EndpointName="steady")
        assert described["EndpointConfigName"] == "echo"
        assert "did not pass a health check" in described["FailureReason"]
        for count in (3, 1):
            sm.update_endpoint_weights_and_capacities(
                EndpointName="steady",
                DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredInstanceCount": count}],
            )
            wait_in_service(env, "steady")
            assert len(containers_of("steady")) == count
        sm.create_endpoint_config(
            EndpointConfigName="echo-2",
            ProductionVariants=[
                {"VariantName": "A", "ModelName": "echo", "InstanceType": "ml.m5.large",
                 "InitialInstanceCount": 1}
            ],
        )  # fmt: skip
        sm.update_endpoint(EndpointName="steady", EndpointConfigName="echo-2")
        wait_in_service(env, "steady")
    assert loop.failures == []
    assert len(loop.answers) > 100
    assert sm.describe_endpoint(EndpointName="steady")["EndpointConfigName"] == "echo-2"
    assert len(containers_of("steady")) == 1
