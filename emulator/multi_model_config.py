"""What a multi-model endpoint (MME) variant is, and the fixed facts of SageMaker's MME contract.

A variant whose Model has ``Mode: MultiModel`` serves many models from one prefix
(``ModelDataUrl``, an ``s3://`` prefix, or a local directory as smlocal's extension); each
request names one with ``TargetModel``, a path relative to that prefix. This module holds the
value the :class:`~smlocal.emulator.spec.VariantSpec` carries (:class:`MultiModelSpec`) and the
small pure rules the rest of the MME code shares: where a target's artifact is, what name the
container knows it by, where it appears inside the container. Reference §D.
"""

from __future__ import annotations

import hashlib
import posixpath

from pydantic import BaseModel, ConfigDict

__all__ = [
    "CAPABILITY_LABEL",
    "CONTAINER_MODELS_DIR",
    "MULTI_MODEL_ENV",
    "MultiModelSpec",
    "artifact_source",
    "container_model_url",
    "model_name_for",
    "unsafe_target",
]

# The image label that opts a container into MME (reference §D.1).
CAPABILITY_LABEL = "com.amazonaws.sagemaker.capabilities.multi-models"
# SageMaker injects this; the toolkits switch to /opt/ml/models when they see it.
MULTI_MODEL_ENV = {"SAGEMAKER_MULTI_MODEL": "true"}
CONTAINER_MODELS_DIR = "/opt/ml/models"


class MultiModelSpec(BaseModel):
    """A variant's MultiModelConfig: ``ModelCacheSetting`` Enabled (default) or Disabled."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cache_enabled: bool = True


def model_name_for(target_model: str) -> str:
    """The opaque ``model_name`` the container gets for ``target_model``.

    AWS says only that it "is not necessarily the value of the TargetModel parameter"; a hash
    keeps it to the characters every model server accepts in a URL path and a file name.
    """
    return hashlib.sha256(target_model.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def container_model_url(model_name: str) -> str:
    """The ``url`` of ``POST /models``: where the model's files are inside the container."""
    return f"{CONTAINER_MODELS_DIR}/{model_name}/model"


def unsafe_target(target_model: str) -> str | None:
    """Why ``target_model`` cannot name an object under the prefix, or None when it can."""
    parts = target_model.replace("\\", "/").split("/")
    if target_model.startswith("/"):
        return "it is an absolute path; TargetModel is relative to the model's prefix"
    if any(part == ".." for part in parts):
        return "it leaves the model's prefix (a '..' path segment)"
    if not target_model.strip("/"):
        return "it names no artifact"
    return None


def artifact_source(prefix: str, target_model: str) -> str:
    """The artifact of ``target_model`` under ``prefix`` (``s3://`` URI or a local path)."""
    if "://" in prefix:
        return prefix.rstrip("/") + "/" + target_model.lstrip("/")
    return posixpath.join(prefix, target_model.lstrip("/"))
