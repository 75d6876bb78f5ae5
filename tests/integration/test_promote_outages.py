"""promote with the AWS side going away at each step in turn, then cleanup (issue 11).

The moto server is really stopped at the first, and at the last, AWS call of each step (a
connection refused, as when the network or AWS drops: botocore's EndpointConnectionError),
then started again on the same port with its state. The manifest must list exactly what now
exists, and ``cleanup`` must leave nothing promote made while touching nothing it did not
make: resources named like the deployment's, made beforehand, stay. An outage during
cleanup itself leaves the rest in the manifest, and the next cleanup finishes.
(A call AWS *refuses* at each step: ``test_promote_moto.py``.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient

from smlocal.promote import plan
from smlocal.promote.aws import Clients
from smlocal.promote.cleanup import CleanupOptions, run_cleanup
from smlocal.promote.deploy import execute, prepare
from smlocal.promote.errors import CleanupError, StepFailedError
from smlocal.promote.manifest import Manifest
from tests.aws_fakes import FAKE_CREDENTIALS, local_registry, snapshot
from tests.integration.test_promote_moto import _diff, _live, _pass_gate, _request

pytestmark = pytest.mark.docker


class Moto:
    """A moto server that can be stopped and started again on its port, state kept (moto's
    backends live in this process, not in the server)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._make = ThreadedMotoServer
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        self.host, self.port = self.server.get_host_and_port()
        self.up = True

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.up:
            self.server.stop()
            self.up = False

    def start(self) -> None:
        if not self.up:
            self.server = self._make(ip_address=self.host, port=self.port, verbose=False)
            self.server.start()
            self.up = True


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    server = Moto()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAKE_CREDENTIALS.items():
            mp.setenv(key, value)
        mp.setenv("AWS_ENDPOINT_URL", server.url)
        mp.setenv("AWS_MAX_ATTEMPTS", "1")
        yield server
    server.stop()


@pytest.fixture(scope="module")
def registry() -> str:
    return local_registry()


@pytest.fixture()
def clients(moto: Moto) -> Iterator[Clients]:
    moto.start()
    yield Clients("us-east-1")
    moto.start()  # a failed test must not leave the next one without AWS


def _recording_calls(mp: pytest.MonkeyPatch, on_call: Callable[[str], None]) -> None:
    original: Callable[..., Any] = BaseClient._make_api_call  # type: ignore[attr-defined]

    def patched(self: BaseClient, name: str, params: dict[str, Any]) -> Any:
        on_call(name)
        return original(self, name, params)

    mp.setattr(BaseClient, "_make_api_call", patched)


@pytest.fixture(scope="module")
def calls_per_step(
    moto: Moto, registry: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[str]]:
    """The AWS operations each step makes, from one whole promote (then cleaned up)."""
    tmp = tmp_path_factory.mktemp("probe")
    calls: dict[str, list[str]] = {}
    current: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMLOCAL_HOME", str(tmp / "home"))
        request = _request(tmp, "outage-probe", registry)
        _pass_gate(request)
        prepared = prepare(request)
        _recording_calls(mp, lambda name: calls[current[-1]].append(name) if current else None)

        def on_step(name: str, _index: int, _total: int) -> None:
            current.append(name)
            calls[name] = []

        manifest = execute(prepared, on_step)
        mp.undo()
        run_cleanup(manifest, CleanupOptions(poll_interval_s=0.05))
    assert list(calls) == [step.name for step in plan.STEPS]
    assert all(calls.values()), calls  # every step calls AWS
    return calls


def _unrelated(clients: Clients, name: str) -> dict[str, str]:
    """Resources named like the deployment's that promote did not make (cleanup keeps them)."""
    suffix = f"{name}-unrelated"
    clients.s3.create_bucket(Bucket=suffix)
    clients.s3.put_object(Bucket=suffix, Key="model.tar.gz", Body=b"theirs")
    clients.ecr.create_repository(repositoryName=f"smlocal/{suffix}")
    clients.iam.create_role(RoleName=suffix, AssumeRolePolicyDocument="{}")
    clients.sagemaker.create_model(
        ModelName=suffix,
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/theirs:1"},
        ExecutionRoleArn=f"arn:aws:iam::123456789012:role/{suffix}",
    )
    topic = clients.sns.create_topic(Name=suffix)["TopicArn"]
    clients.cloudwatch.put_metric_alarm(
        AlarmName=suffix,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    return {"bucket": suffix, "model": suffix, "role": suffix, "topic": topic}


def _unrelated_intact(clients: Clients, made: dict[str, str]) -> None:
    body = clients.s3.get_object(Bucket=made["bucket"], Key="model.tar.gz")["Body"].read()
    assert body == b"theirs"
    clients.ecr.describe_repositories(repositoryNames=[f"smlocal/{made['bucket']}"])
    clients.iam.get_role(RoleName=made["role"])
    clients.sagemaker.describe_model(ModelName=made["model"])
    assert made["topic"] in {t["TopicArn"] for t in clients.sns.list_topics()["Topics"]}
    alarms = clients.cloudwatch.describe_alarms(AlarmNames=[made["model"]])["MetricAlarms"]
    assert len(alarms) == 1


def _remove_unrelated(clients: Clients, made: dict[str, str]) -> None:
    clients.s3.delete_object(Bucket=made["bucket"], Key="model.tar.gz")
    clients.s3.delete_bucket(Bucket=made["bucket"])
    clients.ecr.delete_repository(repositoryName=f"smlocal/{made['bucket']}")
    clients.iam.delete_role(RoleName=made["role"])
    clients.sagemaker.delete_model(ModelName=made["model"])
    clients.sns.delete_topic(TopicArn=made["topic"])
    clients.cloudwatch.delete_alarms(AlarmNames=[made["model"]])


OUTAGES = [(step.name, at) for step in plan.STEPS for at in ("first", "last")]


@pytest.mark.parametrize(("step", "at"), OUTAGES, ids=[f"{s}-{a}" for s, a in OUTAGES])
def test_aws_gone_at_each_step_then_cleanup_leaves_only_what_was_there(
    step: str,
    at: str,
    calls_per_step: dict[str, list[str]],
    moto: Moto,
    registry: str,
    clients: Clients,
    tmp_path: Path,
    smlocal_home: Path,
) -> None:
    made_there = calls_per_step[step]  # one call: "first" and "last" are the same call
    name = f"out-{plan.STEPS.index(next(s for s in plan.STEPS if s.name == step))}-{at}"
    request = _request(tmp_path, name, registry)
    _pass_gate(request)
    unrelated = _unrelated(clients, name)
    before = snapshot(clients)
    prepared = prepare(request)
    target = 0 if at == "first" else len(made_there) - 1
    state: dict[str, Any] = {"step": "", "index": -1}

    def on_step(current: str, _index: int, _total: int) -> None:
        state["step"], state["index"] = current, -1

    def on_call(operation: str) -> None:
        if state["step"] == step:
            state["index"] += 1
            if state["index"] == target:
                moto.stop()  # a real outage: this call and every later one is refused

    with pytest.MonkeyPatch.context() as mp, pytest.raises(StepFailedError) as failure:
        _recording_calls(mp, on_call)
        execute(prepared, on_step)

    assert failure.value.step == step
    assert "Could not connect to the endpoint URL" in str(failure.value)
    moto.start()
    manifest = Manifest.load(request.manifest_path)
    assert manifest.status == "failed"
    assert _live(manifest) == _diff(snapshot(clients), before)  # exactly what promote made

    run_cleanup(manifest, CleanupOptions(poll_interval_s=0.05))

    assert snapshot(clients) == before
    _unrelated_intact(clients, unrelated)
    _remove_unrelated(clients, unrelated)


@pytest.mark.parametrize("deletion", [0, 3])
def test_aws_gone_during_cleanup_then_the_next_cleanup_finishes(
    deletion: int,
    moto: Moto,
    registry: str,
    clients: Clients,
    tmp_path: Path,
    smlocal_home: Path,
) -> None:
    request = _request(tmp_path, f"out-cleanup-{deletion}", registry)
    _pass_gate(request)
    unrelated = _unrelated(clients, f"out-cleanup-{deletion}")
    before = snapshot(clients)
    manifest = execute(prepare(request))
    assert manifest.status == "complete"
    done: list[str] = []

    def on_resource(resource: Any, outcome: str) -> None:
        done.append(outcome)
        if len(done) == deletion + 1:
            moto.stop()

    if deletion == 0:
        moto.stop()
    with pytest.raises(CleanupError, match="smlocal cleanup --manifest"):
        run_cleanup(manifest, CleanupOptions(poll_interval_s=0.05), on_resource)
    moto.start()
    left = Manifest.load(request.manifest_path)
    assert _live(left) == _diff(snapshot(clients), before)  # the manifest still knows the rest

    run_cleanup(left, CleanupOptions(poll_interval_s=0.05))

    assert snapshot(clients) == before
    _unrelated_intact(clients, unrelated)
    _remove_unrelated(clients, unrelated)
