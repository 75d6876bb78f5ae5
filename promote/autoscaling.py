"""Application Auto Scaling: a scalable target per real-time variant and a target-tracking
policy on SageMakerVariantInvocationsPerInstance (invocations per MINUTE per instance).

Serverless variants scale by themselves and get neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from botocore.exceptions import ClientError

from smlocal.promote.aws import Clients, error_code
from smlocal.promote.context import TAG_KEY, Deployment
from smlocal.promote.manifest import Resource

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling.type_defs import (
        TargetTrackingScalingPolicyConfigurationTypeDef,
    )

__all__ = ["delete_policy", "delete_target", "ensure_scaling", "plan"]

NAMESPACE: Final = "sagemaker"
DIMENSION: Final = "sagemaker:variant:DesiredInstanceCount"
METRIC: Final = "SageMakerVariantInvocationsPerInstance"


def plan(dep: Deployment) -> list[str]:
    if dep.request.serverless is not None:
        return ["(serverless: no autoscaling calls)"]
    s = dep.request.scaling
    calls: list[str] = []
    for variant in dep.request.spec.variants:
        rid = dep.resource_id(variant.name)
        calls += [
            f"application-autoscaling.register_scalable_target(ResourceId={rid!r}, "
            f"MinCapacity={s.min_instances}, MaxCapacity={s.max_instances})",
            f"application-autoscaling.put_scaling_policy(PolicyName="
            f"{dep.policy_name(variant.name)!r}, TargetTracking {METRIC}={s.target_invocations:g}, "
            f"ScaleInCooldown={s.scale_in_cooldown_s}, ScaleOutCooldown={s.scale_out_cooldown_s})",
        ]
    return calls


def ensure_scaling(dep: Deployment) -> None:
    if dep.request.serverless is not None:
        return
    aas, s = dep.clients.autoscaling, dep.request.scaling
    for variant in dep.request.spec.variants:
        rid = dep.resource_id(variant.name)
        details = {"resource_id": rid, "dimension": DIMENSION}
        before = aas.describe_scalable_targets(
            ServiceNamespace=NAMESPACE, ResourceIds=[rid], ScalableDimension=DIMENSION
        )["ScalableTargets"]
        answer = aas.register_scalable_target(
            ServiceNamespace=NAMESPACE,
            ResourceId=rid,
            ScalableDimension=DIMENSION,
            MinCapacity=s.min_instances,
            MaxCapacity=s.max_instances,
            Tags={TAG_KEY: dep.request.deployment_id},
        )
        dep.manifest.record(
            "scalable-target",
            rid,
            created=not before,
            arn=answer.get("ScalableTargetARN"),
            details={**details, "min": s.min_instances, "max": s.max_instances},
        )
        name = dep.policy_name(variant.name)
        existing = aas.describe_scaling_policies(
            ServiceNamespace=NAMESPACE,
            ResourceId=rid,
            ScalableDimension=DIMENSION,
            PolicyNames=[name],
        )["ScalingPolicies"]
        tracking: TargetTrackingScalingPolicyConfigurationTypeDef = {
            "TargetValue": s.target_invocations,
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            "ScaleInCooldown": s.scale_in_cooldown_s,
            "ScaleOutCooldown": s.scale_out_cooldown_s,
        }
        policy = aas.put_scaling_policy(
            PolicyName=name,
            ServiceNamespace=NAMESPACE,
            ResourceId=rid,
            ScalableDimension=DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=tracking,
        )
        dep.manifest.record(
            "scaling-policy",
            name,
            created=not existing,
            arn=policy["PolicyARN"],
            details={**details, "target": s.target_invocations},
        )
        dep.reporter.info(
            f"autoscaling {variant.name}: {s.min_instances}-{s.max_instances} instances, "
            f"target {s.target_invocations:g} invocations/instance/minute"
        )


def delete_policy(clients: Clients, resource: Resource) -> str:
    try:
        clients.autoscaling.delete_scaling_policy(
            PolicyName=resource.id,
            ServiceNamespace=NAMESPACE,
            ResourceId=resource.details["resource_id"],
            ScalableDimension=DIMENSION,
        )
    except ClientError as error:
        if error_code(error) == "ObjectNotFoundException":
            return "already gone"
        raise
    return "deleted"


def delete_target(clients: Clients, resource: Resource) -> str:
    try:
        clients.autoscaling.deregister_scalable_target(
            ServiceNamespace=NAMESPACE, ResourceId=resource.id, ScalableDimension=DIMENSION
        )
    except ClientError as error:
        if error_code(error) == "ObjectNotFoundException":
            return "already gone"
        raise
    return "deleted"
