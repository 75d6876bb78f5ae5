"""promote's entry point: validate, gate, then run the plan (or only describe it).

Order matters: everything that can be refused locally (flags, spec, the contract gate) is
refused before the first AWS call, and the manifest file appears only once AWS is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smlocal.emulator.errors import ImageNotFoundError
from smlocal.emulator.spec import VariantSpec
from smlocal.emulator.state import StateDir
from smlocal.promote import plan
from smlocal.promote.aws import Clients
from smlocal.promote.context import Deployment, ImageTarget, NullReporter, Reporter, repository_for
from smlocal.promote.gate import GateKey, check_architecture, check_gate, contract_spec_digest
from smlocal.promote.manifest import Manifest
from smlocal.promote.quality import parse_gate, run_quality_gate
from smlocal.promote.request import PromoteRequest, validate_request

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
    from smlocal.emulator.artifacts import stage_model

    return stage_model(model, StateDir().cache).digest


def _pairs(request: PromoteRequest) -> list[tuple[str, str, list[VariantSpec]]]:
    """Distinct (image, model) pairs in variant order, with the variants that run each."""
    pairs: dict[tuple[str, str], list[VariantSpec]] = {}
    for variant in request.spec.variants:
        pairs.setdefault((variant.image, variant.model or request.model), []).append(variant)
    return [(image, model, variants) for (image, model), variants in pairs.items()]


def prepare(
    request: PromoteRequest, reporter: Reporter | None = None, *, dry_run: bool = False
) -> Prepared:
    """Validate and gate without any AWS call; raise ConfigError / GateRefusedError.

    The contract gate (and the quality gate) is checked for every distinct (image, model)
    pair of the endpoint's variants. ``dry_run`` skips the quality gate (it serves the image,
    which a dry run should not).
    """
    reporter = reporter or NullReporter()
    validate_request(request)
    quality = parse_gate(request.quality_gate) if request.quality_gate else None
    spec = contract_spec_digest(request.contract_spec) if request.contract_spec else None
    image_ids: dict[str, str] = {}
    digests: dict[str, str] = {}
    checked: list[dict[str, Any]] = []
    for image, model, variants in _pairs(request):
        if image not in image_ids:
            image_ids[image] = _image_id(image)
        if model not in digests:
            digests[model] = _model_digest(model)
        key = GateKey(image_ids[image], digests[model], spec)
        entry: dict[str, Any] = {
            "image": image,
            "image_id": key.image_id,
            "model": model,
            "model_digest": key.model_digest,
            "variants": [v.name for v in variants],
        }
        if not request.skip_gate:
            record = check_gate(key, image, model)
            entry.update(spec_digest=record.spec_digest, passed_at=record.recorded_at)
            for instance_type in dict.fromkeys(v.instance_type for v in variants):
                if request.serverless is None:
                    check_architecture(record, instance_type, image, model)
                if request.serverless is None and record.instance_type != instance_type:
                    reporter.warn(
                        f"the contract test of {image} ran as {record.instance_type}; this "
                        f"endpoint uses {instance_type} (different CPU and memory limits)"
                    )
        checked.append(entry)
    first = checked[0]
    gate: dict[str, Any] = {
        "image": first["image"],
        "image_id": first["image_id"],
        "model_digest": first["model_digest"],
        "contract_spec": str(request.contract_spec) if request.contract_spec else None,
        "pairs": checked,
    }
    if request.skip_gate:
        reporter.warn(
            "--skip-gate: promoting WITHOUT a passing contract-test record; "
            "this is written to the manifest"
        )
        gate["skipped"] = True
    else:
        gate.update(spec_digest=first["spec_digest"], passed_at=first["passed_at"])
    if quality is not None and request.eval_data is not None:
        for entry in checked:
            image, model = entry["image"], entry["model"]
            if dry_run:
                reporter.info(
                    f"dry run: the quality gate {quality} would run on "
                    f"{request.eval_data} ({image})"
                )
                continue
            reporter.info(f"quality gate {quality}: serving {image} locally ...")
            value = run_quality_gate(quality, image, model, request.eval_data)
            entry["quality"] = {"gate": str(quality), "value": value}
            gate.setdefault("quality", entry["quality"])
            reporter.info(f"quality gate {quality}: {quality.metric} = {value:.4g} ({image})")
    manifest = _open_manifest(request)
    manifest.skip_gate = request.skip_gate
    manifest.gate = gate
    images = list(image_ids)
    targets = [
        ImageTarget(
            image=image,
            image_id=image_ids[image],
            repository=request.repository or repository_for(image),
            tag=request.deployment_id if index == 0 else f"{request.deployment_id}-{index + 1}",
        )
        for index, image in enumerate(images)
    ]
    deployment = Deployment(
        request=request,
        clients=Clients(request.region, request.endpoint_url),
        manifest=manifest,
        reporter=reporter,
        image=images[0],
        image_id=image_ids[images[0]],
        targets=targets,
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
