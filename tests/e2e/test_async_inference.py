"""Asynchronous inference on `smlocal server` with real containers, boto3's
invoke_endpoint_async and a moto server for S3, SNS and SQS; the burst survives a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.aws_fakes import FAKE_CREDENTIALS, moto_server
from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL, fixture_image

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

SMLOCAL = str(Path(sys.executable).parent / "smlocal")
BUCKET = "async-e2e"
IRIS_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=False, env=env, capture_output=True, text=True, timeout=180)


class Env:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        plain = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        url, moto = env["SMLOCAL_URL"], env["AWS_ENDPOINT_URL"]
        self.sm: Any = boto3.client(
            "sagemaker", endpoint_url=url, region_name="us-east-1", config=plain
        )
        self.rt: Any = boto3.client(
            "sagemaker-runtime",
            endpoint_url=url,
            region_name="us-east-1",
            config=Config(
                signature_version=UNSIGNED,
                retries={"total_max_attempts": 1},
                max_pool_connections=16,
            ),
        )
        aws: Any = {
            "endpoint_url": moto,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        self.s3: Any = boto3.client("s3", **aws, config=Config(max_pool_connections=16))
        self.sns: Any = boto3.client("sns", **aws)
        self.sqs: Any = boto3.client("sqs", **aws)

    def deploy(self, name: str, image: str, model: str | None, config: dict[str, Any]) -> None:
        container = {"Image": image, **({"ModelDataUrl": model} if model else {})}
        self.sm.create_model(ModelName=name, PrimaryContainer=container)
        self.sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large",
                 "InitialInstanceCount": 1}
            ],
            AsyncInferenceConfig=config,
        )  # fmt: skip
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        self.wait(name)

    def wait(self, name: str) -> None:
        self.sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 240}
        )

    def read(self, location: str) -> bytes | None:
        bucket, _, key = location.removeprefix("s3://").partition("/")
        try:
            return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError:
            return None

    def wait_for(self, location: str, timeout_s: float = 60) -> bytes:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.read(location)
            if found is not None:
                return found
            time.sleep(0.1)
        raise AssertionError(f"{location} never appeared")

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            found += [item["Key"] for item in page.get("Contents", [])]
        return found


@pytest.fixture
def env(smlocal_home: Path) -> Iterator[Env]:
    with moto_server() as moto:
        environ = {**os.environ, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": moto}
        started = run(SMLOCAL, "server", "--port", "0", "--detach", env=environ)
        assert started.returncode == 0, started.stderr
        environ["SMLOCAL_URL"] = started.stdout.strip().splitlines()[-1]
        try:
            env = Env(environ)
            env.s3.create_bucket(Bucket=BUCKET)
            # moto's state is per process, not per server: start from an empty bucket.
            for key in env.keys(""):
                env.s3.delete_object(Bucket=BUCKET, Key=key)
            yield env
        finally:
            stopped = run(SMLOCAL, "server", "stop", env=environ)
            assert stopped.returncode == 0, stopped.stderr


def output_config(**notification: Any) -> dict[str, Any]:
    return {
        "OutputConfig": {
            "S3OutputPath": f"s3://{BUCKET}/output",
            "S3FailurePath": f"s3://{BUCKET}/failure",
            **({"NotificationConfig": notification} if notification else {}),
        }
    }


def subscribed_queue(env: Env, name: str) -> tuple[str, str]:
    topic = env.sns.create_topic(Name=name)["TopicArn"]
    queue = env.sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = env.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    env.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"])
    return topic, queue


def results(env: Env, queue: str, event: str = "InferenceResult") -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = env.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = [json.loads(json.loads(m["Body"])["Message"]) for m in got.get("Messages", [])]
        found = [m for m in messages if m["eventName"] == event]
        if found:
            return found
    raise AssertionError(f"no {event} message")


def test_sklearn_async_output_notifications_and_failure(env: Env, docker_images: None) -> None:
    success, success_queue = subscribed_queue(env, "success")
    error, error_queue = subscribed_queue(env, "error")
    env.deploy(
        "iris",
        SKLEARN_IMAGE,
        str(SKLEARN_MODEL),
        output_config(SuccessTopic=success, ErrorTopic=error),
    )
    env.s3.put_object(Bucket=BUCKET, Key="in/row.json", Body=json.dumps(IRIS_ROW).encode())
    env.s3.put_object(Bucket=BUCKET, Key="in/bad.json", Body=b"this is not json")
    answer = env.rt.invoke_endpoint_async(
        EndpointName="iris",
        InputLocation=f"s3://{BUCKET}/in/row.json",
        ContentType="application/json",
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    output = env.wait_for(answer["OutputLocation"])
    # The same answer InvokeEndpoint gives the same container (through a real-time twin).
    env.sm.create_endpoint_config(
        EndpointConfigName="iris-rt",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "iris", "InstanceType": "ml.m5.large",
             "InitialInstanceCount": 1}
        ],
    )  # fmt: skip
    env.sm.create_endpoint(EndpointName="iris-rt", EndpointConfigName="iris-rt")
    env.wait("iris-rt")
    realtime = env.rt.invoke_endpoint(
        EndpointName="iris-rt", Body=json.dumps(IRIS_ROW), ContentType="application/json"
    )
    assert output == realtime["Body"].read()
    [message] = results(env, success_queue)
    assert message["invocationStatus"] == "Completed"
    assert message["inferenceId"] == answer["InferenceId"]
    assert message["responseParameters"]["outputLocation"] == answer["OutputLocation"]
    bad = env.rt.invoke_endpoint_async(
        EndpointName="iris",
        InputLocation=f"s3://{BUCKET}/in/bad.json",
        ContentType="application/json",
    )
    env.wait_for(bad["FailureLocation"])
    assert env.read(bad["OutputLocation"]) is None
    [failed] = results(env, error_queue)
    assert failed["invocationStatus"] == "Failed"
    assert failed["inferenceId"] == bad["InferenceId"]
    assert "error (4" in failed["failureReason"] or "error (5" in failed["failureReason"]


def test_burst_of_1000_with_a_sigkill_in_the_middle(env: Env, docker_images: None) -> None:
    env.deploy(
        "burst",
        fixture_image("echo"),
        None,
        {**output_config(), "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4}},
    )
    env.s3.put_object(Bucket=BUCKET, Key="in/x.json", Body=b'{"x": 1}')
    source = f"s3://{BUCKET}/in/x.json"

    def submit(i: int) -> str | None:
        attributes = "status=500" if i % 10 == 0 else "sleep=0.005"
        try:
            answer = env.rt.invoke_endpoint_async(
                EndpointName="burst", InputLocation=source, CustomAttributes=attributes
            )
        except (EndpointConnectionError, ClientError):
            return None  # refused while the service was down: never accepted
        return str(answer["InferenceId"])

    with ThreadPoolExecutor(8) as pool:
        accepted = [i for i in pool.map(submit, range(500)) if i]
    status = run(SMLOCAL, "server", "status", env=env.env)
    pid = int(status.stderr.split("pid ")[1].rstrip(")\n"))
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while run(SMLOCAL, "server", "status", env=env.env).returncode == 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    done_before_restart = len(env.keys("output/")) + len(env.keys("failure/"))
    port = env.env["SMLOCAL_URL"].rsplit(":", 1)[1]
    restarted = run(SMLOCAL, "server", "--port", port, "--detach", env=env.env)
    assert restarted.returncode == 0, restarted.stderr
    env.wait("burst")
    with ThreadPoolExecutor(8) as pool:
        accepted += [i for i in pool.map(submit, range(500, 1000)) if i]
    assert len(accepted) == 1000
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        outputs = {k.removeprefix("output/").removesuffix(".out") for k in env.keys("output/")}
        failures = {
            k.removeprefix("failure/").removesuffix("-error.out") for k in env.keys("failure/")
        }
        if len(outputs) + len(failures) >= len(accepted):
            break
        time.sleep(1)
    assert not outputs & failures, "none has both an output and a failure"
    assert outputs | failures == set(accepted), (
        "every accepted request has its outcome",
        sorted((outputs | failures) - set(accepted)),
        sorted(set(accepted) - (outputs | failures)),
        len(accepted),
        len(set(accepted)),
    )
    assert len(failures) == 100, "exactly the ones the container answered 500"
    print(f"outcomes before the restart: {done_before_restart}")


def test_invoke_async_on_the_cli_waits_for_the_answer_and_reports_failures(
    env: Env, docker_images: None
) -> None:
    env.deploy("cli-async", fixture_image("echo"), None, output_config())
    env.s3.put_object(Bucket=BUCKET, Key="in/cli.json", Body=b'{"from": "s3"}')
    done = run(
        SMLOCAL, "invoke", "cli-async", "--async", "--input", f"s3://{BUCKET}/in/cli.json",
        env=env.env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"from": "s3"}
    assert "queued as" in done.stderr
    missing = run(
        SMLOCAL, "invoke", "cli-async", "--async", "--input", f"s3://{BUCKET}/in/absent.json",
        "--wait", "60", env=env.env,
    )  # fmt: skip
    assert missing.returncode == 1, missing.stdout
    assert "the request failed" in missing.stderr
    usage = run(SMLOCAL, "invoke", "cli-async", "--async", env=env.env)
    assert usage.returncode == 2
    assert "--async takes --input" in usage.stderr
