"""The state one promote run shares between its steps, and the names it gives AWS resources."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypedDict

from smlocal.emulator.spec import VariantSpec
from smlocal.promote.aws import Clients
from smlocal.promote.manifest import Manifest
from smlocal.promote.naming import bounded, short_hash
from smlocal.promote.request import PromoteRequest

__all__ = [
    "TAG_KEY",
    "Deployment",
    "ImageTarget",
    "NullReporter",
    "Reporter",
    "Tag",
    "repository_for",
]

TAG_KEY = "smlocal:deployment-id"


class Tag(TypedDict):
    """``{"Key", "Value"}``: the shape every service's TagTypeDef shares."""

    Key: str
    Value: str


class Reporter(Protocol):
    """How the core tells the CLI what happens (only the CLI prints)."""

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def layer(self, layer_id: str, status: str, current: int, total: int) -> None:
        """Progress of one image layer during the push."""


class NullReporter:
    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def layer(self, layer_id: str, status: str, current: int, total: int) -> None:
        pass


def repository_for(image: str) -> str:
    """The ECR repository name an image name implies (no registry host, tag or digest)."""
    base = image.rsplit("@", 1)[0]
    last = base.rsplit("/", 1)[-1]
    if ":" in last:
        base = base.rsplit(":", 1)[0]
    # ECR: lowercase, [a-z0-9._/-]; a registry host prefix is not part of the name.
    parts = base.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    return "/".join(parts).lower()


@dataclass
class ImageTarget:
    """One distinct local image of the endpoint and where it goes (one push each)."""

    image: str
    image_id: str
    repository: str
    tag: str
    repository_uri: str = ""
    repository_arn: str = ""
    uri: str = ""
    """``<repository uri>@<digest>`` once pushed: what the SageMaker models run."""


@dataclass
class Deployment:
    """Inputs plus what earlier steps found out (account, URIs, ARNs) for later steps."""

    request: PromoteRequest
    clients: Clients
    manifest: Manifest
    reporter: Reporter
    image: str
    image_id: str
    account: str = "<account-id>"
    partition: str = "aws"
    model_data_url: str = ""
    role_arn: str = ""
    topic_arn: str | None = None
    targets: list[ImageTarget] = field(default_factory=list)
    """Distinct images in variant order; the first is ``image`` (built by ``deploy.prepare``)."""
    model_urls: dict[str, str] = field(default_factory=dict)
    """Model source (path or s3://) → its S3 URL, filled by the upload step."""

    def __post_init__(self) -> None:
        if not self.targets:
            self.targets = [
                ImageTarget(
                    self.image,
                    self.image_id,
                    self.request.repository or repository_for(self.image),
                    self.request.deployment_id,
                )
            ]

    # -- per variant -------------------------------------------------------------------------

    def variant_model(self, variant: VariantSpec) -> str:
        """The variant's own model, else the request's (``--model``)."""
        return variant.model or self.request.model

    @property
    def models(self) -> list[str]:
        """Distinct model sources in variant order (one upload each)."""
        return list(dict.fromkeys(self.variant_model(v) for v in self.request.spec.variants))

    def model_key_for(self, model: str) -> str:
        index = self.models.index(model)
        name = "model.tar.gz" if index == 0 else f"model-{index + 1}.tar.gz"
        return f"{self.key_prefix}/{self.request.deployment_id}/{name}"

    def target(self, image: str) -> ImageTarget:
        return next(t for t in self.targets if t.image == image)

    def sagemaker_model_name(self, variant: VariantSpec) -> str:
        """One SageMaker Model per variant; a single-variant endpoint keeps the short name."""
        if len(self.request.spec.variants) == 1:
            return self.model_name
        return bounded(f"{self.endpoint}-{variant.name}", self.suffix)

    # -- names -------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self.request.spec.name

    @property
    def suffix(self) -> str:
        return short_hash(self.request.deployment_id)

    @property
    def tags(self) -> list[Tag]:
        return [{"Key": TAG_KEY, "Value": self.request.deployment_id}]

    @property
    def repository_name(self) -> str:
        return self.targets[0].repository

    @property
    def image_tag(self) -> str:
        return self.request.deployment_id

    @property
    def bucket(self) -> str:
        return self.request.bucket or f"smlocal-artifacts-{self.account}-{self.request.region}"

    @property
    def key_prefix(self) -> str:
        """Everything of one endpoint sits under here, so the role's S3 grant stays narrow."""
        return f"smlocal/{self.endpoint}"

    @property
    def model_key(self) -> str:
        return self.model_key_for(self.models[0])

    @property
    def role_name(self) -> str:
        return bounded(f"smlocal-{self.endpoint}", "sagemaker", limit=64)

    @property
    def model_name(self) -> str:
        return bounded(self.endpoint, self.suffix)

    @property
    def config_name(self) -> str:
        return bounded(self.endpoint, f"cfg-{self.suffix}")

    @property
    def topic_name(self) -> str:
        return bounded(f"smlocal-{self.endpoint}", "alarms", limit=256)

    def resource_id(self, variant: str) -> str:
        return f"endpoint/{self.endpoint}/variant/{variant}"

    def policy_name(self, variant: str) -> str:
        return f"smlocal-{self.endpoint}-{variant}-invocations"

    def alarm_names(self, variant: str) -> tuple[str, str]:
        return (
            f"smlocal-{self.endpoint}-{variant}-5xx-errors",
            f"smlocal-{self.endpoint}-{variant}-p99-model-latency",
        )
