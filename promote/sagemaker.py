"""SageMaker: the model, the endpoint config, the endpoint (create or update) and the wait.

Models and endpoint configs are immutable and named after the deployment, so a name that is
already taken by something this deployment did not make is a conflict, never reused. An
endpoint that already exists is updated to the new config (UpdateEndpoint) and recorded as
pre-existing: cleanup will not delete it.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from smlocal.emulator.spec import VariantSpec
from smlocal.promote.aws import Clients, error_code
from smlocal.promote.context import Deployment
from smlocal.promote.errors import PromoteError
from smlocal.promote.manifest import Resource

__all__ = [
    "create_endpoint_config",
    "create_model",
    "delete_endpoint",
    "delete_endpoint_config",
    "delete_model",
    "deploy_endpoint",
    "plan",
    "plan_models",
    "wait_in_service",
]

_WAITING = ("Creating", "Updating", "SystemUpdating", "UpdateRollbackFailed")
_FAILED = ("Failed", "RollingBack", "OutOfService", "Deleting")
# A new IAM role takes a few seconds to be assumable; CreateModel says so in its message.
_ROLE_PROPAGATION_S = 60.0


def _missing(error: ClientError) -> bool:
    message = str(error.response.get("Error", {}).get("Message", ""))
    return error_code(error) == "ValidationException" and "Could not find" in message


def plan_models(dep: Deployment) -> list[str]:
    return [
        f"sagemaker.create_model(ModelName={dep.sagemaker_model_name(v)!r}, "
        f"Image=<pushed digest of {v.image}>, ModelDataUrl=<{dep.variant_model(v)}>, "
        "ExecutionRoleArn=<role>)"
        for v in dep.request.spec.variants
    ]


def plan(dep: Deployment) -> list[str]:
    return [
        *plan_models(dep),
        f"sagemaker.create_endpoint_config(EndpointConfigName={dep.config_name!r}, "
        f"{len(dep.request.spec.variants)} variant(s))",
        f"sagemaker.describe_endpoint(EndpointName={dep.endpoint!r}) then create_endpoint "
        "or update_endpoint",
        f"sagemaker.describe_endpoint(EndpointName={dep.endpoint!r}) until InService",
    ]


def _check_not_taken(dep: Deployment, kind: str, name: str, taken: bool) -> bool:
    """True when this deployment already made it (resume); a conflict when someone else did."""
    if not taken:
        return False
    mine = dep.manifest.find(kind, name)
    if mine is not None and mine.created:
        return True
    raise PromoteError(
        f"{kind} {name} already exists and was not made by deployment "
        f"{dep.request.deployment_id}; pass another --deployment-id or delete it"
    )


def create_model(dep: Deployment) -> None:
    """One SageMaker Model per variant, each with its own image and model."""
    for variant in dep.request.spec.variants:
        _create_one_model(dep, variant)


def _create_one_model(dep: Deployment, variant: VariantSpec) -> None:
    sm, name = dep.clients.sagemaker, dep.sagemaker_model_name(variant)
    try:
        sm.describe_model(ModelName=name)
        taken = True
    except ClientError as error:
        if not _missing(error):
            raise
        taken = False
    if _check_not_taken(dep, "sagemaker-model", name, taken):
        return
    image_uri = dep.target(variant.image).uri
    model_url = dep.model_urls[dep.variant_model(variant)]
    container: dict[str, Any] = {"Image": image_uri, "ModelDataUrl": model_url}
    if variant.env:
        container["Environment"] = dict(variant.env)
    deadline = time.monotonic() + _ROLE_PROPAGATION_S
    while True:
        try:
            arn = sm.create_model(
                ModelName=name,
                PrimaryContainer=container,  # type: ignore[arg-type]
                ExecutionRoleArn=dep.role_arn,
                Tags=dep.tags,
            )["ModelArn"]
            break
        except ClientError as error:
            message = str(error.response.get("Error", {}).get("Message", ""))
            if "assume" not in message.lower() or time.monotonic() > deadline:
                raise
            time.sleep(5)
    dep.manifest.record(
        "sagemaker-model",
        name,
        created=True,
        arn=arn,
        details={"image": image_uri, "model": model_url, "variant": variant.name},
    )
    dep.reporter.info(f"model {name} (variant {variant.name})")


def _variants(dep: Deployment) -> list[dict[str, Any]]:
    variants: list[dict[str, Any]] = []
    for spec in dep.request.spec.variants:
        variant: dict[str, Any] = {
            "VariantName": spec.name,
            "ModelName": dep.sagemaker_model_name(spec),
            "InitialVariantWeight": spec.weight,
        }
        serverless = dep.request.serverless
        if serverless is not None:
            variant["ServerlessConfig"] = {
                "MemorySizeInMB": serverless.memory_mb,
                "MaxConcurrency": serverless.max_concurrency,
            }
        else:
            variant["InstanceType"] = spec.instance_type
            variant["InitialInstanceCount"] = spec.instance_count
        variants.append(variant)
    return variants


def create_endpoint_config(dep: Deployment) -> None:
    sm, name = dep.clients.sagemaker, dep.config_name
    try:
        sm.describe_endpoint_config(EndpointConfigName=name)
        taken = True
    except ClientError as error:
        if not _missing(error):
            raise
        taken = False
    if _check_not_taken(dep, "sagemaker-endpoint-config", name, taken):
        return
    params: dict[str, Any] = {
        "EndpointConfigName": name,
        "ProductionVariants": _variants(dep),
        "Tags": dep.tags,
    }
    request = dep.request
    if request.async_output is not None:
        params["AsyncInferenceConfig"] = {
            "OutputConfig": {
                "S3OutputPath": request.async_output.output_path,
                "S3FailurePath": request.async_output.failure_path,
            }
        }
    if request.data_capture is not None:
        params["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": request.data_capture.sampling_percent,
            "DestinationS3Uri": request.data_capture.destination,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
    arn = sm.create_endpoint_config(**params)["EndpointConfigArn"]
    dep.manifest.record("sagemaker-endpoint-config", name, created=True, arn=arn)
    dep.reporter.info(f"endpoint config {name} ({len(params['ProductionVariants'])} variant(s))")


def deploy_endpoint(dep: Deployment) -> None:
    sm, name = dep.clients.sagemaker, dep.endpoint
    try:
        current: Any = sm.describe_endpoint(EndpointName=name)
    except ClientError as error:
        if not _missing(error):
            raise
        current = None
    if current is None:
        arn = sm.create_endpoint(
            EndpointName=name, EndpointConfigName=dep.config_name, Tags=dep.tags
        )
        dep.manifest.record("sagemaker-endpoint", name, created=True, arn=arn["EndpointArn"])
        dep.reporter.info(f"endpoint {name} (creating)")
        return
    if current["EndpointConfigName"] == dep.config_name:
        dep.reporter.info(f"endpoint {name} already uses {dep.config_name}")
        return
    mine = dep.manifest.find("sagemaker-endpoint", name)
    dep.manifest.record(
        "sagemaker-endpoint",
        name,
        created=mine.created if mine else False,
        arn=current["EndpointArn"],
        details={"previous_config": current["EndpointConfigName"], "updated_to": dep.config_name},
    )
    sm.update_endpoint(EndpointName=name, EndpointConfigName=dep.config_name)
    dep.reporter.info(f"endpoint {name} (updating from {current['EndpointConfigName']})")


def wait_in_service(dep: Deployment) -> None:
    sm, name = dep.clients.sagemaker, dep.endpoint
    deadline = time.monotonic() + dep.request.wait_timeout_s
    last = ""
    while True:
        answer = sm.describe_endpoint(EndpointName=name)
        status = answer["EndpointStatus"]
        if status != last:
            dep.reporter.info(f"endpoint {name}: {status}")
            last = status
        if status == "InService":
            if answer.get("EndpointConfigName") != dep.config_name:
                # A failed update leaves the endpoint InService on its old config, with a
                # FailureReason: that is no success.
                reason = answer.get("FailureReason") or "no FailureReason given"
                raise PromoteError(
                    f"the update of endpoint {name} to {dep.config_name} was rolled back; it "
                    f"still serves {answer.get('EndpointConfigName')}: {reason}"
                )
            return
        if status in _FAILED:
            reason = answer.get("FailureReason") or "no FailureReason given"
            raise PromoteError(f"endpoint {name} is {status}: {reason}")
        if time.monotonic() > deadline:
            raise PromoteError(
                f"endpoint {name} still {status} after {dep.request.wait_timeout_s:g} s; "
                "see its CloudWatch logs under /aws/sagemaker/Endpoints/" + name
            )
        time.sleep(dep.request.poll_interval_s)


def delete_endpoint(
    clients: Clients, resource: Resource, *, timeout_s: float = 1800.0, poll_s: float = 15.0
) -> str:
    sm = clients.sagemaker
    try:
        sm.delete_endpoint(EndpointName=resource.id)
    except ClientError as error:
        if _missing(error):
            return "already gone"
        raise
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            sm.describe_endpoint(EndpointName=resource.id)
        except ClientError as error:
            if _missing(error):
                return "deleted"
            raise
        if time.monotonic() > deadline:
            raise PromoteError(f"endpoint {resource.id} still exists after {timeout_s:g} s")
        time.sleep(poll_s)


def delete_endpoint_config(clients: Clients, resource: Resource) -> str:
    try:
        clients.sagemaker.delete_endpoint_config(EndpointConfigName=resource.id)
    except ClientError as error:
        if _missing(error):
            return "already gone"
        raise
    return "deleted"


def delete_model(clients: Clients, resource: Resource) -> str:
    try:
        clients.sagemaker.delete_model(ModelName=resource.id)
    except ClientError as error:
        if _missing(error):
            return "already gone"
        raise
    return "deleted"
