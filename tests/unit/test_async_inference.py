"""Asynchronous inference on the local service: real boto3, a moto server for S3/SNS/SQS, and
the fake container backend (real HTTP servers in threads)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.service import async_inference
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from tests.aws_fakes import FAKE_CREDENTIALS, moto_server
from tests.unit.fakes import FakeBackend, FakeImage, echo_handler

FAST = MonitorSettings(ping_interval_s=0.2, stop_grace_s=1)
WAIT = {"Delay": 0.2, "MaxAttempts": 150}
BUCKET = "async-bucket"


class Tracker:
    """A container that records the order and concurrency of its requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.seen: list[bytes] = []

    def handler(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path == "/ping":
            return 200, {}, b""
        if body.startswith(b"reject"):
            return 400, {"content-type": "application/json"}, b'{"error": "bad input"}'
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.seen.append(body)
        try:
            return echo_handler(method, path, headers, body)
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_server() as url:
        for key, value in FAKE_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", url)
        yield url


class Env:
    def __init__(self, url: str, moto: str) -> None:
        config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        self.url = url
        self.sm: Any = boto3.client("sagemaker", endpoint_url=url, config=config)
        self.rt: Any = boto3.client("sagemaker-runtime", endpoint_url=url, config=config)
        self.s3: Any = boto3.client("s3", endpoint_url=moto)
        self.sns: Any = boto3.client("sns", endpoint_url=moto)
        self.sqs: Any = boto3.client("sqs", endpoint_url=moto)
        if BUCKET not in {b["Name"] for b in self.s3.list_buckets()["Buckets"]}:
            self.s3.create_bucket(Bucket=BUCKET)

    def topic_queue(self, name: str) -> tuple[str, str]:
        """An SNS topic and the SQS queue subscribed to it."""
        topic = self.sns.create_topic(Name=name)["TopicArn"]
        queue = self.sqs.create_queue(QueueName=f"{name}-q")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        return topic, queue

    def messages(self, queue: str, count: int, timeout_s: float = 20) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            answer = self.sqs.receive_message(
                QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in answer.get("Messages", []):
                found.append(json.loads(json.loads(message["Body"])["Message"]))
                self.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return found

    def deploy(
        self, name: str, image: str, *, async_config: dict[str, Any] | None, count: int = 1
    ) -> None:
        self.sm.create_model(ModelName=f"{name}-m", PrimaryContainer={"Image": image})
        extra = {"AsyncInferenceConfig": async_config} if async_config is not None else {}
        self.sm.create_endpoint_config(
            EndpointConfigName=f"{name}-c",
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": f"{name}-m",
                 "InstanceType": "ml.m5.large", "InitialInstanceCount": count}
            ],
            **extra,
        )  # fmt: skip
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-c")
        self.sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)

    def put(self, key: str, body: bytes) -> str:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return f"s3://{BUCKET}/{key}"

    def read(self, location: str) -> bytes | None:
        bucket, key = async_inference.split_s3(location)
        try:
            return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError:
            return None

    def wait_for(self, location: str, timeout_s: float = 20) -> bytes:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.read(location)
            if found is not None:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{location} never appeared")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as answer:
            return str(answer.read().decode())


def async_config(
    *, success: str | None = None, error: str | None = None, cap: int | None = None, **more: Any
) -> dict[str, Any]:
    notification = {k: v for k, v in (("SuccessTopic", success), ("ErrorTopic", error)) if v}
    notification.update(more)
    config: dict[str, Any] = {
        "OutputConfig": {
            "S3OutputPath": f"s3://{BUCKET}/output",
            "S3FailurePath": f"s3://{BUCKET}/failure",
            **({"NotificationConfig": notification} if notification else {}),
        }
    }
    if cap is not None:
        config["ClientConfig"] = {"MaxConcurrentInvocationsPerInstance": cap}
    return config


@pytest.fixture
def tracker() -> Tracker:
    return Tracker()


@pytest.fixture
def env(moto: str, tracker: Tracker, tmp_path: Path) -> Iterator[Env]:
    backend = FakeBackend({"echo:1": FakeImage(handler=tracker.handler)})
    with service_in_background(backend, state=StateDir(tmp_path), settings=FAST) as url:
        yield Env(url, moto)


def test_202_shape_headers_and_output_equals_the_realtime_answer(env: Env) -> None:
    env.deploy("rt", "echo:1", async_config=None)
    env.deploy("as", "echo:1", async_config=async_config())
    realtime = env.rt.invoke_endpoint(EndpointName="rt", Body=b'{"x": 1}', ContentType="text/csv")
    expected = realtime["Body"].read()
    source = env.put("in/one.json", b'{"x": 1}')
    answer = env.rt.invoke_endpoint_async(
        EndpointName="as", InputLocation=source, ContentType="text/csv", InferenceId="my-id-1"
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert answer["InferenceId"] == "my-id-1"
    output, failure = answer["OutputLocation"], answer["FailureLocation"]
    assert output.startswith(f"s3://{BUCKET}/output/") and output.endswith(".out")
    assert failure.startswith(f"s3://{BUCKET}/failure/") and failure.endswith("-error.out")
    assert env.wait_for(output) == expected
    got = env.s3.get_object(Bucket=BUCKET, Key=output.split("/", 3)[3])
    assert got["ContentType"] == "text/csv"
    assert env.read(failure) is None
    generated = env.rt.invoke_endpoint_async(EndpointName="as", InputLocation=source)
    assert generated["OutputLocation"].endswith(f"/{generated['InferenceId']}.out")
    env.wait_for(generated["OutputLocation"])
    text = env.metrics()
    assert 'smlocal_async_InvocationsProcesssed_total{endpoint="as",variant="AllTraffic"} 2' in text
    assert 'smlocal_async_approximate_backlog_size{endpoint="as"} 0' in text
    assert "smlocal_async_TimeInBacklog_milliseconds" in text


def test_wrong_kind_of_invocation_is_a_validation_error(env: Env) -> None:
    env.deploy("rt", "echo:1", async_config=None)
    env.deploy("as", "echo:1", async_config=async_config())
    with pytest.raises(ClientError, match="InvokeEndpointAsync") as raised:
        env.rt.invoke_endpoint(EndpointName="as", Body=b"{}")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError, match="not configured for asynchronous") as raised:
        env.rt.invoke_endpoint_async(EndpointName="rt", InputLocation=f"s3://{BUCKET}/x")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    unchecked: Any = boto3.client(
        "sagemaker-runtime",
        endpoint_url=env.url,
        config=Config(signature_version=UNSIGNED, parameter_validation=False),
    )
    for header, value, rule in (
        ("RequestTTLSeconds", 59, "greater than or equal to 60"),
        ("RequestTTLSeconds", 21601, "less than or equal to 21600"),
        ("InvocationTimeoutSeconds", 3601, "less than or equal to 3600"),
    ):
        with pytest.raises(ClientError, match=rule):
            unchecked.invoke_endpoint_async(
                EndpointName="as", InputLocation=f"s3://{BUCKET}/x", **{header: value}
            )


def test_rejected_body_lands_in_failure_location_and_on_the_error_topic(env: Env) -> None:
    success, success_queue = env.topic_queue("ok")
    error, error_queue = env.topic_queue("bad")
    env.deploy(
        "as",
        "echo:1",
        async_config=async_config(
            success=success, error=error, IncludeInferenceResponseIn=["SUCCESS_NOTIFICATION_TOPIC"]
        ),
    )
    tests = env.messages(success_queue, 1) + env.messages(error_queue, 1)
    assert [m["eventName"] for m in tests] == ["TestNotification", "TestNotification"]
    good = env.rt.invoke_endpoint_async(
        EndpointName="as", InputLocation=env.put("in/good", b"fine"), ContentType="text/plain"
    )
    bad = env.rt.invoke_endpoint_async(
        EndpointName="as", InputLocation=env.put("in/bad", b"reject me")
    )
    assert env.wait_for(bad["FailureLocation"]) == b'{"error": "bad input"}'
    assert env.wait_for(good["OutputLocation"]) == b"fine"
    assert env.read(bad["OutputLocation"]) is None
    [ok] = env.messages(success_queue, 1)
    assert ok["invocationStatus"] == "Completed"
    assert ok["inferenceId"] == good["InferenceId"]
    assert ok["eventName"] == "InferenceResult" and ok["eventSource"] == "aws:sagemaker"
    assert ok["requestParameters"] == {
        "contentType": "text/plain",
        "endpointName": "as",
        "inputLocation": f"s3://{BUCKET}/in/good",
    }
    assert ok["responseParameters"]["outputLocation"] == good["OutputLocation"]
    assert ok["responseBody"] == {"content": "fine", "encoding": "UTF8"}
    [failed] = env.messages(error_queue, 1)
    assert failed["invocationStatus"] == "Failed"
    assert failed["inferenceId"] == bad["InferenceId"]
    assert failed["failureReason"].startswith("ClientError: Received client error (400) from model")
    assert failed["failureLocation"] == bad["FailureLocation"]
    assert "responseBody" not in failed
    text = env.metrics()
    assert 'smlocal_async_InvocationFailures_total{endpoint="as",variant="AllTraffic"} 1' in text


def test_order_and_the_concurrency_cap(env: Env, tracker: Tracker) -> None:
    env.deploy("one", "echo:1", async_config=async_config(cap=1))
    sources = [env.put(f"in/{i}", f"{i}".encode()) for i in range(6)]
    answers = [
        env.rt.invoke_endpoint_async(
            EndpointName="one", InputLocation=s, CustomAttributes="sleep=0.05"
        )
        for s in sources
    ]
    for answer in answers:
        env.wait_for(answer["OutputLocation"])
    assert tracker.seen == [f"{i}".encode() for i in range(6)], "taken in arrival order"
    assert tracker.peak == 1
    tracker.seen.clear()
    tracker.peak = 0
    env.deploy("two", "echo:1", async_config=async_config(cap=2))
    answers = [
        env.rt.invoke_endpoint_async(
            EndpointName="two", InputLocation=s, CustomAttributes="sleep=0.3"
        )
        for s in sources
    ]
    for answer in answers:
        env.wait_for(answer["OutputLocation"])
    assert tracker.peak == 2, "two in flight on the one instance, never more"


def test_ttl_expiry_fails_and_counts_the_request(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    error, error_queue = env.topic_queue("expired")
    env.deploy("as", "echo:1", async_config=async_config(cap=1, error=error))
    env.messages(error_queue, 1)  # the test notification
    busy = env.rt.invoke_endpoint_async(
        EndpointName="as", InputLocation=env.put("in/slow", b"slow"), CustomAttributes="sleep=1.5"
    )
    time.sleep(0.3)  # the slow one is in flight; the next one waits behind it
    late = env.rt.invoke_endpoint_async(
        EndpointName="as", InputLocation=env.put("in/late", b"late"), RequestTTLSeconds=60
    )
    real = time.time
    monkeypatch.setattr(async_inference, "_now", lambda: real() + 120)
    reason = env.wait_for(late["FailureLocation"])
    assert b"expired" in reason
    assert env.wait_for(busy["OutputLocation"]) == b"slow"
    assert env.read(late["OutputLocation"]) is None
    [message] = env.messages(error_queue, 1)
    assert message["inferenceId"] == late["InferenceId"]
    assert "RequestTTLSeconds" in message["failureReason"]
    assert "smlocal_async_ExpiredRequests_total" in env.metrics()
    assert '_ExpiredRequests_total{endpoint="as",variant="-"} 1' in env.metrics()


def test_invocation_timeout_goes_to_the_failure_path(env: Env) -> None:
    env.deploy("as", "echo:1", async_config=async_config())
    answer = env.rt.invoke_endpoint_async(
        EndpointName="as",
        InputLocation=env.put("in/slow", b"slow"),
        CustomAttributes="sleep=2",
        InvocationTimeoutSeconds=1,
    )
    assert b"timed out" in env.wait_for(answer["FailureLocation"])
    assert env.read(answer["OutputLocation"]) is None


def test_queue_survives_a_restart(moto: str, tracker: Tracker, tmp_path: Path) -> None:
    backend = FakeBackend({"echo:1": FakeImage(handler=tracker.handler)})
    state = StateDir(tmp_path)
    with service_in_background(backend, state=state, settings=FAST) as url:
        env = Env(url, moto)
        env.deploy("as", "echo:1", async_config=async_config(cap=1))
        answers = [
            env.rt.invoke_endpoint_async(
                EndpointName="as",
                InputLocation=env.put(f"in/{i}", b"x"),
                CustomAttributes="sleep=0.3",
            )
            for i in range(5)
        ]
    # Stopped with most of them still queued; the next run finishes every one, once.
    with service_in_background(backend, state=state, settings=FAST) as url:
        env = Env(url, moto)
        env.sm.get_waiter("endpoint_in_service").wait(EndpointName="as", WaiterConfig=WAIT)
        for answer in answers:
            env.wait_for(answer["OutputLocation"])
            assert env.read(answer["FailureLocation"]) is None


def test_scaled_to_zero_requests_wait_and_run_once_capacity_returns(env: Env) -> None:
    env.deploy("zero", "echo:1", async_config=async_config())
    scale = env.sm.update_endpoint_weights_and_capacities
    scale(
        EndpointName="zero",
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 0}],
    )
    env.sm.get_waiter("endpoint_in_service").wait(EndpointName="zero", WaiterConfig=WAIT)
    variant = env.sm.describe_endpoint(EndpointName="zero")["ProductionVariants"][0]
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (0, 0)
    answer = env.rt.invoke_endpoint_async(
        EndpointName="zero", InputLocation=env.put("in/zero.json", b'{"z": 0}')
    )
    time.sleep(1.0)
    assert env.read(answer["OutputLocation"]) is None  # queued: no capacity
    assert 'smlocal_async_has_backlog_without_capacity{endpoint="zero"} 1' in env.metrics()
    scale(
        EndpointName="zero",
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 1}],
    )
    assert env.wait_for(answer["OutputLocation"]) == b'{"z": 0}'


def test_a_realtime_endpoint_cannot_scale_to_zero(env: Env) -> None:
    env.deploy("rt0", "echo:1", async_config=None)
    with pytest.raises(ClientError, match="only an asynchronous inference endpoint"):
        env.sm.update_endpoint_weights_and_capacities(
            EndpointName="rt0",
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 0}],
        )
