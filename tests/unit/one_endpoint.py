"""One endpoint on the local service, on the fake backend, with boto3's clients for it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from tests.unit.fakes import FakeBackend

FAST = MonitorSettings(ping_interval_s=0.2, stop_grace_s=1)


@contextlib.contextmanager
def one_endpoint(
    backend: FakeBackend,
    home: Path,
    image: str,
    *,
    name: str = "ep",
    instances: int = 1,
    client_validation: bool = True,
) -> Iterator[tuple[Any, Any]]:
    """``(sagemaker, sagemaker-runtime)`` clients of a service whose endpoint ``name`` serves
    ``image`` on ``instances`` instances, InService. ``client_validation=False`` leaves the
    judging of inputs to the service, as AWS does."""
    with service_in_background(backend, state=StateDir(home), settings=FAST) as url:
        config = Config(
            signature_version=UNSIGNED,
            retries={"total_max_attempts": 1},
            parameter_validation=client_validation,
        )
        kwargs: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1", "config": config}
        sm, rt = boto3.client("sagemaker", **kwargs), boto3.client("sagemaker-runtime", **kwargs)
        sm.create_model(ModelName=f"{name}-m", PrimaryContainer={"Image": image})
        variant = {"VariantName": "A", "ModelName": f"{name}-m", "InstanceType": "ml.m5.large",
                   "InitialInstanceCount": instances}  # fmt: skip
        sm.create_endpoint_config(EndpointConfigName=f"{name}-c", ProductionVariants=[variant])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-c")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150}
        )
        yield sm, rt
