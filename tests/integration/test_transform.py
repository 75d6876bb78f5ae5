"""Batch transform on the local service with real containers and a moto server for S3.

10,000 CSV lines in 3 S3 objects through the reference sklearn image, MultiRecord, two
concurrent transforms, an InputFilter that drops the id column and a JoinSource/OutputFilter
that brings it back beside the prediction: every output line must be its input's id and the
model's own prediction for that input, in order, nothing missing or twice. The same job on a
container that fails on one object ends Failed and writes nothing for that object.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import WaiterError

from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from tests.aws_fakes import FAKE_CREDENTIALS, moto_server
from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL, fixture_image

BUCKET = "transform-it"
ROWS = 10_000
PARTS = ("part-0.csv", "nested/part-1.csv", "nested/part-2.csv")
WAIT = {"Delay": 0.5, "MaxAttempts": 600}


class Env:
    def __init__(self, url: str, moto: str) -> None:
        plain = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        self.sm: Any = boto3.client(
            "sagemaker", endpoint_url=url, region_name="us-east-1", config=plain
        )
        self.s3: Any = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")

    def text(self, key: str) -> str | None:
        try:
            body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return bytes(body).decode()


@pytest.fixture
def env(docker_backend: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with moto_server() as moto:
        for key, value in {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": moto}.items():
            monkeypatch.setenv(key, value)
        settings = MonitorSettings(ping_interval_s=1.0, stop_grace_s=5, host_cpus=2)
        state = StateDir(tmp_path / "home")
        with service_in_background(docker_backend, state=state, settings=settings) as url:
            env = Env(url, moto)
            env.s3.create_bucket(Bucket=BUCKET)
            env.s3.upload_file(str(SKLEARN_MODEL), BUCKET, "model/model.tar.gz")
            yield env
        labelled = docker.from_env().containers.list(
            all=True, ignore_removed=True, filters={"label": "smlocal.transform-job"}
        )
        assert not [c for c in labelled if c.labels.get("smlocal.session") in _sessions(state)]


def _sessions(state: StateDir) -> set[str]:
    path = state.root / "service" / "id"
    return {path.read_text().strip()} if path.exists() else set()


def _rows() -> list[list[str]]:
    from sklearn.datasets import load_iris

    iris = load_iris().data
    return [
        [f"id-{i:05d}", *(f"{v + (i % 7) * 0.05:.2f}" for v in iris[i % len(iris)])]
        for i in range(ROWS)
    ]


def _upload(env: Env, rows: list[list[str]], prefix: str, poison: int | None = None) -> None:
    share = -(-len(rows) // len(PARTS))
    for number, key in enumerate(PARTS):
        part = rows[number * share : (number + 1) * share]
        lines = [",".join(row) for row in part]
        if number == poison:
            lines[len(lines) // 2] = "id-poison,poison,1,2,3"
        env.s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{key}", Body="\n".join(lines) + "\n")


def _job(env: Env, name: str, model: str, prefix: str) -> None:
    env.sm.create_transform_job(
        TransformJobName=name,
        ModelName=model,
        BatchStrategy="MultiRecord",
        MaxConcurrentTransforms=2,
        MaxPayloadInMB=1,
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix}/"}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{BUCKET}/{name}-out",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    )


def _predictions(rows: list[list[str]]) -> list[str]:
    import joblib
    import numpy as np

    with tarfile.open(SKLEARN_MODEL) as archive:
        member = archive.extractfile("model.joblib")
        assert member is not None
        model = joblib.load(io.BytesIO(member.read()))
    names = ["setosa", "versicolor", "virginica"]
    features = np.asarray([[float(v) for v in row[1:]] for row in rows])
    return [names[int(i)] for i in model.predict(features)]


def test_ten_thousand_lines_line_up_with_their_inputs(env: Env) -> None:
    rows = _rows()
    _upload(env, rows, "iris")
    env.sm.create_model(
        ModelName="iris",
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": f"s3://{BUCKET}/model/model.tar.gz",
        },
    )
    _job(env, "iris-batch", "iris", "iris")
    env.sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="iris-batch", WaiterConfig=WAIT
    )
    described = env.sm.describe_transform_job(TransformJobName="iris-batch")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    written: list[str] = []
    for key in PARTS:
        text = env.text(f"iris-batch-out/{key}.out")
        assert text is not None, key
        written += text.splitlines()
    expected = [f"{row[0]},{label}" for row, label in zip(rows, _predictions(rows), strict=True)]
    assert len(written) == ROWS
    assert written == expected  # every line its input's id and prediction, in order


def test_a_container_failing_on_one_object_writes_nothing_for_it(env: Env) -> None:
    rows = _rows()
    _upload(env, rows, "poisoned", poison=1)
    env.sm.create_model(
        ModelName="poison", PrimaryContainer={"Image": fixture_image("batch-poison")}
    )
    _job(env, "poison-batch", "poison", "poisoned")
    with pytest.raises(WaiterError):
        env.sm.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="poison-batch", WaiterConfig=WAIT
        )
    described = env.sm.describe_transform_job(TransformJobName="poison-batch")
    assert described["TransformJobStatus"] == "Failed"
    reason = described["FailureReason"]
    assert f"s3://{BUCKET}/poisoned/nested/part-1.csv" in reason
    assert "500" in reason and "fixture: poisoned record" in reason
    assert env.text("poison-batch-out/nested/part-1.csv.out") is None
    share = -(-ROWS // len(PARTS))
    for number in (0, 2):
        text = env.text(f"poison-batch-out/{PARTS[number]}.out")
        assert text is not None
        part = rows[number * share : (number + 1) * share]
        # the echo: the joined row's last column is the input's last feature
        assert text.splitlines() == [f"{row[0]},{row[-1]}" for row in part]
