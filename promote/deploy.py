"""promote's entry point: validate, gate, then run the plan (or only describe it).

Order matters: everything that can be refused locally (flags, spec, the contract gate) is
refused before the first AWS call, and the manifest file appears only once AWS is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.errors import ImageNotFoundError
from emulator.state import StateDir
from promote import plan
from promote.aws import Clients
from promote.context import Deployment, NullReporter, Reporter
from promote.gate import GateKey, check_gate, contract_spec_digest
from promote.manifest import Manifest
from promote.quality import parse_gate, run_quality_gate
from promote.request import PromoteRequest, validate_request

__all__ = ["Prepared", "execute", "prepare"]


@dataclass(frozen=True)
class Prepared:
    deployment: Deployment
    gate: dict[str, Any]


def _image_id(image: str) -> str:
    import docker
    from docker.errors import DockerException, ImageNotFound

    try:
        return str(docker.from_env().images.get(image).id)
    except ImageNotFound:
        raise ImageNotFoundError(f"image {image} is not in the local Docker engine") from None
    except DockerException as error:
        raise ImageNotFoundError(f"cannot inspect image {image}: {error}") from None


def _model_digest(model: str) -> str:
    from emulator.artifacts import stage_model

    return stage_model(model, StateDir().cache).digest


def prepare(
    request: PromoteRequest, reporter: Reporter | None = None, *, dry_run: bool = False
) -> Prepared:
    """Validate and gate without any AWS call; raise ConfigError / GateRefusedError.

    ``dry_run`` skips the quality gate (it serves the image, which a dry run should not).
    """
    reporter = reporter or NullReporter()
    validate_request(request)
    quality = parse_gate(request.quality_gate) if request.quality_gate else None
    image = request.spec.variants[0].image
    spec = contract_spec_digest(request.contract_spec) if request.contract_spec else None
    key = GateKey(_image_id(image), _model_digest(request.model), spec)
    gate: dict[str, Any] = {
        "image": image,
        "image_id": key.image_id,
        "model_digest": key.model_digest,
        "contract_spec": str(request.contract_spec) if request.contract_spec else None,
    }
    if request.skip_gate:
        reporter.warn(
            "--skip-gate: promoting WITHOUT a passing contract-test record; "
            "this is written to the manifest"
        )
        gate["skipped"] = True
    else:
        record = check_gate(key, image, request.model)
        gate.update(spec_digest=record.spec_digest, passed_at=record.recorded_at)
        instance_type = request.spec.variants[0].instance_type
        if request.serverless is None and record.instance_type != instance_type:
            reporter.warn(
                f"the contract test ran as {record.instance_type}; this endpoint uses "
                f"{instance_type} (different CPU and memory limits)"
            )
    if quality is not None and request.eval_data is not None:
        if dry_run:
            reporter.info(f"dry run: the quality gate {quality} would run on {request.eval_data}")
        else:
            reporter.info(f"quality gate {quality}: serving {image} locally ...")
            value = run_quality_gate(quality, image, request.model, request.eval_data)
            gate["quality"] = {"gate": str(quality), "value": value}
            reporter.info(f"quality gate {quality}: {quality.metric} = {value:.4g}")
    manifest = _open_manifest(request)
    manifest.skip_gate = request.skip_gate
    manifest.gate = gate
    deployment = Deployment(
        request=request,
        clients=Clients(request.region, request.endpoint_url),
        manifest=manifest,
        reporter=reporter,
        image=image,
        image_id=key.image_id,
    )
    return Prepared(deployment, gate)


def _open_manifest(request: PromoteRequest) -> Manifest:
    """A fresh manifest, or the one of an interrupted run with this deployment id (resume)."""
    if request.manifest_path.exists():
        existing = Manifest.load(request.manifest_path)
        if existing.deployment_id == request.deployment_id:
            existing.status = "in-progress"
            existing.failure = None
            return existing
    return Manifest(
        path=request.manifest_path,
        deployment_id=request.deployment_id,
        endpoint_name=request.spec.name,
        region=request.region,
        endpoint_url=request.endpoint_url,
    )


def execute(prepared: Prepared, on_step: Any = None) -> Manifest:
    """Run every step; the manifest is written before the first AWS call and after each."""
    deployment = prepared.deployment
    deployment.manifest.save()
    plan.run(deployment, on_step)
    return deployment.manifest
