"""From control-plane records (Model, EndpointConfig) to the one EndpointSpec the core runs.

A variant takes its image, model data and environment from its Model's ``PrimaryContainer``
(or its only entry of ``Containers``), and its instance type, count and weight from the
EndpointConfig's production variant. ``Image`` may be a local name or an ECR URI:
``ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG`` (or ``REPO@sha256:...``) runs the local image
``REPO:TAG`` (or the local image with that repository digest, e.g. the one just pushed to a
local registry) when the engine has it, said in the log; else the URI itself, which Docker
then pulls.
Model data: ``ModelDataUrl`` or ``ModelDataSource.S3DataSource.S3Uri`` (``s3://`` read through
boto3, so real S3 and a moto server both work; a local path is a documented extension).
``EnableNetworkIsolation`` makes the variant's containers run with no outbound network.
``Mode: MultiModel`` makes a multi-model variant (:mod:`.multi_model_rules`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.errors import ConfigError
from smlocal.emulator.service.capture_rules import capture_spec
from smlocal.emulator.service.multi_model_rules import (
    check_multi_model_config,
    multi_model_fields,
)
from smlocal.emulator.service.serverless_rules import (
    check_serverless_config,
    serverless_fields,
    startup_window,
)
from smlocal.emulator.spec import DEFAULT_STARTUP_TIMEOUT_S, EndpointSpec, build_spec

__all__ = ["container_of", "endpoint_spec", "local_image"]

log = logging.getLogger(__name__)

_ECR = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/(?P<repo>.+)$")


def local_image(image: str, resolve: Callable[[str], str | None]) -> str:
    """The image to run for ``image``: an ECR URI maps to its local counterpart if present."""
    match = _ECR.match(image)
    if match is None:
        return image
    local = resolve(match["repo"])
    if local is not None:
        log.info("image %s: running the local image %s", image, local)
        return local
    return image


def container_of(model: Mapping[str, Any]) -> dict[str, Any]:
    """The model's one container definition (ValidationException for pipelines)."""
    if model.get("PrimaryContainer"):
        return dict(model["PrimaryContainer"])
    containers = model.get("Containers") or []
    if len(containers) == 1:
        return dict(containers[0])
    raise AwsError(
        "ValidationException",
        f"Model {model.get('ModelName')} has {len(containers)} containers: smlocal runs one "
        "container per model (inference pipelines are not emulated yet).",
    )


def _model_data(container: Mapping[str, Any]) -> str | None:
    location = container.get("ModelDataUrl")
    source = (container.get("ModelDataSource") or {}).get("S3DataSource")
    if not location and source:
        location = source["S3Uri"]
    if not location:
        return None
    return str(location).removeprefix("file://")


def endpoint_spec(
    name: str,
    config: Mapping[str, Any],
    models: Mapping[str, Mapping[str, Any]],
    resolve_image: Callable[[str], str | None],
) -> EndpointSpec:
    """The spec of endpoint ``name`` running ``config`` (its models in ``models``, by name)."""
    check_serverless_config(config, models.get)
    check_multi_model_config(
        config,
        {
            v["VariantName"]: container_of(models[v["ModelName"]])
            for v in config["ProductionVariants"]
        },
        _model_data,
    )
    variants = []
    startup = DEFAULT_STARTUP_TIMEOUT_S
    for variant in config["ProductionVariants"]:
        model = models[variant["ModelName"]]
        container = container_of(model)
        if not container.get("Image"):
            raise AwsError(
                "ValidationException",
                f"Model {model.get('ModelName')} has no container Image (smlocal runs images; "
                "model packages are not emulated).",
            )
        variants.append(
            {
                "name": variant["VariantName"],
                "image": local_image(str(container["Image"]), resolve_image),
                "model": _model_data(container),
                "env": dict(container.get("Environment") or {}),
                "instance_type": variant.get("InstanceType") or "ml.m5.large",
                "instance_count": int(variant.get("InitialInstanceCount") or 1),
                "weight": float(variant.get("InitialVariantWeight", 1.0)),
                "network_isolation": bool(model.get("EnableNetworkIsolation", False)),
                **serverless_fields(variant),
                **multi_model_fields(container),
            }
        )
        if variant.get("ContainerStartupHealthCheckTimeoutInSeconds"):
            # One window per endpoint here: the longest any variant asks for.
            asked = int(variant["ContainerStartupHealthCheckTimeoutInSeconds"])
            startup = max(startup, asked) if variants[:-1] else asked
    startup = startup_window(config["ProductionVariants"], startup)
    try:
        return build_spec(
            name=name,
            variants=variants,
            startup_timeout_s=startup,
            asynchronous=bool(config.get("AsyncInferenceConfig")),
            capture=capture_spec(config),
        )
    except ConfigError as error:
        raise AwsError("ValidationException", str(error)) from None
