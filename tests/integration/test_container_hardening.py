"""Model containers hardened like a SageMaker instance (issue 11, defect 10), on real Docker.

The running container has a PID limit and ``no-new-privileges``; it is on smlocal's serving
network only, so smlocal (the host) reaches it on its published port and its bridge address,
while another container, on Docker's default bridge or on that same network (another
endpoint's), cannot open a connection to it. The probe is proven able to connect first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from smlocal.emulator.backend import LABEL_ENDPOINT
from smlocal.emulator.docker_backend import PIDS_LIMIT, SERVING_NETWORK, DockerBackend
from smlocal.emulator.spec import build_spec
from tests.conftest import fixture_image
from tests.harness import Serving, serving

_TEST_LABEL = {"smlocal.test": "container-hardening"}
# Connect to each "host:port" argument; print one verdict per target.
_PROBE = """
import json, socket, sys
verdicts = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        verdicts[target] = "connected"
    except OSError as error:
        verdicts[target] = type(error).__name__
print(json.dumps(verdicts))
"""


@pytest.fixture(scope="module")
def endpoint(
    docker_backend: DockerBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serving]:
    spec = build_spec(name="hardened", variants=[{"image": fixture_image("echo")}])
    with serving(spec, docker_backend, tmp_path_factory.mktemp("hardened")) as handle:
        assert handle.status == "InService"
        yield handle


@pytest.fixture(scope="module")
def container(endpoint: Serving) -> Any:
    found = docker.from_env().containers.list(filters={"label": f"{LABEL_ENDPOINT}=hardened"})
    assert len(found) == 1
    return found[0]


@pytest.fixture
def started() -> Iterator[list[Any]]:
    """Containers a test starts itself, removed afterwards."""
    mine: list[Any] = []
    yield mine
    for item in mine:
        item.remove(force=True)


def _run(started: list[Any], network: str, *command: str, server: bool = False) -> Any:
    client = docker.from_env()
    options: dict[str, Any] = {"network": network, "labels": _TEST_LABEL, "detach": True}
    if server:
        item = client.containers.run(fixture_image("echo"), ["serve"], **options)
    else:
        options["entrypoint"] = ["python3", "-c", _PROBE]
        item = client.containers.run(fixture_image("echo"), list(command), **options)
    started.append(item)
    return item


def _probe(started: list[Any], network: str, *targets: str) -> dict[str, str]:
    item = _run(started, network, *targets)
    item.wait(timeout=60)
    verdicts: dict[str, str] = json.loads(item.logs(stdout=True, stderr=False))
    return verdicts


def _address(item: Any, network: str) -> str:
    item.reload()
    return str(item.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


def _until_listening(started: list[Any], network: str, target: str) -> None:
    for _ in range(60):  # the server takes a moment to start; no timing is asserted
        if _probe(started, network, target)[target] == "connected":
            return
        time.sleep(0.5)
    pytest.fail(f"the control server at {target} never listened")


def test_the_container_has_a_pid_limit_and_no_new_privileges(container: Any) -> None:
    host_config = container.attrs["HostConfig"]
    assert host_config["PidsLimit"] == PIDS_LIMIT
    assert "no-new-privileges:true" in (host_config["SecurityOpt"] or [])
    assert host_config["Privileged"] is False
    status = container.exec_run(["cat", "/proc/1/status"]).output.decode()
    assert "NoNewPrivs:\t1" in status  # the kernel's flag on the model server itself


def test_it_is_on_the_serving_network_only_and_published_on_loopback(container: Any) -> None:
    networks = container.attrs["NetworkSettings"]["Networks"]
    assert list(networks) == [SERVING_NETWORK]
    bindings = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    network = docker.from_env().networks.get(SERVING_NETWORK)
    assert network.attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert network.attrs["Internal"] is False  # a route out, as an instance has


def test_smlocal_reaches_it_and_the_kernel_holds_the_pid_limit(
    endpoint: Serving, container: Any
) -> None:
    client: Any = endpoint.runtime_client()
    answer = client.invoke_endpoint(EndpointName="hardened", Body=b'{"x": 1}')
    assert answer["Body"].read() == b'{"x": 1}'
    # The kernel enforces it: the container's cgroup says so (v2, else v1). A real fork bomb
    # would hold thousands of processes on a shared CI machine.
    limit = container.exec_run(
        ["sh", "-c", "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"]
    )
    assert limit.output.decode().strip() == str(PIDS_LIMIT)
    assert client.invoke_endpoint(EndpointName="hardened", Body=b"{}")["Body"].read() == b"{}"


def test_no_other_container_reaches_it(container: Any, started: list[Any]) -> None:
    target = f"{_address(container, SERVING_NETWORK)}:8080"
    published = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    control = _run(started, "bridge", server=True)
    control.reload()
    gateway = control.attrs["NetworkSettings"]["Networks"]["bridge"]["Gateway"]  # the host
    # The probe can connect: to a server beside it on the default bridge (ICC on there).
    control_target = f"{_address(control, 'bridge')}:8080"
    _until_listening(started, "bridge", control_target)

    from_default = _probe(started, "bridge", target, f"{gateway}:{published}", control_target)
    assert from_default[control_target] == "connected"
    assert from_default[target] != "connected"
    assert from_default[f"{gateway}:{published}"] != "connected"
    # Another endpoint's container would sit on the serving network itself.
    from_serving = _probe(started, SERVING_NETWORK, target)
    assert from_serving[target] != "connected"
