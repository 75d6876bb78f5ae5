"""Delete exactly what a manifest says smlocal created, in reverse dependency order.

Order: scaling policy, scalable target, alarms, SNS topic, endpoint (waiting until it is
gone), endpoint config, model, S3 objects it uploaded, the bucket (only if smlocal created it
and it is empty), the ECR image, the repository (only if created), the role. Resources marked
pre-existing are never touched. Each deletion is written to the manifest as it happens, so an
interrupted cleanup resumes where it stopped and a finished one is a no-op the next time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from smlocal.promote import alarms, autoscaling, ecr, iam, s3, sagemaker
from smlocal.promote.aws import AWS_ERRORS, Clients, describe_error
from smlocal.promote.errors import CleanupError, PromoteError
from smlocal.promote.manifest import Manifest, Resource

__all__ = ["CleanupOptions", "CleanupResult", "pending", "run_cleanup"]

log = logging.getLogger(__name__)

Deleter = Callable[[Clients, Resource], str]

_ARTIFACT_KINDS = ("s3-object", "s3-bucket", "ecr-image", "ecr-repository")


@dataclass(frozen=True)
class CleanupOptions:
    keep_artifacts: bool = False
    endpoint_url: str | None = None
    endpoint_timeout_s: float = 1800.0
    poll_interval_s: float = 15.0


@dataclass
class CleanupResult:
    deleted: list[tuple[Resource, str]] = field(default_factory=list)
    kept: list[tuple[Resource, str]] = field(default_factory=list)
    failed: list[tuple[Resource, str]] = field(default_factory=list)


def pending(manifest: Manifest, options: CleanupOptions) -> list[Resource]:
    """What a cleanup would delete, in the order it would delete it."""
    return [
        r
        for r in manifest.to_delete()
        if "kept" not in r.details and not (options.keep_artifacts and r.kind in _ARTIFACT_KINDS)
    ]


def _in_use_by_kept_endpoint(
    clients: Clients, manifest: Manifest, resource: Resource
) -> str | None:
    """An endpoint promote only updated stays; the config and model it now runs must stay too."""
    if resource.kind not in ("sagemaker-endpoint-config", "sagemaker-model"):
        return None
    for endpoint in manifest.of_kind("sagemaker-endpoint"):
        if endpoint.created:
            continue
        try:
            config = clients.sagemaker.describe_endpoint(EndpointName=endpoint.id)[
                "EndpointConfigName"
            ]
        except ClientError:
            continue
        if resource.kind == "sagemaker-endpoint-config" and config == resource.id:
            return f"endpoint {endpoint.id} (not made by smlocal) runs on it"
        if resource.kind == "sagemaker-model":
            variants = clients.sagemaker.describe_endpoint_config(EndpointConfigName=config)
            if any(v.get("ModelName") == resource.id for v in variants["ProductionVariants"]):
                return f"endpoint {endpoint.id} (not made by smlocal) runs on it"
    return None


def run_cleanup(
    manifest: Manifest,
    options: CleanupOptions,
    on_resource: Callable[[Resource, str], None] | None = None,
) -> CleanupResult:
    """Delete :func:`pending` resources; raise CleanupError if any could not be deleted."""
    clients = Clients(manifest.region, options.endpoint_url or manifest.endpoint_url)

    def delete_endpoint(c: Clients, r: Resource) -> str:
        return sagemaker.delete_endpoint(
            c, r, timeout_s=options.endpoint_timeout_s, poll_s=options.poll_interval_s
        )

    deleters: dict[str, Deleter] = {
        "scaling-policy": autoscaling.delete_policy,
        "scalable-target": autoscaling.delete_target,
        "cloudwatch-alarm": alarms.delete_alarm,
        "sns-topic": alarms.delete_topic,
        "sagemaker-endpoint": delete_endpoint,
        "sagemaker-endpoint-config": sagemaker.delete_endpoint_config,
        "sagemaker-model": sagemaker.delete_model,
        "s3-object": s3.delete_object,
        "s3-bucket": s3.delete_bucket,
        "ecr-image": ecr.delete_image,
        "ecr-repository": ecr.delete_repository,
        "iam-role": iam.delete_role,
    }
    result = CleanupResult()
    for resource in pending(manifest, options):
        try:
            in_use = _in_use_by_kept_endpoint(clients, manifest, resource)
            if in_use is not None:
                resource.details["kept"] = in_use
                outcome = f"kept: {in_use}"
            else:
                outcome = deleters[resource.kind](clients, resource)
        except (*AWS_ERRORS, PromoteError) as error:
            # Keep going: later resources may not depend on this one; the manifest keeps it.
            message = describe_error(error)
            log.warning("could not delete %s %s: %s", resource.kind, resource.id, message)
            result.failed.append((resource, message))
            if on_resource is not None:
                on_resource(resource, f"FAILED: {message}")
            continue
        if outcome.startswith("kept"):
            result.kept.append((resource, outcome))
            manifest.save()
        else:
            result.deleted.append((resource, outcome))
            manifest.mark_deleted(resource)
        if on_resource is not None:
            on_resource(resource, outcome)
    if result.failed:
        names = ", ".join(f"{r.kind} {r.id}" for r, _ in result.failed)
        raise CleanupError(
            f"could not delete {names}; they stay in {manifest.path} — fix the cause and run "
            f"`smlocal cleanup --manifest {manifest.path}` again"
        )
    return result
