"""`smlocal monitor run` against a moto server: capture read from S3, the SNS alert read back
through a subscribed SQS queue, the CloudWatch metrics read back with list_metrics and
get_metric_data — all through boto3, as against AWS.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from smlocal.cli import app
from smlocal.monitor import CaptureWindow, MonitorInputError, MonitorRun, run_baseline, run_monitor
from smlocal.monitor.alerts import METRIC_NAMESPACE
from tests.aws_fakes import FAKE_CREDENTIALS, moto_server
from tests.monitor_data import capture_key, capture_lines
from tests.unit.test_monitor_run import _rows

HOUR = datetime(2026, 12, 2, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(autouse=True)
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("baseline")
    (root / "train.csv").write_text("\n".join(",".join(r) for r in _rows(10_000, seed=1)) + "\n")
    run_baseline(root / "train.csv", root / "b")
    return root / "b"


def _capture_in_s3(bucket: str, prefix: str, rows: list[list[Any]], hour: datetime) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(
        Bucket=bucket, Key=f"{prefix}/{capture_key('shop-ep', hour)}",
        Body=capture_lines(rows, None, hour).encode(),
    )  # fmt: skip
    s3.put_object(Bucket=bucket, Key=f"{prefix}/shop-ep/AllTraffic/notes.txt", Body=b"ignored")
    # A sibling prefix that merely starts with the same letters is not part of the capture.
    s3.put_object(
        Bucket=bucket, Key=f"{prefix}-old/{capture_key('other', hour)}",
        Body=capture_lines([["x"] * 9], None, hour).encode(),
    )  # fmt: skip


def _queue_on_topic(name: str) -> tuple[str, str]:
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, queue


def test_capture_in_s3_violations_to_sns_and_metrics_to_cloudwatch(
    baseline: Path, tmp_path: Path
) -> None:
    _capture_in_s3("capture-bkt", "datacapture", _rows(1500, seed=2, shift={2: 1.0}), HOUR)
    topic, queue = _queue_on_topic("drift-alerts")
    result = CliRunner().invoke(
        app, ["monitor", "run", "--capture", "s3://capture-bkt/datacapture", "--baseline",
              str(baseline), "--out", str(tmp_path / "out"), "--sns-topic", topic, "--cloudwatch",
              "--start", "2026-12-02T05:00:00Z", "--end", "2026-12-02T06:00:00Z"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "SNS message" in result.output and "CloudWatch metrics put" in result.output

    messages = boto3.client("sqs").receive_message(QueueUrl=queue, WaitTimeSeconds=5)["Messages"]
    envelope = json.loads(messages[0]["Body"])
    assert envelope["Subject"] == "smlocal monitor: 1 violations on shop-ep"
    alert = json.loads(envelope["Message"])
    assert alert["endpoint"] == "shop-ep"
    assert alert["by_check"] == {"baseline_drift_check": 1}
    assert alert["violations"][0]["feature_name"] == "_c2"
    assert alert["window"] == {
        "start": "2026-12-02T05:00:00+00:00",
        "end": "2026-12-02T06:00:00+00:00",
    }

    cloudwatch = boto3.client("cloudwatch")
    listed = cloudwatch.list_metrics(Namespace=METRIC_NAMESPACE)["Metrics"]
    names = {m["MetricName"] for m in listed}
    for feature in ("_c0", "_c2", "_c5"):
        assert {f"feature_non_null_{feature}", f"feature_baseline_drift_{feature}"} <= names
    assert "feature_data__c0" in names and "feature_data__c5" not in names  # _c5 is a String
    assert {d["Name"] for d in listed[0]["Dimensions"]} == {"EndpointName", "ScheduleName"}
    dims = [{"Name": "EndpointName", "Value": "shop-ep"},
            {"Name": "ScheduleName", "Value": "smlocal-monitor"}]  # fmt: skip

    def query(name: str, stat: str) -> float:
        answer = cloudwatch.get_metric_data(
            MetricDataQueries=[{"Id": "m", "MetricStat": {
                "Metric": {"Namespace": METRIC_NAMESPACE, "MetricName": name, "Dimensions": dims},
                "Period": 60, "Stat": stat}}],
            StartTime=HOUR, EndTime=HOUR + timedelta(hours=2),
        )  # fmt: skip
        (values,) = [r["Values"] for r in answer["MetricDataResults"]]
        assert len(values) == 1, answer
        return float(values[0])

    assert query("feature_non_null__c0", "Sum") == 1.0
    assert query("feature_data__c0", "SampleCount") == 1500.0
    assert query("feature_baseline_drift__c2", "Sum") > 0.1
    assert query("feature_baseline_drift__c0", "Sum") < 0.1


def test_no_violations_sends_no_alert(baseline: Path, tmp_path: Path) -> None:
    _capture_in_s3("quiet-bkt", "dc", _rows(800, seed=3), HOUR)
    topic, queue = _queue_on_topic("quiet-alerts")
    result = run_monitor(
        MonitorRun(
            window=CaptureWindow("s3://quiet-bkt/dc/shop-ep/AllTraffic"),
            baseline=baseline, out=tmp_path / "out", sns_topic=topic, endpoint_name="named",
        )
    )  # fmt: skip
    assert result.violations == [] and result.sns_message_id is None
    assert result.endpoint == "named"
    assert "Messages" not in boto3.client("sqs").receive_message(QueueUrl=queue, WaitTimeSeconds=1)


def test_aws_errors_are_input_errors(baseline: Path, tmp_path: Path) -> None:
    with pytest.raises(MonitorInputError, match=r"S3 said: .*NoSuchBucket"):
        run_monitor(MonitorRun(CaptureWindow("s3://no-such-bucket/x"), baseline, tmp_path / "o"))
    _capture_in_s3("alert-bkt", "dc", _rows(300, seed=4, shift={0: 2.0}), HOUR)
    missing_topic = "arn:aws:sns:us-east-1:123456789012:nope"
    result = CliRunner().invoke(
        app, ["monitor", "run", "--capture", "s3://alert-bkt/dc", "--baseline", str(baseline),
              "--out", str(tmp_path / "out"), "--sns-topic", missing_topic],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "SNS said" in result.output and "Traceback" not in result.output
