"""The control plane's side of multi-model endpoints: what a ``Mode: MultiModel`` Model makes of
a variant, and what CreateEndpoint / UpdateEndpoint refuse.

- A container with ``Mode: MultiModel`` gives its variant a
  :class:`~smlocal.emulator.multi_model_config.MultiModelSpec` (``MultiModelConfig.
  ModelCacheSetting``: ``Enabled``, the default, or ``Disabled``); its ``ModelDataUrl`` (or
  ``ModelDataSource.S3DataSource.S3Uri``) is the prefix the requests' ``TargetModel`` paths
  are under: ``s3://bucket/prefix/``, or a local directory (smlocal's extension, as for single
  models).
- The image must carry the label ``com.amazonaws.sagemaker.capabilities.multi-models=true``.
  AWS refuses one without it at CreateModel, in these words: "Your Ecr Image IMAGE does not
  contain required com.amazonaws.sagemaker.capabilities.multi-models=true Docker label(s)."
  smlocal says the same at CreateModel when the engine has the image, and at CreateEndpoint /
  UpdateEndpoint in any case (a local image is often built after its Model is created).
- Refused with smlocal's wording (AWS's not found): a multi-model Model without a prefix, one
  endpoint mixing multi-model and single-model variants, multi-model with asynchronous
  inference (not emulated). Serverless + multi-model is refused by the serverless rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.errors import SmlocalError
from smlocal.emulator.multi_model_config import CAPABILITY_LABEL

__all__ = [
    "check_model_images",
    "check_multi_model_config",
    "check_multi_model_image",
    "is_multi_model_container",
    "multi_model_fields",
]

ImageInfo = Callable[[str], Mapping[str, Any]]


def is_multi_model_container(container: Mapping[str, Any]) -> bool:
    return container.get("Mode") == "MultiModel"


def multi_model_fields(container: Mapping[str, Any]) -> dict[str, Any]:
    """The VariantSpec fields a multi-model container gives (none for a single model)."""
    if not is_multi_model_container(container):
        return {}
    setting = (container.get("MultiModelConfig") or {}).get("ModelCacheSetting", "Enabled")
    return {"multi_model": {"cache_enabled": setting != "Disabled"}}


def check_multi_model_config(
    config: Mapping[str, Any],
    containers: Mapping[str, Mapping[str, Any]],
    model_data: Callable[[Mapping[str, Any]], str | None],
) -> None:
    """ValidationException when ``config``'s variants (their containers in ``containers``, by
    variant name) make a multi-model endpoint smlocal cannot run."""
    multi = [name for name, c in containers.items() if is_multi_model_container(c)]
    if not multi:
        return
    problems: list[str] = []
    name = config.get("EndpointConfigName", "")
    if len(multi) != len(containers):
        problems.append(
            f"Endpoint configuration {name} mixes multi-model and single-model production "
            "variants; smlocal runs an endpoint as one or the other."
        )
    if config.get("AsyncInferenceConfig"):
        problems.append(
            f"Endpoint configuration {name}: asynchronous inference with a multi-model model "
            "is not emulated."
        )
    for variant in multi:
        if not model_data(containers[variant]):
            problems.append(
                f"Variant {variant}: its model is multi-model (Mode MultiModel) but has no "
                "ModelDataUrl: give the S3 prefix (or local directory) its models are under."
            )
    if problems:
        raise AwsError("ValidationException", "; ".join(problems))


def check_multi_model_image(
    specified: str, local: str, container: Mapping[str, Any], image_info: ImageInfo | None
) -> None:
    """AWS's refusal of a multi-model container whose image lacks the capability label.

    ``specified``: the image as the Model names it (AWS's message names that), ``local`` the
    image that runs. An image the engine does not have is not judged here (starting it fails
    with its own clear error)."""
    if not is_multi_model_container(container) or image_info is None:
        return
    try:
        attrs = image_info(local)
    except SmlocalError:
        return
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    if str(labels.get(CAPABILITY_LABEL, "")).lower() != "true":
        raise AwsError(
            "ValidationException",
            f"Your Ecr Image {specified} does not contain required {CAPABILITY_LABEL}=true "
            "Docker label(s).",
        )


def check_model_images(
    model: Mapping[str, Any], resolve: Callable[[str], str], image_info: ImageInfo | None
) -> None:
    """At CreateModel: every multi-model container's image, as AWS checks it there.
    ``resolve``: the local image that runs for a Model's ``Image`` (ECR URIs mapped)."""
    containers = [model["PrimaryContainer"]] if model.get("PrimaryContainer") else []
    for container in [*containers, *(model.get("Containers") or [])]:
        image = container.get("Image")
        if image and is_multi_model_container(container):
            check_multi_model_image(str(image), resolve(str(image)), container, image_info)
