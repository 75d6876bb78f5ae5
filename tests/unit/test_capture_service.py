"""DataCaptureConfig on the local service, through boto3's real clients (fake containers, a real
moto server for S3): records land under the documented keys, DescribeEndpoint summarises the
config, UpdateEndpoint changes it, every stop flushes, an unreachable S3 costs no request."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from smlocal.emulator import capture_writer
from smlocal.emulator.capture_writer import FLUSH_INTERVAL_S
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from tests.aws_fakes import FAKE_CREDENTIALS, moto_server
from tests.unit.fakes import FakeBackend, FakeImage
from tests.unit.test_capture import KEY
from tests.unit.test_service import FAST, WAIT, Clients

KMS_KEY = "arn:aws:kms:us-east-1:000000000000:key/capture"


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend({"echo:1": FakeImage()})  # answers the body with its content type


@pytest.fixture
def home(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "home")


@pytest.fixture
def no_timed_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer's interval out of reach: whatever is written was written by a stop."""
    monkeypatch.setattr(capture_writer, "FLUSH_INTERVAL_S", 3600.0)


def _capture(destination: str, mode: str = "InputAndOutput", **extra: Any) -> dict[str, Any]:
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": destination,
        "CaptureOptions": [{"CaptureMode": mode}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json"],
        },
        **extra,
    }


def _config(clients: Clients, name: str, capture: dict[str, Any] | None) -> None:
    clients.sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "m",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
        **({"DataCaptureConfig": capture} if capture else {}),
    )


def _deploy(clients: Clients, capture: dict[str, Any] | None, name: str = "ep") -> None:
    clients.sm.create_model(ModelName="m", PrimaryContainer={"Image": "echo:1"})
    _config(clients, f"{name}-c", capture)
    clients.sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-c")
    clients.sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)


def _invoke(clients: Clients, body: bytes, content_type: str = "text/csv", **extra: Any) -> None:
    answer = clients.rt.invoke_endpoint(
        EndpointName="ep", Body=body, ContentType=content_type, **extra
    )
    assert answer["Body"].read() == body


def _records(root: Path) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.relative_to(root).as_posix(), json.loads(line))
        for path in sorted(root.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _delete(clients: Clients, name: str = "ep") -> None:
    clients.sm.delete_endpoint(EndpointName=name)
    clients.sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=WAIT)


@pytest.mark.usefixtures("no_timed_flush")
def test_local_capture_records_summary_and_flush_on_delete(
    backend: FakeBackend, home: StateDir, tmp_path: Path
) -> None:
    root = tmp_path / "capture"
    with service_in_background(backend, state=home, settings=FAST) as url:
        clients = Clients(url)
        _deploy(clients, _capture(f"file://{root}/pre"))
        summary = clients.sm.describe_endpoint(EndpointName="ep")["DataCaptureConfig"]
        assert summary == {
            "EnableCapture": True,
            "CaptureStatus": "Started",
            "CurrentSamplingPercentage": 100,
            "DestinationS3Uri": f"file://{root}/pre",
        }
        _invoke(clients, b"5.1,3.5,1.4,0.2", InferenceId="row-1")
        _invoke(clients, b'{"x": [1, 2]}', "application/json")
        _invoke(clients, b"\x89PNG\x00", "image/png")
        _delete(clients)  # flushes: no need to wait for the writer's interval
        records = _records(root / "pre")
    assert len(records) == 3
    for key, _ in records:
        match = KEY.match(key)
        assert match is not None and (match["endpoint"], match["variant"]) == ("ep", "AllTraffic")
    by_encoding = {r["captureData"]["endpointInput"]["encoding"]: r for _, r in records}
    csv = by_encoding["CSV"]
    assert csv["captureData"]["endpointInput"]["data"] == "5.1,3.5,1.4,0.2"
    assert csv["captureData"]["endpointOutput"] == {
        "observedContentType": "text/csv", "mode": "OUTPUT", "data": "5.1,3.5,1.4,0.2",
        "encoding": "CSV",
    }  # fmt: skip
    assert csv["eventMetadata"]["inferenceId"] == "row-1"
    assert by_encoding["JSON"]["captureData"]["endpointInput"]["data"] == '{"x": [1, 2]}'
    assert "inferenceId" not in by_encoding["JSON"]["eventMetadata"]
    assert by_encoding["BASE64"]["captureData"]["endpointInput"]["data"] == "iVBORwA="


@pytest.mark.usefixtures("no_timed_flush")
def test_update_endpoint_changes_capture_and_the_old_fleet_flushes(
    backend: FakeBackend, home: StateDir, tmp_path: Path
) -> None:
    with service_in_background(backend, state=home, settings=FAST) as url:
        clients = Clients(url)
        _deploy(clients, _capture(str(tmp_path / "one")))
        for _ in range(3):
            _invoke(clients, b"1,2")
        _config(clients, "ep-c2", _capture(str(tmp_path / "two"), "Input", KmsKeyId="alias/k"))
        clients.sm.update_endpoint(EndpointName="ep", EndpointConfigName="ep-c2")
        clients.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
        summary = clients.sm.describe_endpoint(EndpointName="ep")["DataCaptureConfig"]
        assert summary["DestinationS3Uri"] == str(tmp_path / "two")
        assert summary["KmsKeyId"] == "alias/k"
        # The old fleet's writer is flushed when it stops, before InService is reported.
        assert len(_records(tmp_path / "one")) == 3
        _invoke(clients, b"3,4")
        _config(clients, "ep-c3", None)
        clients.sm.update_endpoint(EndpointName="ep", EndpointConfigName="ep-c3")
        clients.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
        assert "DataCaptureConfig" not in clients.sm.describe_endpoint(EndpointName="ep")
        _invoke(clients, b"5,6")
        _delete(clients)
    second = _records(tmp_path / "two")
    assert [set(r["captureData"]) for _, r in second] == [{"endpointInput"}]
    assert second[0][1]["captureData"]["endpointInput"]["data"] == "3,4"
    assert len(_records(tmp_path / "one")) == 3


@pytest.mark.usefixtures("no_timed_flush")
def test_a_service_stop_flushes_and_capture_comes_back_after_restart(
    backend: FakeBackend, home: StateDir, tmp_path: Path
) -> None:
    with service_in_background(backend, state=home, settings=FAST) as url:
        clients = Clients(url)
        _deploy(clients, _capture(str(tmp_path / "c")))
        for _ in range(4):
            _invoke(clients, b"1")
    assert len(_records(tmp_path / "c")) == 4  # `smlocal server stop`: nothing lost
    with service_in_background(backend, state=home, settings=FAST) as url:
        clients = Clients(url)
        clients.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
        _invoke(clients, b"2")
        _delete(clients)
    assert len(_records(tmp_path / "c")) == 5


def test_response_streams_are_captured_whole(
    backend: FakeBackend, home: StateDir, tmp_path: Path
) -> None:
    with service_in_background(backend, state=home, settings=FAST) as url:
        clients = Clients(url)
        _deploy(clients, _capture(str(tmp_path / "s")))
        answer = clients.rt.invoke_endpoint_with_response_stream(
            EndpointName="ep", Body=b'{"stream": true}', ContentType="application/json"
        )
        parts = b"".join(e["PayloadPart"]["Bytes"] for e in answer["Body"] if "PayloadPart" in e)
        assert parts == b'{"stream": true}'
        _delete(clients)
    [(_, record)] = _records(tmp_path / "s")
    assert record["captureData"]["endpointOutput"]["data"] == '{"stream": true}'
    assert record["captureData"]["endpointOutput"]["encoding"] == "JSON"


def test_destinations_smlocal_cannot_write_are_refused_at_create_endpoint(
    backend: FakeBackend, home: StateDir
) -> None:
    with service_in_background(backend, state=home, settings=FAST) as url:
        clients = Clients(url)
        clients.sm.create_model(ModelName="m", PrimaryContainer={"Image": "echo:1"})
        _config(clients, "c", _capture("https://bucket.s3.amazonaws.com/p"))
        with pytest.raises(ClientError, match=r"DestinationS3Uri .*s3://bucket/prefix"):
            clients.sm.create_endpoint(EndpointName="ep", EndpointConfigName="c")
        with pytest.raises(ClientError, match=r"dataCaptureConfig\.initialSamplingPercentage"):
            _config(clients, "c2", {**_capture("s3://b/p"), "InitialSamplingPercentage": 101})


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with moto_server() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        s3.create_bucket(Bucket="captures")
        yield s3


def test_s3_capture_lands_under_the_documented_keys(
    backend: FakeBackend, home: StateDir, moto: Any
) -> None:
    with service_in_background(backend, state=home, settings=FAST) as url:
        clients = Clients(url)
        _deploy(clients, _capture("s3://captures/monitor/data-capture", KmsKeyId=KMS_KEY))
        for i in range(3):
            _invoke(clients, f"{i},1".encode())
        _delete(clients)
    keys = [o["Key"] for o in moto.list_objects_v2(Bucket="captures")["Contents"]]
    assert keys and all(k.startswith("monitor/data-capture/ep/AllTraffic/") for k in keys)
    assert all(KEY.match(k) for k in keys)
    for key in keys:  # KmsKeyId: written with SSE-KMS under that key, as AWS does
        head = moto.head_object(Bucket="captures", Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KMS_KEY)
    lines = [
        json.loads(line)
        for k in keys
        for line in moto.get_object(Bucket="captures", Key=k)["Body"].read().splitlines()
    ]
    assert sorted(r["captureData"]["endpointInput"]["data"] for r in lines) == ["0,1", "1,1", "2,1"]


def test_asynchronous_requests_are_captured_with_their_inference_id(
    backend: FakeBackend, home: StateDir, moto: Any, tmp_path: Path
) -> None:
    moto.put_object(Bucket="captures", Key="in/row.csv", Body=b"7,8")
    with service_in_background(backend, state=home, settings=FAST) as url:
        clients = Clients(url)
        clients.sm.create_model(ModelName="m", PrimaryContainer={"Image": "echo:1"})
        clients.sm.create_endpoint_config(
            EndpointConfigName="ep-c",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "m",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
            AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://captures/out"}},
            DataCaptureConfig=_capture(str(tmp_path / "a")),
        )
        clients.sm.create_endpoint(EndpointName="ep", EndpointConfigName="ep-c")
        clients.sm.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig=WAIT)
        answer = clients.rt.invoke_endpoint_async(
            EndpointName="ep", InputLocation="s3://captures/in/row.csv", ContentType="text/csv"
        )
        bucket, _, key = answer["OutputLocation"].removeprefix("s3://").partition("/")
        deadline = time.monotonic() + 60
        while "Contents" not in moto.list_objects_v2(Bucket=bucket, Prefix=key):
            assert time.monotonic() < deadline, "no async output"
            time.sleep(0.1)
        _delete(clients)
    [(_, record)] = _records(tmp_path / "a")
    assert record["captureData"]["endpointInput"]["data"] == "7,8"
    assert record["captureData"]["endpointOutput"]["data"] == "7,8"
    assert record["eventMetadata"]["inferenceId"] == answer["InferenceId"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _dropped(url: str) -> int:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    for line in text.splitlines():
        if line.startswith('smlocal_capture_dropped_total{endpoint="ep",reason="write_failed"}'):
            return int(line.rsplit(" ", 1)[1])
    return 0


def test_an_unreachable_s3_costs_no_request_and_is_counted(
    backend: FakeBackend, home: StateDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{_closed_port()}")
    with service_in_background(backend, state=home, settings=FAST) as url:
        clients = Clients(url)
        _deploy(clients, _capture("s3://nowhere/capture"))
        for _ in range(5):
            _invoke(clients, b"1,2")  # each one answered: capture is off the request path
        deadline = time.monotonic() + 60 + FLUSH_INTERVAL_S
        while _dropped(url) < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _dropped(url) == 5
        _invoke(clients, b"3")
        _delete(clients)


# ---- the quick path: smlocal serve --capture --sampling --capture-mode -------------------
def test_serve_flags_deploy_a_data_capture_config(tmp_path: Path) -> None:
    from smlocal.cli.serve import _build_spec, _with_capture
    from smlocal.emulator.errors import ConfigError
    from smlocal.emulator.service.client import deploy_requests

    spec = _build_spec(image="echo:1", model=None, name="quick", env={},
                       instance_type="ml.m5.large", instance_count=1, startup_timeout=480,
                       invocation_timeout=60)  # fmt: skip
    relative = Path("capture-here")
    config = deploy_requests(_with_capture(spec, str(relative), 25, "input"), suffix="x").config
    assert config["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 25,
        "DestinationS3Uri": str(relative.resolve()),  # absolute: the service has its own cwd
        "CaptureOptions": [{"CaptureMode": "Input"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json"],
        },
    }
    s3 = deploy_requests(_with_capture(spec, "s3://b/p", None, None), suffix="x").config
    assert s3["DataCaptureConfig"]["DestinationS3Uri"] == "s3://b/p"
    assert s3["DataCaptureConfig"]["InitialSamplingPercentage"] == 100
    assert s3["DataCaptureConfig"]["CaptureOptions"] == [{"CaptureMode": "InputAndOutput"}]
    assert "DataCaptureConfig" not in deploy_requests(spec, suffix="x").config
    (tmp_path / "file").write_text("")
    for args, message in (
        ((None, 50, None), "--sampling: only with --capture"),
        ((None, None, "Input"), "--capture-mode: only with --capture"),
        (("s3://b/p", None, "both"), "--capture-mode: 'both' is not one of"),
        (("https://b.s3.amazonaws.com/p", None, None), "--capture: DestinationS3Uri"),
        ((str(tmp_path / "file"), None, None), "is not a directory"),
    ):
        with pytest.raises(ConfigError, match=message):
            _with_capture(spec, *args)
