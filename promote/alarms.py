"""CloudWatch alarms on each variant's 5XX errors and p99 ModelLatency, and an SNS topic
(with an e-mail subscription) as their action when ``--alarm-email`` is given.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from smlocal.promote.aws import Clients, error_code
from smlocal.promote.context import Deployment
from smlocal.promote.manifest import Resource

__all__ = ["delete_alarm", "delete_topic", "ensure_alarms", "plan"]

NAMESPACE = "AWS/SageMaker"
PERIOD_S = 60


def plan(dep: Deployment) -> list[str]:
    calls: list[str] = []
    if dep.request.alarm_email:
        calls += [
            f"sns.create_topic(Name={dep.topic_name!r})",
            "sns.subscribe(Protocol='email', Endpoint=<--alarm-email>)",
        ]
    for variant in dep.request.spec.variants:
        errors, latency = dep.alarm_names(variant.name)
        calls += [
            f"cloudwatch.put_metric_alarm(AlarmName={errors!r}, Invocation5XXErrors Sum > 0)",
            f"cloudwatch.put_metric_alarm(AlarmName={latency!r}, ModelLatency p99 > "
            f"{dep.request.latency_p99_ms:g} ms)",
        ]
    return calls


def _ensure_topic(dep: Deployment) -> None:
    email = dep.request.alarm_email
    if not email:
        return
    sns = dep.clients.sns
    arn = f"arn:{dep.partition}:sns:{dep.request.region}:{dep.account}:{dep.topic_name}"
    try:
        sns.get_topic_attributes(TopicArn=arn)
        existed = True
    except ClientError as error:
        if error_code(error) not in ("NotFound", "NotFoundException"):
            raise
        existed = False
    if not existed:
        arn = sns.create_topic(Name=dep.topic_name, Tags=dep.tags)["TopicArn"]
    dep.manifest.record("sns-topic", dep.topic_name, created=not existed, arn=arn)
    sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=email)
    dep.topic_arn = arn
    dep.reporter.info(f"SNS topic {dep.topic_name} → {email} (confirm the e-mail AWS sends)")


def ensure_alarms(dep: Deployment) -> None:
    _ensure_topic(dep)
    cw = dep.clients.cloudwatch
    actions = [dep.topic_arn] if dep.topic_arn else []
    for variant in dep.request.spec.variants:
        dimensions = [
            {"Name": "EndpointName", "Value": dep.endpoint},
            {"Name": "VariantName", "Value": variant.name},
        ]
        errors, latency = dep.alarm_names(variant.name)
        existing = {
            a["AlarmName"] for a in cw.describe_alarms(AlarmNames=[errors, latency])["MetricAlarms"]
        }
        common = {
            "Namespace": NAMESPACE,
            "Dimensions": dimensions,
            "Period": PERIOD_S,
            "AlarmActions": actions,
            "TreatMissingData": "notBreaching",
            "Tags": dep.tags,
        }
        cw.put_metric_alarm(
            AlarmName=errors,
            AlarmDescription=f"{dep.endpoint}/{variant.name} answered with 5XX errors",
            MetricName="Invocation5XXErrors",
            Statistic="Sum",
            EvaluationPeriods=5,
            DatapointsToAlarm=2,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
            **common,  # type: ignore[arg-type]
        )
        dep.manifest.record("cloudwatch-alarm", errors, created=errors not in existing)
        cw.put_metric_alarm(
            AlarmName=latency,
            AlarmDescription=f"{dep.endpoint}/{variant.name} p99 model latency is high",
            MetricName="ModelLatency",
            ExtendedStatistic="p99",
            EvaluationPeriods=5,
            DatapointsToAlarm=3,
            # ModelLatency is in MICROseconds.
            Threshold=dep.request.latency_p99_ms * 1000,
            ComparisonOperator="GreaterThanThreshold",
            **common,  # type: ignore[arg-type]
        )
        dep.manifest.record("cloudwatch-alarm", latency, created=latency not in existing)
    dep.reporter.info("alarms on 5XX errors and p99 ModelLatency")


def delete_alarm(clients: Clients, resource: Resource) -> str:
    # DeleteAlarms succeeds for names that do not exist.
    clients.cloudwatch.delete_alarms(AlarmNames=[resource.id])
    return "deleted"


def delete_topic(clients: Clients, resource: Resource) -> str:
    # DeleteTopic is idempotent and removes the topic's subscriptions too.
    if resource.arn:
        clients.sns.delete_topic(TopicArn=resource.arn)
    return "deleted"
