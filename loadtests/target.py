"""Find the endpoint a load test calls: a running local one, one started for the test, or AWS.

``aws:NAME`` goes to ``https://runtime.sagemaker.{region}.amazonaws.com`` (or
``--endpoint-url``) with SigV4; the region comes from the option or the boto3 default chain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from smlocal.emulator.errors import SmlocalError

__all__ = ["AWS_PREFIX", "Endpoint", "resolve_aws", "resolve_local", "started_endpoint"]

AWS_PREFIX = "aws:"


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    kind: str  # "local", "image" or "aws"
    region: str | None = None


def resolve_local(name: str) -> Endpoint:
    """Endpoint ``name`` on this SMLOCAL_HOME's running service, if it is InService."""
    from smlocal.emulator.service.client import describe_or_none, sagemaker_client
    from smlocal.emulator.service.process import read_service_record
    from smlocal.emulator.state import StateDir

    record = read_service_record(StateDir())
    answer = describe_or_none(sagemaker_client(record.url), name) if record else None
    if record is None or answer is None:
        raise SmlocalError(
            f"no endpoint named {name} on the local service; start one with `smlocal serve "
            "--detach`, or pass --image/--model to start one for the test"
        )
    if answer["EndpointStatus"] != "InService":
        raise SmlocalError(f"endpoint {name} is {answer['EndpointStatus']}, not InService")
    return Endpoint(name=answer["EndpointName"], url=record.url, kind="local")


def resolve_aws(name: str, region: str | None, endpoint_url: str | None) -> Endpoint:
    import boto3

    region = region or boto3.Session().region_name
    if not region:
        raise SmlocalError(f"no AWS region for {AWS_PREFIX}{name}: pass --region or set AWS_REGION")
    url = endpoint_url or f"https://runtime.sagemaker.{region}.amazonaws.com"
    return Endpoint(name=name, url=url.rstrip("/"), kind="aws", region=region)


@contextlib.contextmanager
def started_endpoint(
    name: str, image: str, model: str | None, instance_type: str, instance_count: int
) -> Iterator[Endpoint]:
    """Serve ``image`` on a free loopback port for the test; stop it (containers too) after."""
    from smlocal.emulator.background import serve_in_background
    from smlocal.emulator.docker_backend import DockerBackend
    from smlocal.emulator.endpoint import MonitorSettings
    from smlocal.emulator.server import ServeOptions
    from smlocal.emulator.spec import build_spec

    spec = build_spec(
        name=name,
        variants=[
            {
                "image": image,
                "model": model,
                "instance_type": instance_type,
                "instance_count": instance_count,
            }
        ],
    )
    backend = DockerBackend()
    settings = MonitorSettings(host_cpus=backend.host_cpus(), host_ip="127.0.0.1")
    with serve_in_background(spec, backend, ServeOptions(port=0, settings=settings)) as handle:
        if handle.status != "InService":
            reason = handle.sink.statuses[-1][2] if handle.sink.statuses else "unknown"
            raise SmlocalError(f"endpoint {name} failed to start: {reason}")
        yield Endpoint(name=name, url=handle.url, kind="image")
