"""IAM: the endpoint's execution role, allowed only what this endpoint needs.

Grants: read the model below this endpoint's S3 prefix (and write async output / data capture
where asked), pull from this one ECR repository, write its own CloudWatch logs and metrics.
``ecr:GetAuthorizationToken`` and ``cloudwatch:PutMetricData`` have no resource-level
permissions in IAM, so those two are ``"*"`` (the latter narrowed to the SageMaker namespace).
``--role-arn`` skips all of this and uses the given role.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from smlocal.promote.aws import Clients, error_code
from smlocal.promote.context import Deployment
from smlocal.promote.manifest import Resource

__all__ = ["POLICY_NAME", "delete_role", "ensure_role", "plan", "policy_document"]

POLICY_NAME = "smlocal-endpoint-access"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def plan(dep: Deployment) -> list[str]:
    if dep.request.role_arn:
        return [f"(use --role-arn {dep.request.role_arn}; no IAM calls)"]
    return [
        f"iam.get_role(RoleName={dep.role_name!r})",
        f"iam.create_role(RoleName={dep.role_name!r}, trust=sagemaker.amazonaws.com) if missing",
        f"iam.put_role_policy(RoleName={dep.role_name!r}, PolicyName={POLICY_NAME!r}) "
        f"scoped to s3://{dep.bucket}/{dep.key_prefix}/* and repositories "
        f"{', '.join(sorted({t.repository for t in dep.targets}))}",
    ]


def _one_or_many(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def _s3_arn(dep: Deployment, uri: str) -> str:
    return f"arn:{dep.partition}:s3:::{uri.removeprefix('s3://').rstrip('/')}/*"


def policy_document(dep: Deployment) -> dict[str, Any]:
    p, region, account = dep.partition, dep.request.region, dep.account
    read: list[str] = []
    listing: dict[str, list[str]] = {}
    for url in dict.fromkeys(dep.model_urls.values() or [dep.model_data_url]):
        model_bucket, _, model_key = url.removeprefix("s3://").partition("/")
        prefix = model_key.rsplit("/", 2)[0] if model_key else dep.key_prefix
        read.append(f"arn:{p}:s3:::{model_bucket}/{prefix}/*")
        listing.setdefault(model_bucket, []).append(f"{prefix}/*")
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadModel",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": _one_or_many(sorted(set(read))),
        },
        *(
            {
                "Sid": f"ListModelPrefix{index}" if index else "ListModelPrefix",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": f"arn:{p}:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": sorted(set(prefixes))}},
            }
            for index, (bucket, prefixes) in enumerate(listing.items())
        ),
        {
            "Sid": "PullImage",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            "Resource": _one_or_many(
                sorted({t.repository_arn for t in dep.targets} - {""})
                or [dep.targets[0].repository_arn]
            ),
        },
        {
            "Sid": "EcrLogin",
            "Effect": "Allow",
            "Action": "ecr:GetAuthorizationToken",
            "Resource": "*",
        },
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"arn:{p}:logs:{region}:{account}:log-group:"
            f"/aws/sagemaker/Endpoints/{dep.endpoint}*",
        },
        {
            "Sid": "Metrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {
                "StringLike": {"cloudwatch:namespace": ["AWS/SageMaker*", "/aws/sagemaker/*"]}
            },
        },
    ]
    outputs = [
        uri
        for uri in (
            dep.request.async_output.output_path if dep.request.async_output else None,
            dep.request.async_output.failure_path if dep.request.async_output else None,
            dep.request.data_capture.destination if dep.request.data_capture else None,
        )
        if uri
    ]
    if outputs:
        statements.append(
            {
                "Sid": "WriteOutputs",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": [_s3_arn(dep, uri) for uri in outputs],
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def ensure_role(dep: Deployment) -> None:
    if dep.request.role_arn:
        dep.role_arn = dep.request.role_arn
        return
    iam, name = dep.clients.iam, dep.role_name
    try:
        dep.role_arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise
    else:
        dep.manifest.record("iam-role", name, created=False, arn=dep.role_arn)
        dep.reporter.info(f"role {name} (exists; used as it is)")
        return
    role = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(TRUST),
        Description=f"SageMaker execution role for endpoint {dep.endpoint} (smlocal)",
        Tags=dep.tags,
    )["Role"]
    dep.role_arn = role["Arn"]
    dep.manifest.record(
        "iam-role", name, created=True, arn=dep.role_arn, details={"policies": [POLICY_NAME]}
    )
    iam.put_role_policy(
        RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy_document(dep))
    )
    dep.reporter.info(f"role {name} (created, least-privilege policy {POLICY_NAME})")


def delete_role(clients: Clients, resource: Resource) -> str:
    iam = clients.iam
    try:
        for policy in resource.details.get("policies", []):
            try:
                iam.delete_role_policy(RoleName=resource.id, PolicyName=policy)
            except ClientError as error:
                if error_code(error) != "NoSuchEntity":
                    raise
        iam.delete_role(RoleName=resource.id)
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return "already gone"
        raise
    return "deleted"
