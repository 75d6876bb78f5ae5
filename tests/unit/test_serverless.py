"""Serverless endpoints on the local service, through boto3's real clients and the fake backend:
validation at CreateEndpointConfig, cold start, scale to zero, provisioned concurrency,
MaxConcurrency throttling and live updates (reference §B)."""

from __future__ import annotations

import threading
import time
import types
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.serverless_config import IDLE_ENV
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from tests.unit.fakes import FakeBackend, FakeImage, echo_handler

FAST = MonitorSettings(ping_interval_s=0.2, stop_grace_s=1)
WAIT = {"Delay": 0.2, "MaxAttempts": 150}
RELEASE = threading.Event()


def _held(
    method: str, path: str, headers: Mapping[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """Echo; a body of b"hold" waits until the test sets RELEASE."""
    if path == "/invocations" and body == b"hold":
        RELEASE.wait(30)
    return echo_handler(method, path, headers, body)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend({"echo:1": FakeImage(handler=_held), "crashes:1": FakeImage(exit_code=3)})


class Clients:
    def __init__(self, url: str, backend: FakeBackend) -> None:
        self.url = url
        self.backend = backend
        config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        kwargs: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1"}
        self.sm = boto3.client("sagemaker", config=config, **kwargs)
        unchecked = config.merge(Config(parameter_validation=False))  # the service checks
        self.sm_unchecked = boto3.client("sagemaker", config=unchecked, **kwargs)
        self.rt = boto3.client("sagemaker-runtime", config=config, **kwargs)
        # As a user has it: boto3's default retries, and the legacy mode (5 attempts).
        self.rt_default = boto3.client(
            "sagemaker-runtime", config=Config(signature_version=UNSIGNED), **kwargs
        )
        legacy = Config(signature_version=UNSIGNED, retries={"mode": "legacy"})
        self.rt_legacy = boto3.client("sagemaker-runtime", config=legacy, **kwargs)

    def config(self, name: str, image: str = "echo:1", **serverless: int) -> None:
        settings = {"MemorySizeInMB": 2048, "MaxConcurrency": 5, **serverless}
        self.sm.create_model(ModelName=f"{name}-m", PrimaryContainer={"Image": image})
        self.sm.create_endpoint_config(
            EndpointConfigName=f"{name}-c",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": f"{name}-m",
                    "ServerlessConfig": settings,
                }
            ],
        )

    def deploy(self, name: str, image: str = "echo:1", **serverless: int) -> None:
        self.config(name, image, **serverless)
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-c")
        self.sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)

    def invoke(self, name: str, body: bytes = b"hi", client: Any = None) -> bytes:
        answer = (client or self.rt).invoke_endpoint(
            EndpointName=name, Body=body, ContentType="text/plain"
        )
        return bytes(answer["Body"].read())

    def setup_count(self, name: str) -> int:
        with urllib.request.urlopen(f"{self.url}/metrics") as response:
            text = response.read().decode()
        prefix = f'smlocal_model_setup_time_microseconds_count{{endpoint="{name}"'
        return sum(int(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


@pytest.fixture
def service(
    backend: FakeBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Clients]:
    monkeypatch.setenv(IDLE_ENV, "0.4")
    RELEASE.clear()
    with service_in_background(backend, state=StateDir(tmp_path), settings=FAST) as url:
        yield Clients(url, backend)
    RELEASE.set()


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _error(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return str(error["Code"]), str(error.get("Message"))


# ---- validation at CreateEndpointConfig ------------------------------------------------
def _config_error(service: Clients, variants: list[dict[str, Any]], **extra: Any) -> str:
    code, message = _error(
        lambda: service.sm_unchecked.create_endpoint_config(
            EndpointConfigName="bad", ProductionVariants=variants, **extra
        )
    )
    assert code == "ValidationException"
    return message


def _variant(name: str = "AllTraffic", model: str = "m", **serverless: int) -> dict[str, Any]:
    settings = {"MemorySizeInMB": 2048, "MaxConcurrency": 5, **serverless}
    return {"VariantName": name, "ModelName": model, "ServerlessConfig": settings}


def test_validation_texts(service: Clients) -> None:
    assert "MemorySizeInMB 1500 is not valid; valid values are in 1 GB increments: 1024 MB" in (
        _config_error(service, [_variant(MemorySizeInMB=1500)])
    )
    assert _config_error(service, [_variant(MemorySizeInMB=512)]).startswith(
        "1 validation error detected: Value '512' at "
        "'productionVariants.1.member.serverlessConfig.memorySizeInMB' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1024"
    )
    assert "'productionVariants.1.member.serverlessConfig.maxConcurrency'" in _config_error(
        service, [_variant(MaxConcurrency=201)]
    )
    assert (
        "Variant AllTraffic: ProvisionedConcurrency 6 must be less than or equal to "
        "MaxConcurrency 5." in _config_error(service, [_variant(ProvisionedConcurrency=6)])
    )
    many = [_variant(f"V{i}") for i in range(6)]
    assert "has 6 production variants; a serverless endpoint can have at most 5" in (
        _config_error(service, many)
    )
    gpu = {**_variant(), "InstanceType": "ml.g4dn.xlarge", "InitialInstanceCount": 1}
    assert "ServerlessConfig cannot be combined with InstanceType, InitialInstanceCount" in (
        _config_error(service, [gpu])
    )
    mixed = [
        _variant(),
        {
            "VariantName": "B",
            "ModelName": "m",
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1,
        },
    ]
    assert "mixes serverless and instance-based" in _config_error(service, mixed)
    capture = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": "s3://bucket/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}],
    }
    assert "do not support data capture (DataCaptureConfig)" in _config_error(
        service, [_variant()], DataCaptureConfig=capture
    )
    vpc = {"SecurityGroupIds": ["sg-12345678"], "Subnets": ["subnet-12345678"]}
    assert "do not support VPC configuration" in _config_error(service, [_variant()], VpcConfig=vpc)
    for model, extra, words in (
        ("mme", {"PrimaryContainer": {"Image": "echo:1", "Mode": "MultiModel"}}, "multi-model"),
        ("iso", {"EnableNetworkIsolation": True}, "network isolation"),
        ("vpc", {"VpcConfig": vpc}, "has a VpcConfig"),
    ):
        service.sm.create_model(
            ModelName=model, **{"PrimaryContainer": {"Image": "echo:1"}, **extra}
        )
        assert words in _config_error(service, [_variant(model=model)])
    # A valid one is accepted and stored as given.
    service.config("ok", ProvisionedConcurrency=2)
    stored = service.sm.describe_endpoint_config(EndpointConfigName="ok-c")
    assert stored["ProductionVariants"][0]["ServerlessConfig"] == {
        "MemorySizeInMB": 2048,
        "MaxConcurrency": 5,
        "ProvisionedConcurrency": 2,
    }


# ---- cold start, warm, scale to zero ---------------------------------------------------
def test_cold_start_then_warm_then_scale_to_zero(service: Clients) -> None:
    service.deploy("sl")
    described = service.sm.describe_endpoint(EndpointName="sl")
    assert described["EndpointStatus"] == "InService"
    variant = described["ProductionVariants"][0]
    assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert variant["DesiredServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "CurrentInstanceCount" not in variant
    assert service.backend.running() == []  # no container before the first request
    assert service.setup_count("sl") == 0

    assert service.invoke("sl", b"one") == b"one"  # cold start
    assert service.setup_count("sl") == 1
    (container,) = service.backend.running()
    run = service.backend.containers[container].run
    assert run.memory_bytes == 2048 * 1024 * 1024
    assert run.cpus == 1.0  # one vCPU per 2048 MB
    assert service.invoke("sl", b"two") == b"two"  # warm: no second cold start
    assert service.setup_count("sl") == 1
    assert service.backend.running() == [container]

    _until(lambda: service.backend.running() == [])  # idle 0.4 s: scaled to zero
    assert service.sm.describe_endpoint(EndpointName="sl")["EndpointStatus"] == "InService"
    assert service.invoke("sl", b"three") == b"three"  # cold again
    assert service.setup_count("sl") == 2

    service.sm.delete_endpoint(EndpointName="sl")
    service.sm.get_waiter("endpoint_deleted").wait(EndpointName="sl", WaiterConfig=WAIT)
    assert service.backend.running() == []


def test_cold_start_failure_is_a_model_error(service: Clients) -> None:
    service.deploy("bad", image="crashes:1")
    code, message = _error(lambda: service.invoke("bad"))
    assert code == "ModelError"
    assert "could not start a container for this request (cold start)" in message
    assert "exit code 3" in message or "exited" in message
    assert service.sm.describe_endpoint(EndpointName="bad")["EndpointStatus"] == "InService"


def test_payload_limit_is_4_mb(service: Clients) -> None:
    service.deploy("big")
    code, message = _error(lambda: service.invoke("big", b"x" * (4 * 1024 * 1024 + 1)))
    assert (code, message.endswith("has oversize body.")) == ("ValidationError", True)
    assert service.invoke("big", b"x" * (4 * 1024 * 1024)) == b"x" * (4 * 1024 * 1024)


# ---- MaxConcurrency -------------------------------------------------------------------
def test_max_concurrency_throttles(service: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    service.deploy("one", MaxConcurrency=1)
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(service.invoke, "one", b"hold")
        _until(lambda: any(c.requests for c in service.backend.containers.values()))
        code, message = _error(lambda: service.invoke("one", b"second"))
        assert (code, message) == ("ThrottlingException", "None")
        # What a user sees with boto3's own retries (backoff sleeps skipped): botocore 1.43's
        # default "standard" mode makes 3 attempts, the "legacy" mode of older boto3 5.
        import botocore.endpoint

        fast_time = types.SimpleNamespace(sleep=lambda _: None, time=time.time)
        monkeypatch.setattr(botocore.endpoint, "time", fast_time)
        for client, retries in ((service.rt_default, 2), (service.rt_legacy, 4)):
            with pytest.raises(ClientError) as caught:
                service.invoke("one", b"second", client=client)
            assert str(caught.value) == (
                "An error occurred (ThrottlingException) when calling the InvokeEndpoint "
                f"operation (reached max retries: {retries}): None"
            )
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        RELEASE.set()
        assert slow.result(timeout=10) == b"hold"
    assert service.invoke("one", b"after") == b"after"  # capacity is back


def test_concurrent_requests_each_get_a_container(service: Clients) -> None:
    service.deploy("two", MaxConcurrency=2)
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(service.invoke, "two", b"hold") for _ in range(2)]
        _until(lambda: len(service.backend.running()) == 2)
        RELEASE.set()
        assert [f.result(timeout=10) for f in held] == [b"hold", b"hold"]
    assert service.setup_count("two") == 2


# ---- provisioned concurrency and live updates -------------------------------------------
def test_provisioned_concurrency_stays_warm(service: Clients) -> None:
    service.deploy("warm", MaxConcurrency=3, ProvisionedConcurrency=2)
    assert len(service.backend.running()) == 2
    time.sleep(1.0)  # well past the idle time: provisioned containers stay
    assert len(service.backend.running()) == 2
    assert service.invoke("warm") == b"hi"
    assert service.setup_count("warm") == 0  # served warm
    variant = service.sm.describe_endpoint(EndpointName="warm")["ProductionVariants"][0]
    assert variant["CurrentServerlessConfig"]["ProvisionedConcurrency"] == 2


def test_update_serverless_config_live(service: Clients) -> None:
    service.deploy("upd", MaxConcurrency=1)
    service.sm.update_endpoint_weights_and_capacities(
        EndpointName="upd",
        DesiredWeightsAndCapacities=[
            {
                "VariantName": "AllTraffic",
                "ServerlessUpdateConfig": {"MaxConcurrency": 2, "ProvisionedConcurrency": 1},
            }
        ],
    )
    service.sm.get_waiter("endpoint_in_service").wait(EndpointName="upd", WaiterConfig=WAIT)
    variant = service.sm.describe_endpoint(EndpointName="upd")["ProductionVariants"][0]
    assert variant["CurrentServerlessConfig"] == {
        "MemorySizeInMB": 2048,
        "MaxConcurrency": 2,
        "ProvisionedConcurrency": 1,
    }
    assert len(service.backend.running()) == 1  # one kept warm now
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(service.invoke, "upd", b"hold") for _ in range(2)]
        _until(lambda: len(service.backend.running()) == 2)
        RELEASE.set()
        assert [f.result(timeout=10) for f in held] == [b"hold", b"hold"]  # none throttled
    code, message = _error(
        lambda: service.sm.update_endpoint_weights_and_capacities(
            EndpointName="upd",
            DesiredWeightsAndCapacities=[
                {
                    "VariantName": "AllTraffic",
                    "ServerlessUpdateConfig": {"ProvisionedConcurrency": 3},
                }
            ],
        )
    )
    assert code == "ValidationException"
    assert "ProvisionedConcurrency 3 must be less than or equal to MaxConcurrency 2" in message


# ---- the quick path: smlocal serve --serverless-memory --max-concurrency ------------------
def test_serve_flags_deploy_a_serverless_variant() -> None:
    from smlocal.cli.serve import _build_spec, _serverless
    from smlocal.emulator.service.client import deploy_requests

    spec = _build_spec(
        image="echo:1",
        model=None,
        name="quick",
        env={},
        instance_type="ml.m5.large",
        instance_count=1,
        startup_timeout=480,
        invocation_timeout=60,
    )
    requests = deploy_requests(_serverless(spec, 2048, 5), suffix="x")
    (variant,) = requests.config["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    from smlocal.emulator.errors import ConfigError

    with pytest.raises(ConfigError, match="MemorySizeInMB 1500 is not one of"):
        _serverless(spec, 1500, 5)
    with pytest.raises(ConfigError, match="only with --serverless-memory"):
        _serverless(spec, None, 5)


# ---- UpdateEndpoint keeps the inference type ------------------------------------------
def test_update_endpoint_refuses_a_change_of_inference_type(service: Clients) -> None:
    service.deploy("kind")
    service.sm.create_endpoint_config(
        EndpointConfigName="kind-rt",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "kind-m",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    service.sm.create_endpoint_config(
        EndpointConfigName="kind-async",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "kind-m",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://bucket/out"}},
    )
    for config, kind in (("kind-rt", "real-time"), ("kind-async", "asynchronous")):
        code, message = _error(
            lambda config=config: service.sm.update_endpoint(
                EndpointName="kind", EndpointConfigName=config
            )
        )
        assert code == "ValidationException"
        assert f"from a serverless endpoint to a {kind} endpoint" in message
    described = service.sm.describe_endpoint(EndpointName="kind")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "kind-c"

    # real-time → serverless is what AWS documents as unsupported
    service.sm.create_endpoint(EndpointName="rt", EndpointConfigName="kind-rt")
    service.sm.get_waiter("endpoint_in_service").wait(EndpointName="rt", WaiterConfig=WAIT)
    code, message = _error(
        lambda: service.sm.update_endpoint(EndpointName="rt", EndpointConfigName="kind-c")
    )
    assert code == "ValidationException"
    assert "from a real-time endpoint to a serverless endpoint" in message
    # the same type still updates
    service.sm.update_endpoint(EndpointName="kind", EndpointConfigName="kind-c")
    service.sm.get_waiter("endpoint_in_service").wait(EndpointName="kind", WaiterConfig=WAIT)


# ---- InvokeEndpointWithResponseStream gets a container of its own ----------------------
def _stream(service: Clients, name: str, body: bytes) -> bytes:
    answer = service.rt.invoke_endpoint_with_response_stream(
        EndpointName=name, Body=body, ContentType="text/plain"
    )
    return b"".join(event["PayloadPart"]["Bytes"] for event in answer["Body"])


def test_response_stream_cold_starts_and_counts_against_max_concurrency(
    service: Clients,
) -> None:
    service.deploy("st", MaxConcurrency=1)
    assert service.backend.running() == []
    assert _stream(service, "st", b"streamed") == b"streamed"  # cold start, like invoke
    assert service.setup_count("st") == 1
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(service.invoke, "st", b"hold")
        _until(lambda: _holding(service))
        code, _ = _error(lambda: _stream(service, "st", b"x"))
        assert code == "ThrottlingException"
        RELEASE.set()
        assert held.result(timeout=30) == b"hold"
    assert _stream(service, "st", b"again") == b"again"  # warm: no second cold start
    assert service.setup_count("st") == 1


def _holding(service: Clients) -> bool:
    return any(
        body == b"hold" for c in service.backend.containers.values() for _, _, body in c.requests
    )
