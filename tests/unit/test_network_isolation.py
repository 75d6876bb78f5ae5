"""EnableNetworkIsolation without Docker: the spec field, the Model → spec mapping, and the Docker
backend's isolated network (made once, internal, no inter-container traffic, nothing published)
and host firewall rule, against a stand-in for the docker SDK client."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from smlocal.emulator import docker_backend
from smlocal.emulator.backend import ISOLATED_NETWORK, LABEL_NETWORK, ContainerRun
from smlocal.emulator.docker_backend import (
    ISOLATED_BRIDGE,
    PIDS_LIMIT,
    SERVING_NETWORK,
    DockerBackend,
)
from smlocal.emulator.errors import BackendError
from smlocal.emulator.service.specs import endpoint_spec
from smlocal.emulator.spec import build_spec


# ---- spec and mapping ------------------------------------------------------------------------
def test_variants_have_network_unless_isolated() -> None:
    spec = build_spec(name="ep", variants=[{"image": "i"}])
    assert spec.variants[0].network_isolation is False
    spec = build_spec(name="ep", variants=[{"image": "i", "network_isolation": True}])
    assert spec.variants[0].network_isolation is True


def _spec_for(model: dict[str, Any]) -> Any:
    config = {"ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m"}]}
    model = {"ModelName": "m", "PrimaryContainer": {"Image": "img:1"}, **model}
    return endpoint_spec("ep", config, {"m": model}, lambda _ref: None)


def test_enable_network_isolation_reaches_the_spec() -> None:
    assert _spec_for({"EnableNetworkIsolation": True}).variants[0].network_isolation is True
    assert _spec_for({"EnableNetworkIsolation": False}).variants[0].network_isolation is False
    assert _spec_for({}).variants[0].network_isolation is False


# ---- the Docker backend ----------------------------------------------------------------------
class _Network:
    def __init__(self, client: _Client, name: str, attrs: dict[str, Any]) -> None:
        self.client, self.name, self.id, self.attrs = client, name, "n" * 64, attrs

    def remove(self) -> None:
        self.client.removed.append(self.name)
        self.client.networks_by_name.pop(self.name)


class _Networks:
    def __init__(self, client: _Client) -> None:
        self.client = client

    def list(self, names: list[str]) -> list[_Network]:
        return [n for name, n in self.client.networks_by_name.items() if name in names]

    def create(self, name: str, **options: Any) -> _Network:
        self.client.created.append((name, options))
        attrs = {
            "Internal": options.get("internal", False),
            "Labels": options.get("labels") or {},
            "Options": options.get("options") or {},
            "Containers": {},
        }
        network = self.client.networks_by_name[name] = _Network(self.client, name, attrs)
        return network


class _Container:
    id = "c" * 64

    def __init__(self, network: str | None, published: bool) -> None:
        ports = {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]} if published else {}
        networks = {network or "bridge": {"IPAddress": "172.30.0.2"}}
        self.attrs = {"NetworkSettings": {"Ports": ports, "Networks": networks}}

    def reload(self) -> None:
        return None


class _Containers:
    def __init__(self, client: _Client) -> None:
        self.client = client

    def run(self, image: str, **options: Any) -> _Container:
        self.client.runs.append(options)
        return _Container(options.get("network"), "ports" in options)


class _Images:
    def get(self, image: str) -> Any:
        return type("Image", (), {"attrs": {}})()


class _Client:
    def __init__(self) -> None:
        self.networks_by_name: dict[str, _Network] = {}
        self.created: list[tuple[str, dict[str, Any]]] = []
        self.removed: list[str] = []
        self.runs: list[dict[str, Any]] = []
        self.networks = _Networks(self)
        self.containers = _Containers(self)
        self.images = _Images()


@pytest.fixture
def iptables(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every iptables command the backend runs; ``-C`` (is the rule there?) answers no."""
    calls: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command[1:])
        return subprocess.CompletedProcess(command, 1 if "-C" in command else 0, "", "")

    monkeypatch.setattr(docker_backend.shutil, "which", lambda *_a, **_k: "/usr/sbin/iptables")
    monkeypatch.setattr(docker_backend.subprocess, "run", run)
    return calls


def _run(network: str | None = ISOLATED_NETWORK) -> ContainerRun:
    return ContainerRun(
        image="img:1",
        name="c",
        model_dir=Path("/tmp/model"),
        env={},
        cpus=1.0,
        memory_bytes=2**30,
        labels={},
        network=network,
    )


def test_isolated_run_joins_an_internal_network_made_once(iptables: list[list[str]]) -> None:
    client = _Client()
    backend = DockerBackend(client)
    first = backend.start(_run())
    backend.start(_run())
    assert len(client.created) == 1
    name, options = client.created[0]
    assert name == ISOLATED_NETWORK
    assert options["internal"] is True
    assert options["labels"] == {LABEL_NETWORK: "isolated"}
    assert options["options"]["com.docker.network.bridge.enable_icc"] == "false"
    # Only that network, nothing published: the host reaches it on its address there.
    assert all(run["network"] == ISOLATED_NETWORK and "ports" not in run for run in client.runs)
    assert first.published == first.direct == ("172.30.0.2", 8080)
    rule = ["INPUT", "-i", ISOLATED_BRIDGE, "-m", "conntrack", "--ctstate", "NEW", "-j", "REJECT"]
    assert iptables == [["-w", "-C", *rule], ["-w", "-I", *rule]]


def test_a_run_with_network_publishes_its_port_on_the_serving_network(
    iptables: list[list[str]],
) -> None:
    client = _Client()
    container = DockerBackend(client).start(_run(network=None))
    DockerBackend(client).start(_run(network=None))  # a restarted service reuses it
    assert iptables == []
    assert [name for name, _ in client.created] == [SERVING_NETWORK]
    options = client.created[0][1]
    assert options["internal"] is False  # a route out, as an instance has
    assert options["labels"] == {LABEL_NETWORK: "serving"}
    assert options["options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert client.runs[0]["network"] == SERVING_NETWORK
    assert client.runs[0]["ports"] == {"8080/tcp": ("127.0.0.1", None)}
    assert container.published == ("127.0.0.1", 49153)


@pytest.mark.parametrize("network", [None, ISOLATED_NETWORK])
def test_every_container_is_hardened(iptables: list[list[str]], network: str | None) -> None:
    client = _Client()
    DockerBackend(client).start(_run(network=network))
    run = client.runs[0]
    assert run["pids_limit"] == PIDS_LIMIT
    assert run["security_opt"] == ["no-new-privileges:true"]
    assert run["privileged"] is False


def test_a_serving_network_of_that_name_with_icc_on_is_refused(
    iptables: list[list[str]],
) -> None:
    client = _Client()
    client.networks.create(SERVING_NETWORK, labels={LABEL_NETWORK: "serving"})
    with pytest.raises(BackendError, match="traffic between containers off"):
        DockerBackend(client).start(_run(network=None))
    assert client.runs == []


def test_an_existing_isolated_network_is_reused(iptables: list[list[str]]) -> None:
    client = _Client()
    DockerBackend(client).start(_run())
    DockerBackend(client).start(_run())  # another backend (a restarted service)
    assert len(client.created) == 1 and client.removed == []


def test_a_network_of_that_name_with_a_way_out_is_refused(iptables: list[list[str]]) -> None:
    client = _Client()
    client.networks.create(ISOLATED_NETWORK, internal=False)
    with pytest.raises(BackendError, match="not internal"):
        DockerBackend(client).start(_run())
    assert client.runs == []


def test_an_older_unlabelled_network_is_replaced_when_unused(iptables: list[list[str]]) -> None:
    client = _Client()
    client.networks.create(ISOLATED_NETWORK, internal=True, labels={"smlocal.session": "x"})
    DockerBackend(client).start(_run())
    assert client.removed == [ISOLATED_NETWORK]
    assert client.networks_by_name[ISOLATED_NETWORK].attrs["Labels"] == {LABEL_NETWORK: "isolated"}


def test_without_iptables_rights_it_warns_and_still_isolates(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refused(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 4, "", "Permission denied (you must be root)")

    monkeypatch.setattr(docker_backend.shutil, "which", lambda *_a, **_k: "/usr/sbin/iptables")
    monkeypatch.setattr(docker_backend.subprocess, "run", refused)
    client = _Client()
    DockerBackend(client).start(_run())
    assert client.runs[0]["network"] == ISOLATED_NETWORK
    assert "Permission denied" in caplog.text and "this host's own addresses" in caplog.text
