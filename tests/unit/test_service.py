"""The local service through boto3's real `sagemaker` and `sagemaker-runtime` clients.

The containers are the in-memory fake backend's (real HTTP servers in threads), so the
control plane, the lifecycle (blue/green, live scaling, restart) and the runtime API run for
real in seconds. The same flows on Docker are in tests/e2e/test_service_cli.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from tests.harness import RequestLoop
from tests.unit.fakes import FakeBackend, FakeImage

FAST = MonitorSettings(ping_interval_s=0.2, stop_grace_s=1)
WAIT = {"Delay": 0.2, "MaxAttempts": 150}


def _tagged(tag: str) -> FakeImage:
    def handler(
        method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path == "/ping":
            return 200, {}, b""
        return 200, {"content-type": "application/json"}, json.dumps({"image": tag}).encode()

    return FakeImage(handler=handler)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(
        {
            "blue:1": _tagged("blue"),
            "green:1": _tagged("green"),
            "crashes:1": FakeImage(exit_code=3, log_lines=("failing to load model",)),
            "never-listens:1": FakeImage(listens=False),
        }
    )


class Clients:
    def __init__(self, url: str) -> None:
        config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        self.sm = boto3.client(
            "sagemaker", endpoint_url=url, region_name="us-east-1", config=config
        )
        self.rt = boto3.client(
            "sagemaker-runtime", endpoint_url=url, region_name="us-east-1", config=config
        )

    def deploy(self, name: str, image: str, *, variants: int = 1, count: int = 1) -> None:
        self.sm.create_model(ModelName=f"{name}-m", PrimaryContainer={"Image": image})
        self.config(f"{name}-c", f"{name}-m", variants=variants, count=count)
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-c")
        self.sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)

    def config(self, config: str, model: str, *, variants: int = 1, count: int = 1) -> None:
        self.sm.create_endpoint_config(
            EndpointConfigName=config,
            ProductionVariants=[
                {
                    "VariantName": f"V{i}",
                    "ModelName": model,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": count,
                    "InitialVariantWeight": 1.0,
                }
                for i in range(1, variants + 1)
            ],
        )

    def invoke(self, name: str) -> dict[str, Any]:
        answer = self.rt.invoke_endpoint(
            EndpointName=name, Body=b"{}", ContentType="application/json"
        )
        return {"variant": answer["InvokedProductionVariant"], **json.loads(answer["Body"].read())}


@pytest.fixture
def service(backend: FakeBackend, tmp_path: Path) -> Iterator[Clients]:
    with service_in_background(backend, state=StateDir(tmp_path), settings=FAST) as url:
        yield Clients(url)


def Loop(clients: Clients, name: str) -> RequestLoop:
    return RequestLoop(lambda: clients.invoke(name))


def test_create_describe_invoke_delete(service: Clients) -> None:
    service.deploy("ep", "blue:1")
    described = service.sm.describe_endpoint(EndpointName="ep")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointArn"] == "arn:aws:sagemaker:us-east-1:000000000000:endpoint/ep"
    variant = described["ProductionVariants"][0]
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (1, 1)
    assert variant["DeployedImages"][0]["SpecifiedImage"] == "blue:1"
    assert service.invoke("ep") == {"variant": "V1", "image": "blue"}
    service.sm.delete_endpoint(EndpointName="ep")
    service.sm.get_waiter("endpoint_deleted").wait(EndpointName="ep", WaiterConfig=WAIT)
    with pytest.raises(ClientError, match="of account 000000000000 not found"):
        service.invoke("ep")
    service.sm.delete_endpoint_config(EndpointConfigName="ep-c")
    service.sm.delete_model(ModelName="ep-m")
    assert service.sm.list_models()["Models"] == []


def test_aws_error_texts(service: Clients) -> None:
    service.deploy("ep", "blue:1")
    errors = {
        "create again": lambda: service.sm.create_endpoint(
            EndpointName="EP", EndpointConfigName="ep-c"
        ),
        "missing endpoint": lambda: service.sm.describe_endpoint(EndpointName="nope"),
        "missing config": lambda: service.sm.create_endpoint(
            EndpointName="x", EndpointConfigName="nope"
        ),
        "missing model": lambda: service.sm.delete_model(ModelName="nope"),
    }
    texts = {}
    for what, call in errors.items():
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        texts[what] = caught.value.response["Error"]["Message"]
    arn = "arn:aws:sagemaker:us-east-1:000000000000"
    assert texts == {
        "create again": f'Cannot create already existing endpoint "{arn}:endpoint/ep".',
        "missing endpoint": f'Could not find endpoint "{arn}:endpoint/nope".',
        "missing config": f'Could not find endpoint configuration "{arn}:endpoint-config/nope".',
        "missing model": f'Could not find model "{arn}:model/nope".',
    }


def test_input_validated_from_botocore_model_with_all_violations(service: Clients) -> None:
    with pytest.raises(ClientError) as caught:
        service.sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                {"VariantName": "A", "ModelName": "ENTER MODEL NAME", "InitialInstanceCount": 1},
                {"VariantName": "B", "ModelName": "m", "InitialInstanceCount": 1},
            ],
        )
    message = caught.value.response["Error"]["Message"]
    assert message.startswith("1 validation error detected: Value 'ENTER MODEL NAME' at ")
    assert "'productionVariants.1.member.modelName' failed to satisfy constraint: " in message
    assert "Member must satisfy regular expression pattern" in message


def test_unknown_operation_is_aws_shaped(service: Clients) -> None:
    with pytest.raises(ClientError) as caught:
        service.sm.list_training_jobs()
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "SageMaker.ListTrainingJobs" in caught.value.response["Error"]["Message"]


def test_list_pagination_and_filters(service: Clients) -> None:
    for index in range(12):
        service.sm.create_model(
            ModelName=f"model-{index:02d}", PrimaryContainer={"Image": "blue:1"}
        )
    pages = service.sm.get_paginator("list_models").paginate(PaginationConfig={"PageSize": 5})
    names = [m["ModelName"] for page in pages for m in page["Models"]]
    assert sorted(names) == [f"model-{i:02d}" for i in range(12)]
    assert len(set(names)) == 12
    ascending = service.sm.list_models(SortBy="Name", SortOrder="Ascending", MaxResults=3)
    assert [m["ModelName"] for m in ascending["Models"]] == ["model-00", "model-01", "model-02"]
    assert [m["ModelName"] for m in service.sm.list_models(NameContains="L-1")["Models"]] == [
        "model-11",
        "model-10",
    ]
    with pytest.raises(ClientError, match="Invalid NextToken"):
        service.sm.list_models(NextToken="garbage")
    import datetime

    future = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)
    assert len(service.sm.list_models(CreationTimeBefore=future, MaxResults=100)["Models"]) == 12
    assert service.sm.list_models(CreationTimeAfter=future)["Models"] == []


def test_tags(service: Clients) -> None:
    arn = service.sm.create_model(
        ModelName="m", PrimaryContainer={"Image": "blue:1"}, Tags=[{"Key": "team", "Value": "a"}]
    )["ModelArn"]
    service.sm.add_tags(
        ResourceArn=arn, Tags=[{"Key": "team", "Value": "b"}, {"Key": "x", "Value": "1"}]
    )
    assert service.sm.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "team", "Value": "b"},
        {"Key": "x", "Value": "1"},
    ]
    service.sm.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert service.sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "x", "Value": "1"}]


def test_failed_create_reports_exit_code_and_logs(service: Clients) -> None:
    service.sm.create_model(ModelName="m", PrimaryContainer={"Image": "crashes:1"})
    service.config("c", "m")
    service.sm.create_endpoint(EndpointName="broken", EndpointConfigName="c")
    with pytest.raises(Exception, match="Failed"):
        service.sm.get_waiter("endpoint_in_service").wait(EndpointName="broken", WaiterConfig=WAIT)
    reason = service.sm.describe_endpoint(EndpointName="broken")["FailureReason"]
    assert "exited with code 3" in reason
    assert "failing to load model" in reason


def test_blue_green_update_loses_no_request(service: Clients) -> None:
    service.deploy("ep", "blue:1")
    service.sm.create_model(ModelName="green-m", PrimaryContainer={"Image": "green:1"})
    service.config("green-c", "green-m")
    with Loop(service, "ep") as loop:
        service.sm.update_endpoint(EndpointName="ep", EndpointConfigName="green-c")
        assert service.sm.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "Updating"
        service.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
        while not loop.answers or loop.answers[-1]["image"] != "green":
            time.sleep(0.01)
    assert loop.failures == []
    assert {a["image"] for a in loop.answers} == {"blue", "green"}
    described = service.sm.describe_endpoint(EndpointName="ep")
    assert described["EndpointConfigName"] == "green-c"
    assert "FailureReason" not in described


def test_failed_update_rolls_back_and_keeps_serving(service: Clients) -> None:
    service.deploy("ep", "blue:1")
    service.sm.create_model(ModelName="bad-m", PrimaryContainer={"Image": "crashes:1"})
    service.config("bad-c", "bad-m")
    with Loop(service, "ep") as loop:
        service.sm.update_endpoint(EndpointName="ep", EndpointConfigName="bad-c")
        service.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
    assert loop.failures == []
    assert {a["image"] for a in loop.answers} == {"blue"}
    described = service.sm.describe_endpoint(EndpointName="ep")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "ep-c"
    assert "exited with code 3" in described["FailureReason"]


def test_weights_and_capacities_change_live(service: Clients, backend: FakeBackend) -> None:
    service.deploy("ep", "blue:1", variants=2)
    with Loop(service, "ep") as loop:
        service.sm.update_endpoint_weights_and_capacities(
            EndpointName="ep",
            DesiredWeightsAndCapacities=[
                {"VariantName": "V1", "DesiredWeight": 0.0, "DesiredInstanceCount": 3},
                {"VariantName": "V2", "DesiredWeight": 1.0},
            ],
        )
        service.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
        variants = service.sm.describe_endpoint(EndpointName="ep")["ProductionVariants"]
        assert [(v["CurrentWeight"], v["CurrentInstanceCount"]) for v in variants] == [
            (0.0, 3),
            (1.0, 1),
        ]
        seen = len(loop.answers)
        while len(loop.answers) < seen + 20:
            time.sleep(0.01)
        assert {a["variant"] for a in loop.answers[seen:]} == {"V2"}
        service.sm.update_endpoint_weights_and_capacities(
            EndpointName="ep",
            DesiredWeightsAndCapacities=[{"VariantName": "V1", "DesiredInstanceCount": 1}],
        )
        service.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
    assert loop.failures == []
    running = [c for c in backend.containers.values() if c.server is not None]
    assert len(running) == 2


def test_changes_refused_while_creating(service: Clients) -> None:
    service.sm.create_model(ModelName="m", PrimaryContainer={"Image": "never-listens:1"})
    service.config("c", "m")
    service.sm.create_endpoint(EndpointName="slow", EndpointConfigName="c")
    arn = "arn:aws:sagemaker:us-east-1:000000000000:endpoint/slow"
    for call in (
        lambda: service.sm.delete_endpoint(EndpointName="slow"),
        lambda: service.sm.update_endpoint(EndpointName="slow", EndpointConfigName="c"),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Message"] == (
            f'Cannot update in-progress endpoint "{arn}".'
        )


def test_restart_brings_endpoints_back_and_sweeps_the_old_containers(
    backend: FakeBackend, tmp_path: Path
) -> None:
    state = StateDir(tmp_path)
    with service_in_background(backend, state=state, settings=FAST) as url:
        Clients(url).deploy("one", "blue:1")
        Clients(url).deploy("two", "green:1", count=2)
    assert not [c for c in backend.containers.values() if c.server is not None]
    with service_in_background(backend, state=state, settings=FAST) as url:
        clients = Clients(url)
        for name in ("one", "two"):
            clients.sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)
        assert clients.invoke("one")["image"] == "blue"
        assert clients.invoke("two")["image"] == "green"
        running = [c for c in backend.containers.values() if c.server is not None]
        assert len(running) == 3


def test_another_spelling_of_the_name_changes_the_same_endpoint(
    service: Clients, backend: FakeBackend
) -> None:
    service.deploy("ep", "blue:1")
    service.sm.create_model(ModelName="green-m", PrimaryContainer={"Image": "green:1"})
    service.config("green-c", "green-m")
    service.sm.update_endpoint(EndpointName="EP", EndpointConfigName="green-c")
    service.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
    assert service.invoke("ep")["image"] == "green"
    service.sm.update_endpoint_weights_and_capacities(
        EndpointName="Ep",
        DesiredWeightsAndCapacities=[{"VariantName": "V1", "DesiredInstanceCount": 2}],
    )
    service.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
    running = [c for c in backend.containers.values() if c.server is not None]
    assert len(running) == 2  # one fleet, of two: no orphaned blue under another name


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"VariantName": "V1", "DesiredInstanceCount": 22}, "instance_count"),
        ({"VariantName": "V1", "DesiredWeight": 0.0}, "weight above 0"),
    ],
)
def test_desired_changes_keep_the_endpoint_valid(
    service: Clients, change: dict[str, Any], needle: str
) -> None:
    service.deploy("ep", "blue:1")
    with pytest.raises(ClientError, match=needle) as caught:
        service.sm.update_endpoint_weights_and_capacities(
            EndpointName="ep", DesiredWeightsAndCapacities=[change]
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert service.sm.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "InService"


def test_a_model_without_image_is_refused_at_create_endpoint(service: Clients) -> None:
    service.sm.create_model(ModelName="m", PrimaryContainer={"Environment": {"A": "b"}})
    service.config("c", "m")
    with pytest.raises(ClientError, match="has no container Image") as caught:
        service.sm.create_endpoint(EndpointName="x", EndpointConfigName="c")
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_restart_keeps_what_was_deployed(backend: FakeBackend, tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    with service_in_background(backend, state=state, settings=FAST) as url:
        clients = Clients(url)
        clients.deploy("ep", "blue:1", variants=2)
        clients.sm.update_endpoint_weights_and_capacities(
            EndpointName="ep",
            DesiredWeightsAndCapacities=[
                {"VariantName": "V1", "DesiredWeight": 5.0, "DesiredInstanceCount": 2}
            ],
        )
        clients.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
        # AWS keeps an endpoint whose config and model were deleted running: so do we.
        clients.sm.delete_endpoint_config(EndpointConfigName="ep-c")
        clients.sm.delete_model(ModelName="ep-m")
    with service_in_background(backend, state=state, settings=FAST) as url:
        clients = Clients(url)
        clients.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
        variants = clients.sm.describe_endpoint(EndpointName="ep")["ProductionVariants"]
        assert [(v["CurrentWeight"], v["CurrentInstanceCount"]) for v in variants] == [
            (5.0, 2),
            (1.0, 1),
        ]
        assert variants[0]["DeployedImages"][0]["SpecifiedImage"] == "blue:1"


def test_one_service_per_home(backend: FakeBackend, tmp_path: Path) -> None:
    from smlocal.emulator.errors import ConfigError

    state = StateDir(tmp_path)
    with (
        service_in_background(backend, state=state, settings=FAST),
        pytest.raises(ConfigError, match="already runs"),
        service_in_background(backend, state=state, settings=FAST),
    ):
        pass


@pytest.mark.parametrize("body", [b'{"ModelName": NaN}', b"[" * 100_000, b"not json"])
def test_bodies_that_are_not_json_get_serialization_exception(
    service: Clients, body: bytes
) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        service.sm.meta.endpoint_url + "/",
        data=body,
        headers={
            "X-Amz-Target": "SageMaker.ListModels",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["__type"] == "SerializationException"


def test_promote_does_not_take_a_rolled_back_update_for_success(service: Clients) -> None:
    from types import SimpleNamespace

    from smlocal.promote.errors import PromoteError
    from smlocal.promote.sagemaker import wait_in_service

    service.deploy("ep", "blue:1")
    service.sm.create_model(ModelName="bad-m", PrimaryContainer={"Image": "crashes:1"})
    service.config("bad-c", "bad-m")
    service.sm.update_endpoint(EndpointName="ep", EndpointConfigName="bad-c")
    deployment = SimpleNamespace(
        clients=SimpleNamespace(sagemaker=service.sm),
        endpoint="ep",
        config_name="bad-c",
        request=SimpleNamespace(wait_timeout_s=60.0, poll_interval_s=0.1),
        reporter=SimpleNamespace(info=lambda _message: None),
    )
    with pytest.raises(PromoteError, match=r"was rolled back; it still serves ep-c: .*code 3"):
        wait_in_service(deployment)  # type: ignore[arg-type]


def test_members_the_model_lacks_are_not_stored(service: Clients) -> None:
    import urllib.request

    request = urllib.request.Request(
        service.sm.meta.endpoint_url + "/",
        data=json.dumps(
            {"ModelName": "m", "PrimaryContainer": {"Image": "blue:1"}, "Bogus": {"a": 1}}
        ).encode(),
        headers={"X-Amz-Target": "SageMaker.CreateModel"},
    )
    urllib.request.urlopen(request, timeout=10).read()
    assert "Bogus" not in service.sm.describe_model(ModelName="m")


# ---- re-adoption after a SIGKILL ---------------------------------------------------------
def _service_id(tmp_path: Path) -> str:
    return (tmp_path / "service" / "id").read_text().strip()


def _of(backend: FakeBackend, endpoint: str) -> set[str]:
    """The running containers of ``endpoint``."""
    labels = {c: backend.containers[c].run.labels for c in backend.running()}
    return {c for c, found in labels.items() if found.get("smlocal.endpoint") == endpoint}


def test_restart_after_sigkill_adopts_the_healthy_containers_and_removes_the_rest(
    backend: FakeBackend, tmp_path: Path
) -> None:
    from smlocal.emulator.backend import ContainerRun

    state = StateDir(tmp_path)
    with service_in_background(backend, state=state, settings=FAST) as url:
        clients = Clients(url)
        clients.deploy("one", "blue:1")
        clients.deploy("two", "green:1", count=3)
        clients.deploy("three", "green:1", count=2)
        clients.deploy("gone", "blue:1")
        backend.frozen = True  # from here on the service "is killed": it stops nothing
        clients.sm.update_endpoint_weights_and_capacities(
            EndpointName="two",
            DesiredWeightsAndCapacities=[{"VariantName": "V1", "DesiredInstanceCount": 1}],
        )
        clients.sm.get_waiter("endpoint_in_service").wait(EndpointName="two", WaiterConfig=WAIT)
        clients.sm.delete_endpoint(EndpointName="gone")
        clients.sm.get_waiter("endpoint_deleted").wait(EndpointName="gone", WaiterConfig=WAIT)
    backend.frozen = False
    one, two, three = _of(backend, "one"), _of(backend, "two"), _of(backend, "three")
    gone = _of(backend, "gone")
    assert [len(one), len(two), len(three), len(gone)] == [1, 3, 2, 1], "all left running"
    # "two" was scaled in to 1, which the dead service never carried out: of its three, one
    # has exited, and of the two healthy ones one is adopted, the surplus one removed.
    exited, *healthy = sorted(two, key=lambda c: backend.containers[c].run.name)
    backend.kill(exited)
    # "three": one runs but no longer answers (adopted: no; started afresh instead).
    deaf, well = sorted(three, key=lambda c: backend.containers[c].run.name)
    deaf_container = backend.containers[deaf]
    assert deaf_container.server is not None
    deaf_container.server.shutdown()
    deaf_container.server.server_close()
    deaf_container.server = None
    # A container of an older fleet of "one" (another image/spec), with this session's labels.
    stale = backend.start(
        ContainerRun(
            image="blue:1",
            name="smlocal-one-v1-9-stale",
            model_dir=None,
            env={},
            cpus=2.0,
            memory_bytes=8 << 30,
            labels={
                "smlocal.endpoint": "one",
                "smlocal.session": _service_id(tmp_path),
                "smlocal.variant": "V1",
                "smlocal.instance": "0",
                "smlocal.fleet": "an-older-fleet",
            },
        )
    ).id
    backend.stopped.clear()
    with service_in_background(backend, state=state, settings=FAST) as url:
        clients = Clients(url)
        for name in ("one", "two", "three"):
            clients.sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)
        assert _of(backend, "one") == one, "the healthy container of one is adopted"
        now_two, now_three = _of(backend, "two"), _of(backend, "three")
        assert len(now_two) == 1 and now_two < set(healthy), "one adopted, the surplus removed"
        assert len(now_three) == 2 and well in now_three and deaf not in now_three
        assert not _of(backend, "gone"), "the deleted endpoint's container is removed"
        assert {exited, deaf, stale, *(set(healthy) - now_two), *gone} <= backend.removed
        running = one | now_two | now_three
        assert set(backend.running()) == running, "nothing else runs"
        assert clients.invoke("one")["image"] == "blue"
        (adopted_one,) = one
        assert backend.containers[adopted_one].requests, "traffic reaches the adopted one"
        # Its log is followed from where the previous run's log file ended, not replayed.
        assert [since for cid, since in backend.follows if cid == adopted_one][-1] is not None
        variants = clients.sm.describe_endpoint(EndpointName="three")["ProductionVariants"]
        assert variants[0]["CurrentInstanceCount"] == 2
    assert not backend.running(), "a graceful stop stops the adopted containers too"


def test_adopted_instances_are_monitored_replaced_and_deleted_like_started_ones(
    backend: FakeBackend, tmp_path: Path
) -> None:
    state = StateDir(tmp_path)
    with service_in_background(backend, state=state, settings=FAST) as url:
        Clients(url).deploy("ep", "blue:1", count=2)
        backend.frozen = True
    backend.frozen = False
    before = _of(backend, "ep")
    with service_in_background(backend, state=state, settings=FAST) as url:
        clients = Clients(url)
        clients.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
        assert _of(backend, "ep") == before
        victim, survivor = sorted(before)
        backend.kill(victim)
        deadline = time.monotonic() + 30
        while len(_of(backend, "ep")) < 2 or victim in _of(backend, "ep"):
            assert time.monotonic() < deadline, "the dead adopted instance was not replaced"
            time.sleep(0.1)
        replaced = _of(backend, "ep")
        assert survivor in replaced
        names = sorted(backend.containers[c].run.name for c in replaced)
        assert len({n.rsplit("-", 2)[1] for n in names}) == 2, "no instance index reused"
        with Loop(clients, "ep") as loop:
            time.sleep(0.5)
        assert loop.failures == [] and loop.answers
        clients.sm.delete_endpoint(EndpointName="ep")
        clients.sm.get_waiter("endpoint_deleted").wait(EndpointName="ep", WaiterConfig=WAIT)
        assert survivor in backend.stopped and survivor in backend.removed
        assert not backend.running()
