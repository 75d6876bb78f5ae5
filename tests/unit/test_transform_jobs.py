"""Batch transform on the local service through boto3's real `sagemaker` client.

The containers are the fake backend's (real HTTP servers in threads) and the data is in local
directories (smlocal's extension of S3Uri / S3OutputPath), so the control plane, the job's
lifecycle, the batching and the output run for real in seconds. The same on Docker with moto
S3 is tests/integration/test_transform.py.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError, WaiterError

from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from tests.unit.fakes import FakeBackend, FakeImage, echo_handler

FAST = MonitorSettings(ping_interval_s=0.2, stop_grace_s=1)
WAIT = {"Delay": 0.2, "MaxAttempts": 150}
SEEN: list[tuple[Mapping[str, str], bytes]] = []
GATE = threading.Event()


def _batch(method: str, path: str, headers: Mapping[str, str], body: bytes) -> Any:
    if path == "/execution-parameters":
        # AWS's spelling of the strategy, which SDK local mode refuses.
        answer = {"BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 1}
        answer["MaxConcurrentTransforms"] = 2
        return 200, {"content-type": "application/json"}, json.dumps(answer).encode()
    if path == "/invocations":
        SEEN.append((dict(headers), body))
        if b"poison" in body:
            return 500, {"content-type": "application/json"}, b'{"error": "poisoned record"}'
        if b"slow" in body:
            GATE.wait(30)
    return echo_handler(method, path, headers, body)


@pytest.fixture
def backend() -> FakeBackend:
    SEEN.clear()
    GATE.clear()
    return FakeBackend({"batch:1": FakeImage(handler=_batch), "echo:1": FakeImage()})


class Env:
    def __init__(self, url: str, root: Path) -> None:
        config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        self.sm: Any = boto3.client(
            "sagemaker", endpoint_url=url, region_name="us-east-1", config=config
        )
        self.root = root
        self.sm.create_model(ModelName="batch", PrimaryContainer={"Image": "batch:1"})
        self.sm.create_model(ModelName="echo", PrimaryContainer={"Image": "echo:1"})

    def job(self, name: str, model: str = "batch", **members: Any) -> dict[str, Any]:
        source = members.pop("source", str(self.root / "in"))
        request = {
            "TransformJobName": name,
            "ModelName": model,
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
                "ContentType": "text/csv",
                "SplitType": "Line",
                **members.pop("input", {}),
            },
            "TransformOutput": {
                "S3OutputPath": str(self.root / "out"),
                "AssembleWith": "Line",
                **members.pop("output", {}),
            },
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            **members,
        }
        self.sm.create_transform_job(**request)
        return request

    def wait(self, name: str) -> dict[str, Any]:
        self.sm.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName=name, WaiterConfig=WAIT
        )
        answer: dict[str, Any] = self.sm.describe_transform_job(TransformJobName=name)
        return answer


@pytest.fixture
def env(backend: FakeBackend, tmp_path: Path) -> Iterator[Env]:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    with service_in_background(backend, state=StateDir(tmp_path / "home"), settings=FAST) as url:
        yield Env(url, tmp_path)


def _lines(count: int, start: int = 0) -> bytes:
    return b"".join(f"{i},{i * 2},{i * 3}\n".encode() for i in range(start, start + count))


def test_a_job_transforms_every_object_in_order_and_completes(
    env: Env, backend: FakeBackend
) -> None:
    (env.root / "in" / "a.csv").write_bytes(_lines(500))
    (env.root / "in" / "sub" / "b.csv").write_bytes(_lines(300, 500))
    env.job("j1", DataProcessing={"JoinSource": "Input", "OutputFilter": "$[0,-1]"})
    described = env.wait("j1")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert described["TransformJobArn"].endswith(":transform-job/j1")
    assert described["TransformStartTime"] <= described["TransformEndTime"]
    # the container offered MULTI_RECORD: more than one record per request
    assert len(SEEN) < 800
    env_of = backend.containers[next(iter(backend.containers))].run.env
    assert env_of["SAGEMAKER_BATCH"] == "true"
    assert "SAGEMAKER_BATCH_STRATEGY" not in env_of  # the job set none: none is passed
    a = (env.root / "out" / "a.csv.out").read_text().splitlines()
    b = (env.root / "out" / "sub" / "b.csv.out").read_text().splitlines()
    # join: input columns then the echoed ones; the filter keeps the first and the last
    assert a == [f"{i},{i * 3}" for i in range(500)]
    assert b == [f"{i},{i * 3}" for i in range(500, 800)]
    assert backend.running() == []
    summaries = env.sm.list_transform_jobs(StatusEquals="Completed")["TransformJobSummaries"]
    assert [s["TransformJobName"] for s in summaries] == ["j1"]


def test_job_settings_go_to_the_container_and_win(env: Env, backend: FakeBackend) -> None:
    (env.root / "in" / "a.csv.gz").write_bytes(gzip.compress(_lines(40)))
    env.job(
        "single",
        BatchStrategy="SingleRecord",
        MaxPayloadInMB=1,
        MaxConcurrentTransforms=3,
        input={"CompressionType": "Gzip"},
        output={"Accept": "text/csv"},
    )
    assert env.wait("single")["TransformJobStatus"] == "Completed"
    run_env = backend.containers[next(iter(backend.containers))].run.env
    assert run_env["SAGEMAKER_BATCH_STRATEGY"] == "SINGLE_RECORD"
    assert run_env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == "1"
    assert run_env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] == "3"
    assert len(SEEN) == 40
    assert all(headers.get("accept") == "text/csv" for headers, _ in SEEN)
    out = (env.root / "out" / "a.csv.gz.out").read_bytes()
    assert out == _lines(40)  # one answer per record, each ended by AssembleWith Line


def test_a_failing_object_gets_no_output_and_the_job_fails(env: Env) -> None:
    (env.root / "in" / "a.csv").write_bytes(_lines(100))
    (env.root / "in" / "b.csv").write_bytes(_lines(50) + b"poison,1,2\n" + _lines(50, 50))
    env.job("fails", ModelClientConfig={"InvocationsMaxRetries": 1})
    with pytest.raises(WaiterError):
        env.wait("fails")
    described = env.sm.describe_transform_job(TransformJobName="fails")
    assert described["TransformJobStatus"] == "Failed"
    reason = described["FailureReason"]
    assert "b.csv" in reason and "500" in reason and "poisoned record" in reason
    assert "after 2 attempt(s)" in reason
    assert (env.root / "out" / "a.csv.out").exists()
    assert not (env.root / "out" / "b.csv.out").exists()


def test_stop_mid_job_removes_the_containers(env: Env, backend: FakeBackend) -> None:
    (env.root / "in" / "a.csv").write_bytes(b"slow,1,2\n" + _lines(10))
    env.job("stops", model="batch")
    deadline = time.monotonic() + 30
    while not SEEN and time.monotonic() < deadline:
        time.sleep(0.05)
    env.sm.stop_transform_job(TransformJobName="stops")
    assert env.sm.describe_transform_job(TransformJobName="stops")["TransformJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    GATE.set()
    assert env.wait("stops")["TransformJobStatus"] == "Stopped"
    assert backend.running() == []
    assert not (env.root / "out" / "a.csv.out").exists()
    with pytest.raises(ClientError, match="in status Stopped"):
        env.sm.stop_transform_job(TransformJobName="stops")


def test_refusals_in_aws_words(env: Env) -> None:
    (env.root / "in" / "a.csv").write_bytes(_lines(3))
    env.job("dup", model="echo")
    with pytest.raises(ClientError) as error:
        env.job("dup", model="echo")
    assert error.value.response["Error"]["Code"] == "ResourceInUse"
    assert "transform job with this name already exists" in str(error.value)
    with pytest.raises(ClientError, match=r"Could not find requested job with name nope"):
        env.sm.describe_transform_job(TransformJobName="nope")
    with pytest.raises(WaiterError):
        env.sm.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="nope", WaiterConfig=WAIT
        )
    with pytest.raises(ClientError, match=r'Could not find model "arn:aws:sagemaker:.*:model/x"'):
        env.job("m", model="x")
    with pytest.raises(ClientError, match="No S3 objects found under S3 URL"):
        env.job("empty", source=str(env.root / "nothing"))
    with pytest.raises(ClientError, match="SplitType RecordIO is not emulated"):
        env.job("rio", input={"SplitType": "RecordIO"})
    with pytest.raises(ClientError, match="MultiRecord needs SplitType Line"):
        env.job("multi", BatchStrategy="MultiRecord", input={"SplitType": "None"})
    with pytest.raises(ClientError, match="is not in SageMaker's subset"):
        env.job("path", DataProcessing={"InputFilter": "$..x"})
    with pytest.raises(ClientError, match="1 validation error detected"):
        env.job("retries", ModelClientConfig={"InvocationsMaxRetries": 9})
    assert env.wait("dup")["TransformJobStatus"] == "Completed"


def test_a_job_running_at_a_restart_is_failed(backend: FakeBackend, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_bytes(b"slow,1\n")
    state = StateDir(tmp_path / "home")
    with service_in_background(backend, state=state, settings=FAST) as url:
        env = Env(url, tmp_path)
        env.job("restart")
        deadline = time.monotonic() + 30
        while not SEEN and time.monotonic() < deadline:
            time.sleep(0.05)
    GATE.set()
    assert backend.running() == []
    with service_in_background(backend, state=state, settings=FAST) as url:
        config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", config=config)
        described = sm.describe_transform_job(TransformJobName="restart")
        assert described["TransformJobStatus"] == "Failed"
        assert "not resumed" in described["FailureReason"]


def test_a_manifest_names_the_objects_and_their_output_paths(env: Env) -> None:
    (env.root / "in" / "sub" / "x.csv").write_bytes(_lines(5))
    (env.root / "in" / "y.csv").write_bytes(_lines(3))
    (env.root / "in" / "ignored.csv").write_bytes(_lines(2))
    manifest = env.root / "manifest.json"
    manifest.write_text(json.dumps([{"prefix": f"{env.root / 'in'}/"}, "sub/x.csv", "y.csv"]))
    env.job(
        "manifest",
        model="echo",
        source=str(manifest),
        input={
            "DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": str(manifest)}}
        },
    )
    assert env.wait("manifest")["TransformJobStatus"] == "Completed"
    assert (env.root / "out" / "sub" / "x.csv.out").read_bytes() == _lines(5)
    assert (env.root / "out" / "y.csv.out").read_bytes() == _lines(3)
    assert not (env.root / "out" / "ignored.csv.out").exists()


def test_a_job_a_killed_service_left_running_is_failed_and_a_stopping_one_stopped(
    backend: FakeBackend, tmp_path: Path
) -> None:
    import asyncio

    from smlocal.emulator.service.store import Kind, Store
    from smlocal.emulator.service.transform_jobs import TransformJobs

    with Store(tmp_path / "state.db") as store:
        for name, status in (("was-running", "InProgress"), ("was-stopping", "Stopping")):
            record = {"TransformJobName": name, "TransformJobStatus": status}
            store.insert(Kind.TRANSFORM_JOB, name, record, status=status)
        jobs = TransformJobs(
            store,
            backend,
            cache_dir=tmp_path / "cache",
            work_dir=tmp_path / "work",
            log_dir=tmp_path / "logs",
            settings=FAST,
            session_id="s",
            resolve_image=lambda _: None,
        )
        asyncio.run(jobs.recover())
        running = store.get(Kind.TRANSFORM_JOB, "was-running") or {}
        stopping = store.get(Kind.TRANSFORM_JOB, "was-stopping") or {}
    assert running["TransformJobStatus"] == "Failed"
    assert "not resumed" in running["FailureReason"] and running["TransformEndTime"]
    assert stopping["TransformJobStatus"] == "Stopped"


def test_two_instances_share_the_requests(env: Env, backend: FakeBackend) -> None:
    (env.root / "in" / "a.csv").write_bytes(_lines(60))
    request = {"InstanceType": "ml.m5.large", "InstanceCount": 2}
    env.job("two", model="echo", BatchStrategy="SingleRecord", TransformResources=request)
    assert env.wait("two")["TransformJobStatus"] == "Completed"
    served = [
        sum(path == "/invocations" for path, _, _ in c.requests)
        for c in backend.containers.values()
    ]
    assert len(served) == 2 and all(count > 0 for count in served), served
    assert (env.root / "out" / "a.csv.out").read_bytes() == _lines(60)


def test_a_request_over_its_timeout_fails_the_object(env: Env) -> None:
    (env.root / "in" / "a.csv").write_bytes(b"slow,1,2\n")
    env.job(
        "late",
        ModelClientConfig={"InvocationsTimeoutInSeconds": 1, "InvocationsMaxRetries": 0},
    )
    with pytest.raises(WaiterError):
        env.wait("late")
    GATE.set()
    reason = env.sm.describe_transform_job(TransformJobName="late")["FailureReason"]
    assert "no answer within InvocationsTimeoutInSeconds (1 s)" in reason
    assert "on the first attempt" in reason


def test_list_transform_jobs_pages_and_sorts(env: Env) -> None:
    (env.root / "in" / "a.csv").write_bytes(_lines(1))
    for name in ("p-c", "p-a", "p-b"):
        env.job(name, model="echo")
    for name in ("p-c", "p-a", "p-b"):
        env.wait(name)
    pages = env.sm.get_paginator("list_transform_jobs").paginate(
        SortBy="Name", SortOrder="Ascending", NameContains="p-", PaginationConfig={"PageSize": 2}
    )
    names = [s["TransformJobName"] for page in pages for s in page["TransformJobSummaries"]]
    assert names == ["p-a", "p-b", "p-c"]


def test_an_image_the_engine_lacks_fails_the_job_with_the_reason(env: Env) -> None:
    (env.root / "in" / "a.csv").write_bytes(_lines(1))
    env.sm.create_model(ModelName="ghost", PrimaryContainer={"Image": "ghost:1"})
    env.job("ghost", model="ghost")
    with pytest.raises(WaiterError):
        env.wait("ghost")
    reason = env.sm.describe_transform_job(TransformJobName="ghost")["FailureReason"]
    assert reason.startswith("ClientError: ") and "ghost:1" in reason


def test_an_ended_job_keeps_no_log_file_open(backend: FakeBackend, tmp_path: Path) -> None:
    """One open file per finished job would pile up in a long-running service."""
    backend.images["chatty:1"] = FakeImage(log_lines=["loading the model", "ready"])
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_bytes(_lines(3))
    with service_in_background(backend, state=StateDir(tmp_path / "home"), settings=FAST) as url:
        env = Env(url, tmp_path)
        env.sm.create_model(ModelName="chatty", PrimaryContainer={"Image": "chatty:1"})
        for name in ("log-1", "log-2", "log-3"):
            env.job(name, model="chatty")
            assert env.wait(name)["TransformJobStatus"] == "Completed"
        logs = tmp_path / "home" / "logs" / "transform-jobs"
        assert "ready" in (logs / "log-1.log").read_text()  # the log was written
        open_logs = [
            fd for fd in Path("/proc/self/fd").iterdir()
            if str(fd.resolve(strict=False)).startswith(str(logs))
        ]  # fmt: skip
        assert open_logs == []
