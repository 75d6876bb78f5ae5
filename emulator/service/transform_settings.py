"""What a transform job runs: its containers, their environment, and its batch settings.

Owns the part of reference §F.2 that is decided before the first request:

* The model's container starts as an endpoint's would (the core's :class:`Endpoint`: labels,
  the instance type's CPU and memory, the model read-only, /ping gating, health checks), one
  per ``InstanceCount``, with the model's and the job's ``Environment`` plus
  ``SAGEMAKER_BATCH=true`` and — only those the job sets, as AWS passes them —
  ``SAGEMAKER_MAX_PAYLOAD_IN_MB``, ``SAGEMAKER_BATCH_STRATEGY`` (``SINGLE_RECORD`` /
  ``MULTI_RECORD``) and ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS``. Its containers carry
  ``smlocal.endpoint=transform-job/NAME`` (never an endpoint's name, so a restarted service
  sweeps them) and ``smlocal.transform-job=NAME``.
* What the job leaves unset comes from the container's ``GET /execution-parameters`` (its
  ``MULTI_RECORD`` spelling and the API's ``MultiRecord`` both count; AWS's own example's
  typographic quotes too), else AWS's defaults (MaxPayloadInMB 6, MaxConcurrentTransforms 1)
  and :data:`DEFAULT_BATCH_STRATEGY`.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from smlocal.emulator.backend import LABEL_ENDPOINT, ContainerRun
from smlocal.emulator.endpoint import Endpoint
from smlocal.emulator.errors import ConfigError
from smlocal.emulator.service.specs import container_of, local_image
from smlocal.emulator.spec import EndpointSpec, VariantSpec, build_spec

__all__ = [
    "DEFAULT_BATCH_STRATEGY",
    "LABEL_TRANSFORM_JOB",
    "BatchSettings",
    "Progress",
    "TransformFleet",
    "batch_settings",
    "job_spec",
    "offered_settings",
]

LABEL_TRANSFORM_JOB = "smlocal.transform-job"
# AWS's default when neither the job nor the container says is not documented.
DEFAULT_BATCH_STRATEGY = "SingleRecord"
DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_MAX_CONCURRENT = 1
_STRATEGIES = {
    "MULTI_RECORD": "MultiRecord",
    "SINGLE_RECORD": "SingleRecord",
    "MultiRecord": "MultiRecord",
    "SingleRecord": "SingleRecord",
}
_ENV_STRATEGY = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}


@dataclass
class Progress:
    objects_total: int = 0
    objects_done: int = 0
    objects_failed: int = 0
    records_done: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "ObjectsTotal": self.objects_total,
            "ObjectsDone": self.objects_done,
            "ObjectsFailed": self.objects_failed,
            "RecordsDone": self.records_done,
        }


@dataclass(frozen=True)
class BatchSettings:
    strategy: str  # SingleRecord | MultiRecord
    max_payload_mb: int  # 0: no limit
    concurrency: int  # per instance


def batch_settings(job: Mapping[str, Any], offered: Mapping[str, Any]) -> BatchSettings:
    """The job's values first, then the container's /execution-parameters, then defaults."""
    strategy = job.get("BatchStrategy") or _STRATEGIES.get(str(offered.get("BatchStrategy")))
    payload = job.get("MaxPayloadInMB")
    if payload is None:
        payload = _whole(offered.get("MaxPayloadInMB"), 0, 100)
    concurrency = job.get("MaxConcurrentTransforms") or _whole(
        offered.get("MaxConcurrentTransforms"), 1, 1000
    )
    return BatchSettings(
        strategy=strategy or DEFAULT_BATCH_STRATEGY,
        max_payload_mb=DEFAULT_MAX_PAYLOAD_MB if payload is None else int(payload),
        concurrency=int(concurrency or DEFAULT_MAX_CONCURRENT),
    )


def _whole(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def job_spec(
    job: Mapping[str, Any], model: Mapping[str, Any], resolve_image: Callable[[str], str | None]
) -> EndpointSpec:
    """The containers a job runs, as the one spec the core starts (ConfigError if invalid)."""
    container = container_of(model)
    if not container.get("Image"):
        raise ConfigError(f"Model {model.get('ModelName')} has no container Image")
    env = {**(container.get("Environment") or {}), **(job.get("Environment") or {})}
    env["SAGEMAKER_BATCH"] = "true"
    if job.get("MaxPayloadInMB") is not None:
        env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(job["MaxPayloadInMB"])
    if job.get("BatchStrategy"):
        env["SAGEMAKER_BATCH_STRATEGY"] = _ENV_STRATEGY[job["BatchStrategy"]]
    if job.get("MaxConcurrentTransforms"):
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(job["MaxConcurrentTransforms"])
    location = container.get("ModelDataUrl") or (
        (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
    ).get("S3Uri")
    resources = job["TransformResources"]
    return build_spec(
        name=job["TransformJobName"],
        variants=[
            {
                "name": "AllTraffic",
                "image": local_image(str(container["Image"]), resolve_image),
                "model": str(location).removeprefix("file://") if location else None,
                "env": env,
                "instance_type": resources["InstanceType"],
                "instance_count": int(resources["InstanceCount"]),
                "network_isolation": bool(model.get("EnableNetworkIsolation", False)),
            }
        ],
    )


class TransformFleet(Endpoint):
    """An endpoint's containers, labelled as a transform job's (never routed to by name)."""

    def _container_run(self, variant: VariantSpec, index: int) -> ContainerRun:
        run = super()._container_run(variant, index)
        name = self.spec.name
        return dataclasses.replace(
            run,
            name=f"smlocal-transform-{name}-{index}-{uuid.uuid4().hex[:6]}".lower(),
            labels={
                **run.labels,
                LABEL_ENDPOINT: f"transform-job/{name}",
                LABEL_TRANSFORM_JOB: name,
            },
        )


def offered_settings(text: str) -> dict[str, Any]:
    """A ``GET /execution-parameters`` answer as a dict (empty when it is none)."""
    # AWS's own example answer has typographic quotes; take them as plain ones.
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    try:
        offered = json.loads(text)
    except ValueError:
        return {}
    return offered if isinstance(offered, dict) else {}
