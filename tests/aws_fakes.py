"""Helpers to run promote against a moto server and a local registry (tests, CI, demos).

moto's ECR cannot take a real ``docker push``; :func:`local_registry` starts Debian's
``docker-registry`` on 127.0.0.1 (via ``scripts/ensure-registry.sh``) for ``--registry-url``.
:func:`snapshot` lists what exists in an account, so a test can prove cleanup left nothing.
moto is a development dependency and is imported only when :func:`moto_server` runs.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from smlocal.promote.aws import Clients

__all__ = ["FAKE_CREDENTIALS", "local_registry", "moto_server", "snapshot"]

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ensure-registry.sh"


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on a free loopback port; yields its URL."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO; keep test output readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def local_registry(port: int | None = None) -> str:
    """``127.0.0.1:PORT`` of a running local registry, started (idempotently) if needed."""
    chosen = str(port or os.environ.get("SMLOCAL_REGISTRY_PORT", "5055"))
    answer = subprocess.run(
        ["bash", str(_SCRIPT), chosen], check=True, capture_output=True, text=True
    )
    return answer.stdout.strip().splitlines()[-1]


def snapshot(clients: Clients) -> dict[str, set[str]]:
    """Names of everything promote could create, per kind, in the clients' account/region."""
    sm, aas, s3 = clients.sagemaker, clients.autoscaling, clients.s3
    buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    objects = {
        f"s3://{bucket}/{version['Key']}"
        for bucket in buckets
        for version in s3.list_object_versions(Bucket=bucket).get("Versions", [])
    }
    return {
        "s3-object": objects,
        "ecr-repository": {
            r["repositoryName"] for r in clients.ecr.describe_repositories()["repositories"]
        },
        "s3-bucket": buckets,
        "iam-role": {r["RoleName"] for r in clients.iam.list_roles()["Roles"]},
        "sagemaker-model": {m["ModelName"] for m in sm.list_models()["Models"]},
        "sagemaker-endpoint-config": {
            c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]
        },
        "sagemaker-endpoint": {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]},
        "sns-topic": {t["TopicArn"] for t in clients.sns.list_topics()["Topics"]},
        "cloudwatch-alarm": {
            a["AlarmName"] for a in clients.cloudwatch.describe_alarms()["MetricAlarms"]
        },
        "scalable-target": {
            t["ResourceId"]
            for t in aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
        },
        "scaling-policy": {
            p["PolicyName"]
            for p in aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
        },
    }
