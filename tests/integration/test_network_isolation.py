"""EnableNetworkIsolation through the service, on Docker: the container serves /ping and
/invocations, and cannot open a connection anywhere — not to the internet, not to another
container, not to this host's own addresses (its LAN address, docker0, its network's gateway),
where a TCP server listens on all of them. A model without the flag, in the same service,
reaches that server: the probe itself works.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from smlocal.emulator.backend import ISOLATED_NETWORK, LABEL_ENDPOINT
from smlocal.emulator.docker_backend import SERVING_NETWORK, DockerBackend
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from tests.conftest import fixture_image

pytestmark = pytest.mark.docker

WAIT = {"Delay": 0.25, "MaxAttempts": 240}
# Run inside a container: try each host:port, print one JSON line of {target: "ok" | error}.
PROBE = """
import json, socket, sys
out = {}
for target in sys.argv[1:]:
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        out[target] = "ok"
    except OSError as error:
        out[target] = type(error).__name__ + ": " + str(error)
print(json.dumps(out))
"""


class HostServer:
    """A TCP server on every address of this host; remembers who connected."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("0.0.0.0", 0))  # every address of the host
        self.port = self.sock.getsockname()[1]
        self.peers: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            conn.close()


@pytest.fixture
def host_server() -> Iterator[HostServer]:
    server = HostServer()
    try:
        yield server
    finally:
        server.sock.close()


def host_addresses() -> list[str]:
    """This host's IPv4 addresses other than loopback and Docker's bridges (e.g. eth0's)."""
    lines = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    found = []
    for line in lines:
        fields = line.split()
        name, address = fields[1], fields[3].split("/")[0]
        if not name.startswith(("lo", "docker", "br-", "smlocal", "veth")):
            found.append(address)
    return found


def clients(url: str) -> tuple[Any, Any]:
    config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    kwargs: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1", "config": config}
    return boto3.client("sagemaker", **kwargs), boto3.client("sagemaker-runtime", **kwargs)


def deploy(sm: Any, name: str, image: str, *, isolated: bool, env: dict[str, str]) -> None:
    sm.create_model(
        ModelName=f"{name}-m",
        PrimaryContainer={"Image": image, "Environment": env},
        EnableNetworkIsolation=isolated,
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-c",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{name}-m",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-c")


def container_of(endpoint: str, service_id: str) -> Any:
    (found,) = docker.from_env().containers.list(
        ignore_removed=True,
        filters={"label": [f"{LABEL_ENDPOINT}={endpoint}", f"smlocal.session={service_id}"]},
    )
    return found


def probe(container: Any, targets: list[str]) -> dict[str, str]:
    result = container.exec_run(["python3", "-c", PROBE, *targets])
    assert result.exit_code == 0, result.output
    answer: dict[str, str] = json.loads(result.output.decode().strip().splitlines()[-1])
    return answer


def test_isolated_endpoint_serves_and_cannot_reach_out(
    docker_images: None, tmp_path: Path, host_server: HostServer
) -> None:
    image = fixture_image("echo")
    settings = MonitorSettings(ping_interval_s=0.5, stop_grace_s=1)
    with service_in_background(DockerBackend(), state=StateDir(tmp_path), settings=settings) as url:
        sm, runtime = clients(url)
        deploy(sm, "iso", image, isolated=True, env={})
        deploy(sm, "open", image, isolated=False, env={})
        for name in ("iso", "open"):
            sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)

        # Traffic reaches the isolated container (health checks did too: it is InService).
        for _ in range(20):
            answer = runtime.invoke_endpoint(
                EndpointName="iso", Body=b'{"x": 1}', ContentType="application/json"
            )
            assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
            assert json.loads(answer["Body"].read()) == {"x": 1}
        assert sm.describe_model(ModelName="iso-m")["EnableNetworkIsolation"] is True

        service_id = (tmp_path / "service" / "id").read_text().strip()
        isolated, networked = container_of("iso", service_id), container_of("open", service_id)
        isolated.reload()
        networks = isolated.attrs["NetworkSettings"]["Networks"]
        assert list(networks) == [ISOLATED_NETWORK]
        assert not isolated.attrs["NetworkSettings"]["Ports"]  # nothing published
        gateway = networks[ISOLATED_NETWORK]["Gateway"]
        networked.reload()
        # A model container with network is on smlocal's serving network (not Docker's bridge).
        neighbour = networked.attrs["NetworkSettings"]["Networks"][SERVING_NETWORK]["IPAddress"]
        docker0 = networked.attrs["NetworkSettings"]["Networks"][SERVING_NETWORK]["Gateway"]

        port = host_server.port
        on_host = [f"{a}:{port}" for a in [*host_addresses(), docker0, gateway]]
        outside = [f"{neighbour}:8080", "1.1.1.1:443"]
        blocked = probe(isolated, [*on_host, *outside])
        assert all(result != "ok" for result in blocked.values()), blocked
        assert host_server.peers == []

        # The same probe from a container with network: the host's server answers it.
        reached = probe(networked, on_host[:1])
        assert reached == {on_host[0]: "ok"}, reached
        assert host_server.peers, "the control container's connection was not seen"

        # Still serving after the probes.
        answer = runtime.invoke_endpoint(EndpointName="iso", Body=b"ok", ContentType="text/plain")
        assert answer["Body"].read() == b"ok"


def test_a_model_that_downloads_at_startup_fails_when_isolated(
    docker_images: None, tmp_path: Path, host_server: HostServer
) -> None:
    addresses = host_addresses()
    if not addresses:
        pytest.skip("this host has no address besides loopback and Docker's bridges")
    hub = f"{addresses[0]}:{host_server.port}"
    settings = MonitorSettings(ping_interval_s=0.5, stop_grace_s=1)
    with service_in_background(DockerBackend(), state=StateDir(tmp_path), settings=settings) as url:
        sm, _ = clients(url)
        env = {"FIXTURE_NETWORK_PROBE": hub}
        deploy(sm, "dl", fixture_image("needs-network"), isolated=True, env=env)
        with pytest.raises(Exception, match="Failed"):
            sm.get_waiter("endpoint_in_service").wait(EndpointName="dl", WaiterConfig=WAIT)
        described = sm.describe_endpoint(EndpointName="dl")
        assert described["EndpointStatus"] == "Failed"
        assert "exited with code 5" in described["FailureReason"]
        assert f"cannot reach {hub}" in described["FailureReason"]
        assert host_server.peers == []
