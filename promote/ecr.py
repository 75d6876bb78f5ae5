"""ECR: the repository (scan on push), registry login and the image push.

``--registry-url HOST:PORT`` sends the push to another registry (a mirror, or a local
registry in tests: moto's ECR cannot take a real push) while the repository, the login call
and the image URI in the SageMaker model stay exactly as they would be for ECR.
"""

from __future__ import annotations

import base64
import contextlib
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from botocore.exceptions import ClientError

from smlocal.promote.aws import Clients, error_code
from smlocal.promote.context import TAG_KEY, Deployment, ImageTarget
from smlocal.promote.errors import PromoteError
from smlocal.promote.manifest import Resource

__all__ = [
    "delete_image",
    "delete_repository",
    "ensure_repository",
    "plan",
    "plan_push",
    "plan_repository",
    "push_image",
]

_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def _repositories(dep: Deployment) -> list[str]:
    return list(dict.fromkeys(t.repository for t in dep.targets))


def plan_repository(dep: Deployment) -> list[str]:
    calls: list[str] = []
    for name in _repositories(dep):
        calls += [
            f"ecr.describe_repositories(repositoryNames=[{name!r}])",
            f"ecr.create_repository(repositoryName={name!r}, "
            f"imageScanningConfiguration={{'scanOnPush': True}}, tags=[{TAG_KEY}]) if missing",
        ]
    return calls


def plan_push(dep: Deployment) -> list[str]:
    target = dep.request.registry_url or "<the ECR registry>"
    return ["ecr.get_authorization_token()"] + [
        f"docker push {target}/{t.repository}:{t.tag} (of {t.image})" for t in dep.targets
    ]


def plan(dep: Deployment) -> list[str]:
    return plan_repository(dep) + plan_push(dep)


def ensure_repository(dep: Deployment) -> None:
    """Every repository the endpoint's images go to (one per distinct name)."""
    for name in _repositories(dep):
        uri, arn = _ensure_one(dep, name)
        for target in dep.targets:
            if target.repository == name:
                target.repository_uri, target.repository_arn = uri, arn


def _ensure_one(dep: Deployment, name: str) -> tuple[str, str]:
    ecr = dep.clients.ecr
    try:
        repo: Any = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        created = False
    except ClientError as error:
        if error_code(error) != "RepositoryNotFoundException":
            raise
        repo = ecr.create_repository(
            repositoryName=name,
            imageScanningConfiguration={"scanOnPush": True},
            tags=[{"Key": TAG_KEY, "Value": dep.request.deployment_id}],
        )["repository"]
        created = True
    uri, arn = str(repo["repositoryUri"]), str(repo["repositoryArn"])
    dep.manifest.record("ecr-repository", name, created=created, arn=arn, details={"uri": uri})
    dep.reporter.info(f"repository {name} ({'created' if created else 'exists'})")
    return uri, arn


def _login(dep: Deployment) -> tuple[dict[str, str], str]:
    """Credentials for ``docker push`` from ECR; they stay in memory and are never logged."""
    data = dep.clients.ecr.get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    registry = urllib.parse.urlparse(data["proxyEndpoint"]).netloc
    return {"username": username, "password": password}, registry


def push_image(dep: Deployment) -> None:
    """One push per distinct image (one login for all of them)."""
    auth, ecr_registry = _login(dep)
    registry = dep.request.registry_url or ecr_registry
    for target in dep.targets:
        _push_one(dep, target, auth, registry)


def _push_one(dep: Deployment, image: ImageTarget, auth: dict[str, str], registry: str) -> None:
    import docker
    from docker.errors import DockerException

    target = f"{registry}/{image.repository}"
    tag = image.tag
    digest = ""
    try:
        api = docker.from_env().api
        api.tag(image.image, target, tag)
        try:
            for event in api.push(target, tag, stream=True, decode=True, auth_config=auth):
                if "error" in event:
                    raise PromoteError(f"docker push to {registry} failed: {event['error']}")
                detail = event.get("progressDetail") or {}
                if event.get("id") and detail.get("total"):
                    dep.reporter.layer(
                        event["id"], event.get("status", ""), detail["current"], detail["total"]
                    )
                digest = (event.get("aux") or {}).get("Digest", digest)
        finally:
            # Only the temporary local tag goes; the image itself stays.
            with contextlib.suppress(DockerException):
                api.remove_image(f"{target}:{tag}", noprune=True)
    except DockerException as error:
        raise PromoteError(f"docker push to {registry} failed: {error}") from None
    if not digest:
        raise PromoteError(f"docker push to {registry} reported no image digest")
    image.uri = f"{image.repository_uri}@{digest}"
    dep.manifest.record(
        "ecr-image",
        f"{image.repository}:{tag}",
        created=True,
        details={
            "repository": image.repository,
            "tag": tag,
            "digest": digest,
            "registry": registry,
            "ecr": dep.request.registry_url is None,
            "image": image.image,
        },
    )
    dep.reporter.info(f"pushed {target}:{tag} ({digest[:19]}) from {image.image}")


def delete_image(clients: Clients, resource: Resource) -> str:
    details = resource.details
    if not details.get("ecr", True):
        return _delete_from_registry(details)
    answer = clients.ecr.batch_delete_image(
        repositoryName=details["repository"], imageIds=[{"imageTag": details["tag"]}]
    )
    failures = [f for f in answer.get("failures", []) if f.get("failureCode") != "ImageNotFound"]
    if failures:
        raise PromoteError(f"ECR kept {resource.id}: {failures[0].get('failureReason')}")
    return "deleted" if answer.get("imageIds") else "already gone"


def _delete_from_registry(details: dict[str, Any]) -> str:
    """Images pushed with --registry-url: delete by digest on a loopback (test) registry."""
    registry = str(details["registry"])
    if not registry.startswith(_LOOPBACK):
        return f"left in {registry} (not ECR; delete it there)"
    url = f"http://{registry}/v2/{details['repository']}/manifests/{details['digest']}"
    request = urllib.request.Request(url, method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310
            return f"deleted from {registry}"
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return "already gone"
        raise PromoteError(f"registry {registry} refused to delete the image: {error}") from None


def delete_repository(clients: Clients, resource: Resource) -> str:
    try:
        clients.ecr.delete_repository(repositoryName=resource.id)
    except ClientError as error:
        code = error_code(error)
        if code == "RepositoryNotFoundException":
            return "already gone"
        if code == "RepositoryNotEmptyException":
            # Someone else's images are in it now; never force-delete those.
            resource.details["kept"] = "it holds images smlocal did not push"
            return "kept: it holds images smlocal did not push"
        raise
    return "deleted"
