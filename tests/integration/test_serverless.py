"""Serverless endpoints on Docker: the first request starts the container (a cold start), the
next is served warm, MaxConcurrency throttles, idle scales to zero, and delete leaves nothing."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import docker
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from smlocal.emulator.backend import LABEL_ENDPOINT
from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.serverless_config import IDLE_ENV
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from tests.conftest import fixture_image

pytestmark = pytest.mark.docker

WAIT = {"Delay": 0.25, "MaxAttempts": 240}
NAME = "sl-docker"


def _containers() -> list[docker.models.containers.Container]:
    client = docker.from_env()
    return list(
        client.containers.list(
            ignore_removed=True, all=True, filters={"label": f"{LABEL_ENDPOINT}={NAME}"}
        )
    )


def _until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_serverless_on_docker(
    docker_backend: DockerBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(IDLE_ENV, "3")
    settings = MonitorSettings(ping_interval_s=1, stop_grace_s=2)
    with service_in_background(docker_backend, state=StateDir(tmp_path), settings=settings) as url:
        config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        kwargs = {"endpoint_url": url, "region_name": "us-east-1", "config": config}
        sm = boto3.client("sagemaker", **kwargs)  # type: ignore[call-overload]
        rt = boto3.client("sagemaker-runtime", **kwargs)  # type: ignore[call-overload]
        sm.create_model(ModelName="m", PrimaryContainer={"Image": fixture_image("echo")})
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "m",
                    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
                }
            ],
        )
        sm.create_endpoint(EndpointName=NAME, EndpointConfigName="c")
        sm.get_waiter("endpoint_in_service").wait(EndpointName=NAME, WaiterConfig=WAIT)
        assert _containers() == []  # InService with no container

        def invoke(attributes: str = "") -> bytes:
            extra = {"CustomAttributes": attributes} if attributes else {}
            answer = rt.invoke_endpoint(
                EndpointName=NAME, Body=b"hello", ContentType="text/plain", **extra
            )
            return bytes(answer["Body"].read())

        started = time.perf_counter()
        assert invoke() == b"hello"
        cold_s = time.perf_counter() - started
        started = time.perf_counter()
        assert invoke() == b"hello"
        warm_s = time.perf_counter() - started
        assert warm_s < cold_s
        (container,) = _containers()
        host = container.attrs["HostConfig"]
        assert (host["Memory"], host["NanoCpus"]) == (2048 * 1024 * 1024, 1_000_000_000)
        with urllib.request.urlopen(f"{url}/metrics") as response:
            metrics = response.read().decode()
        assert f'smlocal_model_setup_time_microseconds_count{{endpoint="{NAME}"' in metrics
        assert 'variant="AllTraffic"} 1\n' in metrics.split("model_setup_time")[-1]

        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(invoke, "sleep=3")
            time.sleep(1.0)
            with pytest.raises(ClientError) as caught:
                invoke()
            assert caught.value.response["Error"]["Code"] == "ThrottlingException"
            assert slow.result(timeout=30) == b"hello"

        _until(lambda: _containers() == [])  # idle 3 s: scaled to zero
        assert invoke() == b"hello"  # a cold start again
        assert len(_containers()) == 1
        sm.delete_endpoint(EndpointName=NAME)
        sm.get_waiter("endpoint_deleted").wait(EndpointName=NAME, WaiterConfig=WAIT)
        assert _containers() == []
    assert _containers() == []
