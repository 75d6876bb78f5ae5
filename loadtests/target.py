"""Find the endpoint a load test calls: a running local one, one started for the test, or AWS.

``aws:NAME`` goes to ``https://runtime.sagemaker.{region}.amazonaws.com`` (or
``--endpoint-url``) with SigV4; the region comes from the option or the boto3 default chain.

A local endpoint also says which process serves its runtime API (the service's, or this one
when ``--image`` serves it in a thread), so the test can measure that process's CPU
(:func:`cpu_probe`), and its containers come from the runtime API's status route
(:mod:`loadtests.fleet`), for their CPU and for ``--direct``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from smlocal.emulator.errors import ConfigError, SmlocalError
from smlocal.loadtests.cpu import CpuProbe
from smlocal.loadtests.fleet import Fleet, direct_urls, read_fleet

__all__ = [
    "AWS_PREFIX",
    "Endpoint",
    "at_url",
    "cpu_probe",
    "direct_target",
    "endpoint_fleet",
    "resolve_aws",
    "resolve_local",
    "started_endpoint",
]

AWS_PREFIX = "aws:"


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    kind: str  # "local", "image" or "aws"
    region: str | None = None
    # The process serving the runtime API at ``url`` on this machine (None: not known), and
    # a thread of it that is not the runtime API's (the load test's own, when in-process).
    runtime_pid: int | None = None
    shared_tid: int | None = None


def _service_record() -> tuple[int, str] | None:
    from smlocal.emulator.service.process import read_service_record
    from smlocal.emulator.state import StateDir

    record = read_service_record(StateDir())
    return (record.pid, record.url) if record is not None else None


def at_url(name: str, url: str) -> Endpoint:
    """Endpoint ``name`` behind the runtime API at ``url`` (``--endpoint-url``): the local
    service's process when that is the service's URL, else an unknown one."""
    url = url.rstrip("/")
    record = _service_record()
    pid = record[0] if record is not None and record[1].rstrip("/") == url else None
    return Endpoint(name=name, url=url, kind="local", runtime_pid=pid)


def resolve_local(name: str) -> Endpoint:
    """Endpoint ``name`` on this SMLOCAL_HOME's running service, if it is InService."""
    from smlocal.emulator.service.client import describe_or_none, sagemaker_client

    record = _service_record()
    answer = describe_or_none(sagemaker_client(record[1]), name) if record else None
    if record is None or answer is None:
        raise SmlocalError(
            f"no endpoint named {name} on the local service; start one with `smlocal serve "
            "--detach`, or pass --image/--model to start one for the test"
        )
    if answer["EndpointStatus"] != "InService":
        raise SmlocalError(f"endpoint {name} is {answer['EndpointStatus']}, not InService")
    return Endpoint(name=answer["EndpointName"], url=record[1], kind="local", runtime_pid=record[0])


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
        # Served by a thread of this process: the runtime API's CPU is this process's less
        # the calling thread's (the CLI's polling and drawing); Locust runs in children.
        yield Endpoint(
            name=name,
            url=handle.url,
            kind="image",
            runtime_pid=os.getpid(),
            shared_tid=threading.get_native_id(),
        )


def endpoint_fleet(endpoint: Endpoint) -> Fleet | None:
    """The containers behind a local endpoint (None for AWS, or a runtime API that is not
    smlocal's)."""
    return None if endpoint.kind == "aws" else read_fleet(endpoint.url, endpoint.name)


def cpu_probe(endpoint: Endpoint, fleet: Fleet | None) -> CpuProbe:
    """What the test measures: the runtime API's process and the containers, where known."""
    containers = fleet.container_ids if fleet is not None else ()
    reader = None
    if containers:
        from smlocal.emulator.docker_backend import DockerBackend

        reader = DockerBackend()
    return CpuProbe(
        runtime_pid=endpoint.runtime_pid,
        shared_tid=endpoint.shared_tid,
        containers=containers,
        reader=reader,
    )


def direct_target(
    endpoint: Endpoint, fleet: Fleet | None, target_variant: str | None
) -> tuple[str, ...]:
    """``--direct``: the containers' ``/invocations`` URLs for Locust (ConfigError, exit 2,
    where there are none to call or calling them would not be SageMaker's request)."""
    if endpoint.kind == "aws":
        raise ConfigError(
            "--direct needs a local endpoint: a real SageMaker endpoint's containers are "
            "reachable only through its runtime API"
        )
    if fleet is None:
        raise ConfigError(
            f"--direct: the runtime API at {endpoint.url} does not list endpoint "
            f"{endpoint.name}'s containers (GET /smlocal/endpoints); give a local smlocal "
            "endpoint, or --image"
        )
    return tuple(direct_urls(fleet, target_variant))
