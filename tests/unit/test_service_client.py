"""What ``smlocal serve`` / ``stop`` / ``ps`` do on the service: deploy, name collisions,
deleting only what serve made, Ctrl-C while Creating. Real service and boto3, fake containers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.errors import ConfigError
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.service.client import (
    deploy,
    deploy_requests,
    describe_or_none,
    endpoint_rows,
    sagemaker_client,
    undeploy,
    wait_until_settled,
)
from smlocal.emulator.service.quick_serve import LogTail, serve_attached
from smlocal.emulator.service.resources import SERVE_TAG
from smlocal.emulator.spec import EndpointSpec, build_spec
from smlocal.emulator.state import StateDir
from tests.unit.fakes import FakeBackend, FakeImage

FAST = MonitorSettings(ping_interval_s=0.2, stop_grace_s=1)


def _spec(name: str, image: str = "echo:1", **fields: Any) -> EndpointSpec:
    return build_spec(name=name, variants=[{"image": image, **fields}])


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Any, StateDir]]:
    backend = FakeBackend({"echo:1": FakeImage(), "never-listens:1": FakeImage(listens=False)})
    state = StateDir(tmp_path / "home")
    with service_in_background(backend, state=state, settings=FAST) as url:
        yield sagemaker_client(url), state


def test_requests_name_everything_uniquely_and_tag_it(tmp_path: Path) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"x")
    spec = build_spec(
        name="a" * 63,
        variants=[
            {"name": "Blue", "image": "i:1", "model": str(model), "env": {"K": "V"}},
            {"name": "Green", "image": "i:2", "weight": 2, "instance_count": 2},
        ],
        startup_timeout_s=90,
    )
    requests = deploy_requests(spec, suffix="abc123")
    names = [m["ModelName"] for m in requests.models] + [requests.config["EndpointConfigName"]]
    assert len({m["ModelName"] for m in requests.models}) == 2
    assert "-Blue-" in names[0]
    assert "-Green-" in names[1]
    assert all(len(n) <= 63 and n.endswith("-abc123") for n in names)
    assert requests.models[0]["PrimaryContainer"] == {
        "Image": "i:1",
        "ModelDataUrl": str(model.resolve()),
        "Environment": {"K": "V"},
    }
    green = requests.config["ProductionVariants"][1]
    assert green["InitialInstanceCount"] == 2
    assert green["InitialVariantWeight"] == 2
    assert green["ContainerStartupHealthCheckTimeoutInSeconds"] == 90
    for request in (*requests.models, requests.config, requests.endpoint):
        assert request["Tags"] == [{"Key": SERVE_TAG, "Value": "a" * 63}]


def test_a_missing_local_model_is_a_usage_error() -> None:
    spec = _spec("m", model="/does/not/exist.tar.gz")
    with pytest.raises(ConfigError, match=r"/does/not/exist\.tar\.gz"):
        deploy_requests(spec)


@given(
    name=st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?", fullmatch=True),
    variant=st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,40}[a-zA-Z0-9])?", fullmatch=True),
)
@settings(max_examples=60, deadline=None)
def test_generated_names_pass_the_service_pattern(name: str, variant: str) -> None:
    import re

    pattern = re.compile(r"^[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?$")
    spec = build_spec(name=name, variants=[{"name": variant, "image": "i:1"}])
    requests = deploy_requests(spec)
    for generated in (requests.models[0]["ModelName"], requests.config["EndpointConfigName"]):
        assert len(generated) <= 63
        assert pattern.match(generated), generated


def test_deploy_then_undeploy_removes_only_what_serve_made(
    service: tuple[Any, StateDir],
) -> None:
    client, _ = service
    # A user's own model and config, on an endpoint they made themselves.
    client.create_model(ModelName="mine", PrimaryContainer={"Image": "echo:1"})
    client.create_endpoint_config(
        EndpointConfigName="mine",
        ProductionVariants=[
            {
                "VariantName": "A",
                "ModelName": "mine",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    client.create_endpoint(EndpointName="theirs", EndpointConfigName="mine")
    deploy(client, _spec("served"))
    for name in ("served", "theirs"):
        answer = wait_until_settled(client, name, lambda _s, _r: None, poll_s=0.05)
        assert answer["EndpointStatus"] == "InService"
    assert [row.name for row in endpoint_rows(client)] == ["theirs", "served"]
    assert undeploy(client, "served")
    assert undeploy(client, "theirs")
    assert not undeploy(client, "served")
    assert [m["ModelName"] for m in client.list_models()["Models"]] == ["mine"]
    configs = client.list_endpoint_configs()["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in configs] == ["mine"]


def test_a_second_deploy_of_a_name_is_refused_and_leaves_nothing(
    service: tuple[Any, StateDir],
) -> None:
    client, _ = service
    deploy(client, _spec("taken"))
    wait_until_settled(client, "taken", lambda _s, _r: None, poll_s=0.05)
    before = client.list_models()["Models"]
    with pytest.raises(ConfigError, match="already running"):
        deploy(client, _spec("taken"))
    with pytest.raises(ConfigError, match="already running"):
        deploy(client, _spec("TAKEN"))  # endpoint names are case-insensitive on AWS
    assert client.list_models()["Models"] == before
    assert client.describe_endpoint(EndpointName="taken")["EndpointStatus"] == "InService"


def test_a_serve_endpoint_can_be_deleted_while_creating_others_cannot(
    service: tuple[Any, StateDir],
) -> None:
    client, _ = service
    deploy(client, _spec("stuck", image="never-listens:1"))
    client.create_model(ModelName="slow", PrimaryContainer={"Image": "never-listens:1"})
    client.create_endpoint_config(
        EndpointConfigName="slow",
        ProductionVariants=[
            {
                "VariantName": "A",
                "ModelName": "slow",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    client.create_endpoint(EndpointName="users", EndpointConfigName="slow")
    time.sleep(0.3)
    assert client.describe_endpoint(EndpointName="stuck")["EndpointStatus"] == "Creating"
    started = time.monotonic()
    assert undeploy(client, "stuck", timeout_s=10)
    assert time.monotonic() - started < 5
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="Cannot update in-progress endpoint"):
        client.delete_endpoint(EndpointName="users")


def test_serve_attached_ends_when_the_endpoint_is_deleted_elsewhere(
    service: tuple[Any, StateDir],
) -> None:
    client, state = service
    statuses: list[str] = []

    class Events:
        def status(self, endpoint: str, status: str, detail: str) -> None:
            statuses.append(status)

        def container_log(self, line: str) -> None:
            pass

    def delete_once_in_service() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if "InService" in statuses:
                client.delete_endpoint(EndpointName="attached")
                return
            time.sleep(0.05)

    other = threading.Thread(target=delete_once_in_service)
    other.start()
    url = client.meta.endpoint_url
    outcome = serve_attached(url, _spec("attached"), Events(), state)
    other.join()
    assert outcome.status == "Deleted"
    assert statuses[:2] == ["Creating", "InService"]
    assert statuses[2:] in ([], ["Deleting"])  # the service's Deleting, if seen; none of ours
    # what serve made went with it
    assert client.list_models()["Models"] == []
    assert client.list_endpoint_configs()["EndpointConfigs"] == []


def test_log_tail_returns_whole_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("old\n")
    tail = LogTail(path)
    assert tail.read() == []
    with path.open("a") as handle:
        handle.write("one\ntw")
    assert tail.read() == ["one"]
    with path.open("a") as handle:
        handle.write("o\n")
    assert tail.read() == ["two"]
    assert LogTail(path, offset=0).read() == ["old", "one", "two"]


def test_a_dead_serves_endpoint_is_deleted_not_restored_at_restart(tmp_path: Path) -> None:
    backend = FakeBackend({"echo:1": FakeImage()})
    state = StateDir(tmp_path / "home")
    with service_in_background(backend, state=state, settings=FAST) as url:
        client = sagemaker_client(url)
        deploy(client, _spec("owned-by-dead"), attached_to="999999999:1")  # no such process
        deploy(client, _spec("detached"))  # serve --detach: no owner, restored
        for name in ("owned-by-dead", "detached"):
            wait_until_settled(client, name, lambda _s, _r: None, poll_s=0.05)
    with service_in_background(backend, state=state, settings=FAST) as url:
        client = sagemaker_client(url)
        deadline = time.monotonic() + 10
        while describe_or_none(client, "owned-by-dead") is not None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        answer = wait_until_settled(client, "detached", lambda _s, _r: None, poll_s=0.05)
        assert answer["EndpointStatus"] == "InService"
