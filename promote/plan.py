"""The ordered steps of a promote, what each would call, and the runner that executes them.

``--dry-run`` prints :func:`describe` (every call, in order) and makes none. The runner stops
at the first failing step, writes the step and AWS's error into the manifest and raises
:class:`StepFailedError`; everything made so far is already in the manifest for cleanup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from smlocal.promote import alarms, autoscaling, ecr, iam, s3, sagemaker
from smlocal.promote.aws import AWS_ERRORS, describe_error
from smlocal.promote.context import Deployment
from smlocal.promote.errors import PromoteError, StepFailedError

__all__ = ["STEPS", "Step", "describe", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Deployment], None]
    calls: Callable[[Deployment], list[str]]


def _identity(dep: Deployment) -> None:
    """Account and partition for ARNs and the default bucket name."""
    answer = dep.clients.sts.get_caller_identity()
    dep.account = answer["Account"]
    dep.partition = answer["Arn"].split(":")[1]


def _split(
    calls: Callable[[Deployment], list[str]], start: int, stop: int | None = None
) -> Callable[[Deployment], list[str]]:
    return lambda dep: calls(dep)[start:stop]


STEPS: tuple[Step, ...] = (
    Step("identity", _identity, lambda dep: ["sts.get_caller_identity()"]),
    Step("ecr repository", ecr.ensure_repository, ecr.plan_repository),
    Step("image push", ecr.push_image, ecr.plan_push),
    Step("s3 bucket", s3.ensure_bucket, s3.plan_bucket),
    Step("model upload", s3.upload_model, s3.plan_upload),
    Step("iam role", iam.ensure_role, iam.plan),
    Step("sagemaker model", sagemaker.create_model, sagemaker.plan_models),
    Step("endpoint config", sagemaker.create_endpoint_config, _split(sagemaker.plan, -3, -2)),
    Step("endpoint", sagemaker.deploy_endpoint, _split(sagemaker.plan, -2, -1)),
    Step("wait for InService", sagemaker.wait_in_service, _split(sagemaker.plan, -1)),
    Step("autoscaling", autoscaling.ensure_scaling, autoscaling.plan),
    Step("alarms", alarms.ensure_alarms, alarms.plan),
)


def describe(dep: Deployment) -> list[tuple[str, list[str]]]:
    """Every step with the calls it would make (for --dry-run)."""
    return [(step.name, step.calls(dep)) for step in STEPS]


def run(dep: Deployment, on_step: Callable[[str, int, int], None] | None = None) -> None:
    """Run every step in order; stop at the first failure (see the module docstring)."""
    for index, step in enumerate(STEPS, 1):
        if on_step is not None:
            on_step(step.name, index, len(STEPS))
        log.info("promote step %s", step.name)
        try:
            step.run(dep)
        except (*AWS_ERRORS, PromoteError) as error:
            reason = describe_error(error)
            dep.manifest.finish("failed", {"step": step.name, "error": reason})
            raise StepFailedError(step.name, reason, dep.manifest.path) from error
    dep.manifest.finish("complete")
