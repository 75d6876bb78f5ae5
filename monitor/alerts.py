"""The recipe's alerts and metrics: an SNS message on violations, CloudWatch data metrics.

SNS: one ``Publish`` to the topic when a run found violations, the message a JSON document
(endpoint, window, counts per check type, the violations, where the report is) under a short
subject. CloudWatch: the metrics Model Monitor emits (reference §E.3) in its real-time
namespace ``/aws/sagemaker/Endpoints/data-metric`` with dimensions ``EndpointName`` and
``ScheduleName``: ``feature_data_<f>`` (statistic set: SampleCount, Sum, Minimum, Maximum) for
numeric features, ``feature_non_null_<f>`` (completeness) and ``feature_baseline_drift_<f>``
(the distance) for every feature. Both through boto3, so moto or real AWS by its settings.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from smlocal.monitor.errors import MonitorInputError
from smlocal.monitor.files import Violation
from smlocal.monitor.profile import FeatureStats

__all__ = ["METRIC_NAMESPACE", "metric_data", "publish_violations", "put_metrics"]

METRIC_NAMESPACE = "/aws/sagemaker/Endpoints/data-metric"
_BATCH = 500  # PutMetricData takes up to 1000 metrics a call


def _client(service: str) -> Any:
    import boto3

    return boto3.client(service)  # type: ignore[call-overload]


def publish_violations(
    topic_arn: str, *, endpoint: str, window: dict[str, str | None],
    violations: Sequence[Violation], report: str,
) -> str:  # fmt: skip
    """Publish the violations to ``topic_arn``; returns the MessageId."""
    import botocore.exceptions

    kinds = Counter(v.constraint_check_type for v in violations)
    body = {
        "source": "smlocal monitor",
        "endpoint": endpoint,
        "window": window,
        "violation_count": len(violations),
        "by_check": dict(kinds),
        "violations": [
            {"feature_name": v.feature_name, "constraint_check_type": v.constraint_check_type,
             "description": v.description}
            for v in violations
        ],
        "report": report,
    }  # fmt: skip
    subject = f"smlocal monitor: {len(violations)} violations on {endpoint}"[:100]
    try:
        answer = _client("sns").publish(
            TopicArn=topic_arn, Subject=subject, Message=json.dumps(body)
        )
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise MonitorInputError(f"--sns-topic {topic_arn}: SNS said: {error}") from None
    return str(answer["MessageId"])


def metric_data(
    features: Sequence[FeatureStats], completeness: dict[str, float], drift: dict[str, float],
    *, endpoint: str, schedule: str, at: datetime,
) -> list[dict[str, Any]]:  # fmt: skip
    dims = [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "ScheduleName", "Value": schedule},
    ]
    data: list[dict[str, Any]] = []
    for f in features:
        base = {"Timestamp": at, "Dimensions": dims}
        if f.is_numeric and f.num_present:
            data.append({
                **base, "MetricName": f"feature_data_{f.name}", "Unit": "None",
                "StatisticValues": {"SampleCount": float(f.num_present), "Sum": f.total,
                                    "Minimum": f.minimum, "Maximum": f.maximum},
            })  # fmt: skip
        if f.name in completeness:
            data.append(
                {**base, "MetricName": f"feature_non_null_{f.name}", "Value": completeness[f.name]}
            )
        if f.name in drift:
            data.append(
                {**base, "MetricName": f"feature_baseline_drift_{f.name}", "Value": drift[f.name]}
            )
    return data


def put_metrics(data: list[dict[str, Any]], namespace: str = METRIC_NAMESPACE) -> int:
    """PutMetricData in batches; returns how many metrics were sent."""
    import botocore.exceptions

    cloudwatch = _client("cloudwatch")
    try:
        for i in range(0, len(data), _BATCH):
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[i : i + _BATCH])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise MonitorInputError(f"--cloudwatch: CloudWatch said: {error}") from None
    return len(data)
